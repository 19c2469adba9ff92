package crossbuild

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSizeCuts keeps out of the armv7 binary what was cut from it for size (see the README):
// net/http's Server and its bundled HTTP/2, which the WebSocket no longer uses (gorilla/websocket
// still imports net/http, so the package itself stays; this checks its symbols), encoding/json's
// decoder (internal/json decodes), x/net's batch I/O (dnsserver makes the system calls itself),
// miekg/dns's per-type copy and duplicate methods (resolver copies and compares without them);
// and it checks the 4 KiB segment alignment.
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
			strings.HasPrefix(s.Name, "expvar."),
			strings.HasPrefix(s.Name, "encoding/json.(*decodeState)."),
			strings.HasPrefix(s.Name, "golang.org/x/net/ipv4.(*PacketConn).ReadBatch"),
			strings.HasPrefix(s.Name, "golang.org/x/net/internal/socket.(*Conn).RecvMsgs"),
			strings.HasPrefix(s.Name, "github.com/miekg/dns.") && (strings.HasSuffix(s.Name, ").copy") || strings.HasSuffix(s.Name, ").isDuplicate")):
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
	sf, err := elf.Open(stripped)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for _, p := range sf.Progs {
		if p.Type == elf.PT_LOAD && p.Align != 4096 {
			t.Errorf("a segment aligned to %#x, not 4 KiB: up to that much zero padding in the file", p.Align)
		}
	}
	t.Logf("%s: %d bytes stripped", ipkArch, st.Size())
}

// TestSizeBudget is the size ratchet of scripts/size-budget, which make size applies too: the
// armv7 binary, its .ipk, and its .apk against the .ipk.
func TestSizeBudget(t *testing.T) {
	limit := budget(t)
	ipk, apk := sharedPackages(t)
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	bin := size(filepath.Join(filepath.Dir(apk), "delve")) // dist/ARCH/delve, packed in both
	ipkSize, apkSize := size(ipk), size(apk)
	apkMax := ipkSize * (100 + limit["apk-over-ipk-percent"]) / 100
	t.Logf("%s: binary %d bytes (at most %d), .ipk %d (%d), .apk %d (%d)", ipkArch, bin, limit["binary"], ipkSize, limit["ipk"], apkSize, apkMax)
	if bin > limit["binary"] {
		t.Errorf("the binary is %d bytes, %d over scripts/size-budget", bin, bin-limit["binary"])
	}
	if ipkSize > limit["ipk"] {
		t.Errorf("the .ipk is %d bytes, %d over scripts/size-budget", ipkSize, ipkSize-limit["ipk"])
	}
	if apkSize > apkMax {
		t.Errorf("the .apk is %d bytes, %d over the .ipk + %d %%", apkSize, apkSize-apkMax, limit["apk-over-ipk-percent"])
	}
}
