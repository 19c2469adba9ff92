package files

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/daemon"
)

// TestInitHeader reads delve.init as rpcd's `rc list` does (rpcd rc.c, rc_list_readdir): lines
// read with fgets into a 255-byte buffer, START=, STOP= and USE_PROCD= recognised only at the
// start of a line, and no more than 11 line starts looked at. That is what LuCI's System >
// Startup shows: further down, the script has no priorities and no running state.
func TestInitHeader(t *testing.T) {
	f, err := os.Open("delve.init")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start, stop, useProcd := -1, -1, false
	r := bufio.NewReader(f)
	count, beginning := 0, true
	for (start < 0 || stop < 0 || !useProcd) && count <= 10 {
		chunk, err := readChunk(r, 254) // fgets(line, 255, fp): at most 254 bytes and a NUL
		if chunk == "" && err != nil {
			break
		}
		if beginning {
			switch {
			case strings.HasPrefix(chunk, "START="):
				start = atoiPrefix(chunk[6:])
			case strings.HasPrefix(chunk, "STOP="):
				stop = atoiPrefix(chunk[5:])
			case strings.HasPrefix(chunk, "USE_PROCD="):
				useProcd = atoiPrefix(chunk[10:]) != 0
			}
			count++
		}
		beginning = strings.HasSuffix(chunk, "\n")
	}
	if start != 30 || stop != 15 || !useProcd {
		t.Errorf("rpcd's rc list sees START=%d STOP=%d USE_PROCD=%v in delve.init, want 30, 15, true: keep them in the first lines, right after the shebang", start, stop, useProcd)
	}
}

// readChunk is fgets: up to n bytes, ending after a newline when there is one.
func readChunk(r *bufio.Reader, n int) (string, error) {
	var b strings.Builder
	for b.Len() < n {
		c, err := r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
		if c == '\n' {
			break
		}
	}
	return b.String(), nil
}

// atoiPrefix is strtoul(s, NULL, 0) for the decimal numbers an init script has: the leading
// digits, 0 when there are none.
func atoiPrefix(s string) int {
	d := regexp.MustCompile(`^[0-9]*`).FindString(s)
	n, _ := strconv.Atoi(d)
	return n
}

// TestTermTimeout: procd sends SIGKILL term_timeout seconds after SIGTERM (procd's default is
// 5 s, instance.c). The init script sets it, and the daemon's whole drain (ShutdownGrace for the
// lookups in flight, then the listeners and sockets) must fit in it with room to spare: at
// least twice ShutdownGrace. internal/daemon's lifecycle tests measure the drain itself.
func TestTermTimeout(t *testing.T) {
	b, err := os.ReadFile("delve.init")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*procd_set_param term_timeout ([0-9]+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("delve.init does not set procd_set_param term_timeout: procd's default 5 s is the daemon's drain and then some")
	}
	secs, _ := strconv.Atoi(string(m[1]))
	term := time.Duration(secs) * time.Second
	if term < 2*daemon.ShutdownGrace {
		t.Errorf("term_timeout %v leaves no room over the daemon's drain of %v (want at least twice it)", term, daemon.ShutdownGrace)
	}
}
