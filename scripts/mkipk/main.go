// Command mkipk packs delve, or luci-app-delve (-pkg luci-app-delve -arch all), into an .ipk the way OpenWrt's ipkg-build does, so that opkg on
// OpenWrt 24.10 and earlier installs it (OpenWrt's scripts/ipkg-build): a gzip-compressed tar (not ar)
// holding ./debian-binary, ./data.tar.gz and ./control.tar.gz; GNU tar headers without PAX
// records, numeric owner 0:0, entries sorted by name, every mtime SOURCE_DATE_EPOCH, gzip streams
// (GNU gzip -9n) without name or time. The same inputs give the same bytes.
//
//	go run ./scripts/mkipk -arch mipsel_24kc -version 0.1.0-r1 -epoch 1700000000 \
//		-bin dist/mipsel_24kc/delve -files files -o dist/delve_0.1.0-r1_mipsel_24kc.ipk
//	go run ./scripts/mkipk -pkg luci-app-delve -arch all -version 0.1.0-r1 -epoch 1700000000 \
//		-files luci-app-delve -o dist/luci-app-delve_0.1.0-r1_all.ipk
//
// It is a separate program so that none of this ends up in the delve binary.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/delvedns/delve/scripts/pkgdef"
)

// Maintainer scripts. postinst and prerm are OpenWrt's generated ones for an .ipk
// (package-pack.mk), quoted for shellcheck; default_postinst enables and starts /etc/init.d/delve,
// then sources postinst-pkg (the package's PostinstPkg), and default_prerm sources prerm-pkg,
// then stops (and, unless upgrading, disables) the service. postrm (the package's Postrm, when
// it has one) runs after the files are gone.
const (
	postinst = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
`
	prerm = `#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
`
)

func main() {
	var o options
	name := flag.String("pkg", pkgdef.Name, "the package: "+pkgdef.Name+" or "+pkgdef.LuCIName)
	flag.StringVar(&o.arch, "arch", "", "OpenWrt package architecture, e.g. mipsel_24kc, or all for "+pkgdef.LuCIName+" (required)")
	flag.StringVar(&o.version, "version", "", "package version in OpenWrt 24.10 form, e.g. 1.2.3-r1 (required)")
	flag.StringVar(&o.bin, "bin", "", "the delve binary built for -arch (required for "+pkgdef.Name+")")
	flag.StringVar(&o.files, "files", "files", "for "+pkgdef.Name+": "+pkgdef.Delve().FilesHelp+"; for "+pkgdef.LuCIName+": "+pkgdef.LuCI().FilesHelp)
	flag.StringVar(&o.out, "o", "", "the .ipk to write (default PKG_VERSION_ARCH.ipk)")
	epoch := flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "mtime of every entry, Unix seconds (default $SOURCE_DATE_EPOCH)")
	flag.Parse()
	if err := o.setEpoch(*epoch); err != nil {
		fail(err)
	}
	var err error
	if o.pkg, err = pkgdef.Lookup(*name); err != nil {
		fail(err)
	}
	if o.out == "" {
		o.out = fmt.Sprintf("%s_%s_%s.ipk", o.pkg.Name, o.version, o.arch)
	}
	ipk, err := build(o)
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(o.out, ipk, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkipk:", err)
	os.Exit(1)
}

type options struct {
	pkg                            pkgdef.Package
	arch, version, bin, files, out string
	mtime                          time.Time
}

func (o *options) setEpoch(s string) error {
	t, err := pkgdef.Epoch(s)
	o.mtime = t
	return err
}

// build returns the .ipk.
func build(o options) ([]byte, error) {
	if err := pkgdef.Check(o.arch, o.version); err != nil {
		return nil, err
	}
	if err := o.pkg.CheckArch(o.arch); err != nil {
		return nil, err
	}
	payload, err := o.pkg.Read(o.files, o.bin)
	if err != nil {
		return nil, err
	}
	var data tarball
	for _, f := range payload {
		data.add(f.Dst, f.Data, f.Mode)
	}
	dataTar, err := data.tar(o.mtime)
	if err != nil {
		return nil, err
	}

	var control tarball
	control.add("control", controlFile(o, len(dataTar)), 0o644)
	if len(o.pkg.Conffiles) > 0 {
		control.add("conffiles", []byte(strings.Join(o.pkg.Conffiles, "\n")+"\n"), 0o644)
	}
	control.add("postinst", []byte(postinst), 0o755)
	if o.pkg.PostinstPkg != "" {
		control.add("postinst-pkg", []byte(o.pkg.PostinstPkg), 0o755)
	}
	control.add("prerm", []byte(prerm), 0o755)
	if o.pkg.Postrm != "" {
		control.add("postrm", []byte(o.pkg.Postrm), 0o755)
	}
	controlTar, err := control.tar(o.mtime)
	if err != nil {
		return nil, err
	}

	dataGz, err := pkgdef.Gzip(dataTar)
	if err != nil {
		return nil, err
	}
	controlGz, err := pkgdef.Gzip(controlTar)
	if err != nil {
		return nil, err
	}
	// ipkg-build's order, which is not sorted: opkg looks each member up by name.
	var outer bytes.Buffer
	tw := tar.NewWriter(&outer)
	for _, m := range []struct {
		name string
		b    []byte
	}{{"./debian-binary", []byte("2.0\n")}, {"./data.tar.gz", dataGz}, {"./control.tar.gz", controlGz}} {
		if err := writeEntry(tw, m.name, m.b, 0o644, o.mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return pkgdef.Gzip(outer.Bytes())
}

// controlFile writes the fields in the order OpenWrt's package-pack.mk does.
func controlFile(o options, installedSize int) []byte {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	p := o.pkg
	field("Package", p.Name)
	field("Version", o.version)
	field("Depends", strings.Join(p.Depends, ", "))
	field("Source", p.Source)
	field("SourceName", p.Name)
	field("License", p.License)
	field("Section", p.Section)
	field("SourceDateEpoch", strconv.FormatInt(o.mtime.Unix(), 10))
	field("URL", p.URL)
	field("Architecture", o.arch)
	field("Installed-Size", strconv.Itoa(installedSize)) // bytes of the uncompressed data.tar
	b.WriteString("Description: ")
	for _, l := range p.Description {
		b.WriteString(" " + strings.TrimLeft(l, " \t") + "\n")
	}
	return []byte(b.String())
}

// tarball collects files and makes a tar of them with their parent directories, as
// `tar --format=gnu --numeric-owner --sort=name -C DIR .` would.
type tarball struct {
	files map[string]entry
}

type entry struct {
	b    []byte
	mode int64
}

func (t *tarball) add(name string, b []byte, mode int64) {
	if t.files == nil {
		t.files = map[string]entry{}
	}
	t.files[name] = entry{b, mode}
}

func (t *tarball) tar(mtime time.Time) ([]byte, error) {
	names := map[string]bool{"./": true} // true: a directory
	for name := range t.files {
		names["./"+name] = false
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			names["./"+d+"/"] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted) // a directory ("./usr/") sorts before what it holds ("./usr/bin/")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range sorted {
		var err error
		if names[n] {
			err = tw.WriteHeader(header(n, tar.TypeDir, 0, 0o755, mtime))
		} else {
			e := t.files[strings.TrimPrefix(n, "./")]
			err = writeEntry(tw, n, e.b, e.mode, mtime)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeEntry(tw *tar.Writer, name string, b []byte, mode int64, mtime time.Time) error {
	if err := tw.WriteHeader(header(name, tar.TypeReg, int64(len(b)), mode, mtime)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err := tw.Write(b)
	return err
}

// header is a GNU header with owner 0:0 and no names, as with --numeric-owner under fakeroot;
// whole-second times and short names leave archive/tar no reason to add PAX records.
func header(name string, typ byte, size, mode int64, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Size:     size,
		Mode:     mode,
		ModTime:  mtime,
		Format:   tar.FormatGNU,
	}
}
