package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binMu  sync.Mutex
	binDir string
	bins   = map[string]*binBuild{} // by build time ("" for none)
)

type binBuild struct {
	once sync.Once
	path string
	err  error
}

// DelveBinary builds cmd/delve once per test process and build time, for the tests that run the
// real binary; buildTime, when set, is stamped as version.BuildTime (Unix seconds). The package's
// TestMain calls RemoveBinaries after m.Run.
func DelveBinary(t testing.TB, buildTime string) string {
	t.Helper()
	binMu.Lock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "delve-test-bin")
		if err != nil {
			binMu.Unlock()
			t.Fatal(err)
		}
		binDir = dir
	}
	b := bins[buildTime]
	if b == nil {
		b = &binBuild{}
		bins[buildTime] = b
	}
	dir := binDir
	binMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(dir, "delve"+buildTime)
		args := []string{"build", "-o", b.path}
		if buildTime != "" {
			args = append(args, "-ldflags", "-X github.com/delvedns/delve/internal/version.BuildTime="+buildTime)
		}
		args = append(args, "github.com/delvedns/delve/cmd/delve")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RemoveBinaries removes what DelveBinary built in this process.
func RemoveBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir = ""
		bins = map[string]*binBuild{}
	}
}
