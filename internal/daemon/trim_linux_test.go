package daemon

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestTrimText: the binary's mapped code pages are released, and the program runs on (the pages
// fault back in from the same file).
func TestTrimText(t *testing.T) {
	before := rssFileKiB(t)
	n := trimText()
	after := rssFileKiB(t)
	if n == 0 || after >= before {
		t.Fatalf("released %d bytes; RssFile %d KiB before, %d KiB after", n, before, after)
	}
	// Code that was unmapped still runs.
	if s := strings.Repeat("x", 3); s != "xxx" {
		t.Fatal(s)
	}
	t.Logf("released %d KiB of mappings; RssFile %d -> %d KiB", n/1024, before, after)
}
