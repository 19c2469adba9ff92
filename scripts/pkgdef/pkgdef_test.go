package pkgdef

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// functions are OpenWrt's /lib/functions.sh user and group helpers as postinst uses them
// (base-files: each appends a line to ${IPKG_INSTROOT}/etc/passwd, /etc/shadow or /etc/group;
// the real ones also take a lock, which an image build skips).
const functions = `
user_exists() { grep -qs "^${1}:" "${IPKG_INSTROOT}/etc/passwd"; }
group_exists() { grep -qs "^${1}:" "${IPKG_INSTROOT}/etc/group"; }
group_add() { echo "${1}:x:${2}:" >>"${IPKG_INSTROOT}/etc/group"; }
user_add() {
	echo "${1}:x:${2}:${3:-$2}:${4:-$1}:${5:-/var/run/$1}:${6:-/bin/false}" >>"${IPKG_INSTROOT}/etc/passwd"
	echo "${1}:x:0:0:99999:7:::" >>"${IPKG_INSTROOT}/etc/shadow"
}
`

// TestPostinstMakesTheUser runs postinst as an image build does (IPKG_INSTROOT set, so nothing
// on this machine is touched): the user and group delve with the first id from 32768 that no
// user and no group has, once.
func TestPostinstMakesTheUser(t *testing.T) {
	tests := []struct {
		name, passwd, group string
		wantPasswd, wantGrp string // the lines added
	}{
		{"fresh", "root:x:0:0:root:/root:/bin/ash\n", "root:x:0:\n",
			"delve:x:32768:32768:delve:/var/run/delve:/bin/false\n", "delve:x:32768:\n"},
		{"ids taken", "root:x:0:0:root:/root:/bin/ash\nother:x:32768:100::/:/bin/false\n", "root:x:0:\nthird:x:32769:\n",
			"delve:x:32770:32770:delve:/var/run/delve:/bin/false\n", "delve:x:32770:\n"},
		{"group exists", "root:x:0:0:root:/root:/bin/ash\n", "root:x:0:\ndelve:x:500:\n",
			"delve:x:32768:500:delve:/var/run/delve:/bin/false\n", ""},
		{"user exists", "root:x:0:0:root:/root:/bin/ash\ndelve:x:400:400::/:/bin/false\n", "root:x:0:\ndelve:x:400:\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			write := func(name, data string) {
				if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			read := func(name string) string {
				b, _ := os.ReadFile(filepath.Join(root, "etc", name))
				return string(b)
			}
			write("passwd", tt.passwd)
			write("group", tt.group)
			script := filepath.Join(root, "postinst-pkg")
			if err := os.WriteFile(script, []byte(PostinstPkg), 0o755); err != nil {
				t.Fatal(err)
			}
			for run := 0; run < 2; run++ { // a second install (an upgrade) adds nothing
				cmd := exec.Command("sh", "-c", functions+`( . "$1" )`, "sh", script)
				cmd.Env = []string{"PATH=/usr/bin:/bin", "IPKG_INSTROOT=" + root}
				if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
					t.Fatalf("postinst: %v\n%s", err, out)
				}
				if got := strings.TrimPrefix(read("passwd"), tt.passwd); got != tt.wantPasswd {
					t.Fatalf("run %d: passwd gained %q, want %q", run+1, got, tt.wantPasswd)
				}
				if got := strings.TrimPrefix(read("group"), tt.group); got != tt.wantGrp {
					t.Fatalf("run %d: group gained %q, want %q", run+1, got, tt.wantGrp)
				}
			}
		})
	}
}
