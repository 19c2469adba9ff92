package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/delvedns/delve/scripts/pkgdef"
)

func testOptions(t *testing.T) options {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	mtime, err := pkgdef.Epoch("1700000000")
	if err != nil {
		t.Fatal(err)
	}
	return options{pkg: pkgdef.Delve(), arch: "mipsel_24kc", version: "0.1.0-r1", bin: bin, files: "../../files", mtime: mtime}
}

func TestBuildRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*options)
		want string
	}{
		{"version without release", func(o *options) { o.version = "1.2.3" }, "1.2.3-r1"},
		{"git describe", func(o *options) { o.version = "v0.1.0-3-gabcdef" }, "1.2.3-r1"},
		{"arch with a slash", func(o *options) { o.arch = "../x" }, "architecture"},
		{"no binary", func(o *options) { o.bin = "" }, "-bin"},
		{"missing file", func(o *options) { o.files = t.TempDir() }, "delve.config"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t)
			tt.edit(&o)
			if _, err := build(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	o := testOptions(t)
	a, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same inputs differ")
	}
	if !bytes.HasPrefix(a, []byte("ADBd")) {
		t.Fatalf("starts with %q, want ADBd (deflate)", a[:4])
	}
	o.mtime = o.mtime.Add(1e9)
	c, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("the epoch is not in the package")
	}
}

// TestShared: the ADB writer shares a value written twice, as apk-tools' adb_w_data does, but
// not one whose earlier copy is misaligned for it, and never an unshared one.
func TestShared(t *testing.T) {
	a := newADB()
	x, y := a.str("root"), a.str("root")
	if x != y {
		t.Fatalf("the same string twice: %#x and %#x", x, y)
	}
	n := len(a.b)
	if z := a.blobVal([]byte("root"), false); z == x || len(a.b) != n+5 {
		t.Fatalf("an unshared blob was shared: %#x", z)
	}
	if v := a.integer(5); v != typeInt|5 {
		t.Fatalf("a small integer %#x, want it in the tag", v)
	}
	big := a.integer(1700000000)
	if big&0xf0000000 != typeInt32 || (big&valueMask)%4 != 0 {
		t.Fatalf("1700000000: %#x, want an aligned int32", big)
	}
	if a.object([]uint32{0, 0, 0}) != 0 {
		t.Fatal("an object with nothing set is not null")
	}
}
