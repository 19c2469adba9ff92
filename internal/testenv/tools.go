package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// sbinDirs are searched after PATH: Debian puts unbound in /usr/sbin, which a non-root PATH
// often lacks.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// LookTool finds the command cmd in PATH or an sbin directory.
func LookTool(cmd string) (string, error) {
	if p, err := exec.LookPath(cmd); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		if p, err := exec.LookPath(filepath.Join(dir, cmd)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %v", cmd, sbinDirs)
}

// RequireTool returns the path of cmd or fails the test naming the Debian package to install.
// It fails rather than skips: CI installs every tool (make deps), so a missing one is a gap in
// the test setup, not a reason to test less.
func RequireTool(t testing.TB, cmd, debianPkg string) string {
	t.Helper()
	p, err := LookTool(cmd)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make deps)", cmd, debianPkg)
	}
	return p
}
