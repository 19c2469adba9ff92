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
	o := options{pkg: pkgdef.Delve(), arch: "mipsel_24kc", version: "0.1.0-r1", bin: bin, files: "../../files"}
	if err := o.setEpoch("1700000000"); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestBuildRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*options)
		want string
	}{
		{"version without release", func(o *options) { o.version = "1.2.3" }, "1.2.3-r1"},
		{"23.05 version form", func(o *options) { o.version = "1.2.3-1" }, "1.2.3-r1"},
		{"git describe", func(o *options) { o.version = "v0.1.0-3-gabcdef" }, "1.2.3-r1"},
		{"arch with a slash", func(o *options) { o.arch = "../x" }, "architecture"},
		{"no binary", func(o *options) { o.bin = "" }, "-bin"},
		{"missing file", func(o *options) { o.files = t.TempDir() }, "delve.config"},
		{"delve for all", func(o *options) { o.arch = "all" }, "built per arch"},
		{"LuCI app for an arch", func(o *options) { o.pkg, o.files = pkgdef.LuCI(), "../../luci-app-delve" }, "arch all"},
		{"LuCI app without its files", func(o *options) { o.pkg, o.arch = pkgdef.LuCI(), "all" }, "htdocs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t)
			tt.edit(&o)
			if _, err := build(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
	var o options
	for _, bad := range []string{"", "yesterday", "-1"} {
		if err := o.setEpoch(bad); err == nil {
			t.Errorf("epoch %q accepted", bad)
		}
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
	o.mtime = o.mtime.Add(1e9)
	c, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("the epoch is not in the archive")
	}
}

func TestControlDescription(t *testing.T) {
	c := string(controlFile(testOptions(t), 1234))
	_, desc, ok := strings.Cut(c, "\nDescription:  ")
	if !ok {
		t.Fatalf("no \"Description:  \" (two spaces, as OpenWrt writes it):\n%s", c)
	}
	lines := strings.Split(strings.TrimSuffix(desc, "\n"), "\n")
	if len(lines) != len(pkgdef.Description) {
		t.Fatalf("%d description lines, want %d", len(lines), len(pkgdef.Description))
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, " ") || strings.HasPrefix(l, "  ") {
			t.Errorf("continuation %q: want one leading space", l)
		}
	}
	if !strings.Contains(c, "\nInstalled-Size: 1234\n") {
		t.Errorf("Installed-Size:\n%s", c)
	}
}
