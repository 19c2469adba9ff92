package crossbuild

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSizeCuts keeps out of the armv7 binary what was cut from it for size (see the README):
// net/http's Server and its bundled HTTP/2, which the WebSocket no longer uses. gorilla/websocket
// still imports net/http, so the package itself stays; this checks its symbols.
func TestSizeCuts(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "delve.unstripped")
	if _, err := run(buildTimeout, root, []string{"SOURCE_DATE_EPOCH=" + epoch}, "./scripts/build-arch", ipkArch, bin, "unstripped"); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range syms {
		switch {
		case strings.HasPrefix(s.Name, "net/http.(*Server)."),
			strings.HasPrefix(s.Name, "net/http.(*conn)."),
			strings.HasPrefix(s.Name, "net/http.(*http2") && s.Size > 0,
			strings.HasPrefix(s.Name, "net/http.(*Transport).roundTrip"),
			strings.HasPrefix(s.Name, "text/template."),
			strings.HasPrefix(s.Name, "html/template."),
			strings.HasPrefix(s.Name, "runtime/pprof."),
			strings.HasPrefix(s.Name, "expvar."):
			found = append(found, s.Name)
		}
	}
	if len(found) > 0 {
		t.Fatalf("%d symbols of code cut for size are back, e.g. %v", len(found), found[:min(len(found), 5)])
	}

	stripped := buildFor(t, ipkArch)
	st, err := os.Stat(stripped)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes stripped (budget 6000000)", ipkArch, st.Size())
}
