// Package pkgdef is what the project's two package formats share: for each package (delve, and
// luci-app-delve), the metadata, the payload (which file goes where, from where, with which
// mode), the conffiles and the package's own maintainer steps. scripts/mkipk packs it for opkg
// (OpenWrt 24.10 and earlier), scripts/mkapk for apk (25.12 and later); the feed recipes
// openwrt/delve/Makefile and luci-app-delve/Makefile say the same, and internal/crossbuild holds
// them to each other.
package pkgdef

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The package's fixed metadata.
const (
	Name    = "delve"
	Source  = "github.com/delvedns/delve"
	Section = "net"
	URL     = "https://github.com/delvedns/delve"
	License = "MIT" // LICENSE at the top of the repository
)

// Depends: libc (OpenWrt adds it to every package), ca-bundle for certificate checks, rpcd for
// the ubus object.
var Depends = []string{"libc", "ca-bundle", "rpcd"}

// Description is written as the feed recipe's define Package/delve/description has it, one
// entry a line. The .ipk keeps the lines; apk's description is one line (OpenWrt joins them with
// $(strip ...)).
var Description = []string{
	"DNS-over-TLS (RFC 7858) lookups with warm, pipelined connections and a cache.",
	"delve NAME [TYPE] answers from a shell like kdig +tls; the procd service serves",
	"JSON-RPC 2.0 on a unix socket (and a WebSocket when configured) and plain DNS to",
	"dnsmasq, and rpcd makes it the ubus object delve:",
	`ubus call delve lookup '{"name":"openwrt.org"}'`,
}

// File is one payload file: where it goes (relative to /), where it comes from, and its mode.
type File struct {
	Dst, Src string
	Mode     int64
}

// BinPath is where the binary goes; the rpcd shim execs it there.
const BinPath = "usr/bin/delve"

// Payload lists what the package installs (README.md, "Install on a router"), sorted by Dst;
// Src is relative to the files directory, except the binary's, which is bin. The modes are
// OpenWrt's INSTALL_BIN (0755), INSTALL_CONF (0600) and INSTALL_DATA (0644).
func Payload(bin string) []File {
	return []File{
		{"etc/config/delve", "delve.config", 0o600},
		{"etc/init.d/delve", "delve.init", 0o755},
		{BinPath, bin, 0o755},
		{"usr/libexec/rpcd/delve", "delve.rpcd", 0o755},
		{"usr/share/acl.d/delve.json", "delve.ubusd-acl.json", 0o644},
		{"usr/share/rpcd/acl.d/delve.json", "delve.acl.json", 0o644},
	}
}

// Conffiles are kept over an upgrade (and by sysupgrade): /etc/config/delve.
var Conffiles = []string{"/etc/config/delve"}

// Content is a payload file read in.
type Content struct {
	File
	Data []byte
}

// Read reads delve's payload: the binary from bin, the rest from the files directory.
func Read(files, bin string) ([]Content, error) { return Delve().Read(files, bin) }

// The package's own maintainer steps, the feed recipe's define Package/delve/postinst and
// /postrm. OpenWrt wraps them in its generated scripts (mkipk and mkapk write those, each as
// OpenWrt does for its format), which source /lib/functions.sh first and, after postinst, enable
// and start /etc/init.d/delve.
//
// postinst makes the user delve and its group delve, which the init script runs the daemon as,
// with the first id from 32768 up that no user and no group has, with /lib/functions.sh's
// user_add and group_add, also in an image build; an existing user is kept. On a running router
// it then has ubusd re-read /usr/share/acl.d (ubusd reads it at start and on SIGHUP) so that the
// user may publish delve; restarts the daemon when it made the user and the daemon already runs
// (an .apk's default_postinst starts it before this part, as root); and reloads rpcd, which reads
// its exec plugins at start and on reload: the ubus object delve appears. postrm reloads rpcd,
// and the object goes; the user stays, as OpenWrt packages leave theirs.
const (
	PostinstPkg = `#!/bin/sh
made=
if ! user_exists delve; then
	made=1
	id=32768
	while grep -qs "^[^:]*:[^:]*:$id:" "${IPKG_INSTROOT}/etc/passwd" "${IPKG_INSTROOT}/etc/group"; do
		id=$((id + 1))
	done
	group_exists delve || group_add delve "$id"
	gid=$(sed -n 's/^delve:[^:]*:\([0-9]*\):.*/\1/p' "${IPKG_INSTROOT}/etc/group")
	user_add delve "$id" "${gid:-$id}" delve /var/run/delve /bin/false
fi
[ -n "${IPKG_INSTROOT}" ] && exit 0
for pid in $(pidof ubusd); do kill -HUP "$pid"; done
[ -n "$made" ] && /etc/init.d/delve running 2>/dev/null && /etc/init.d/delve restart
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
`
	Postrm = `#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
`
)

// Package is one package the project makes: what mkipk and mkapk need to know of it.
type Package struct {
	Name, Source, Section, URL, License string
	Depends                             []string
	Description                         []string // one entry a line, as the feed recipe has it
	// Arch is the architecture of a package that has one for every router ("all"); empty for
	// a package built per arch, around a binary.
	Arch      string
	Conffiles []string
	// PostinstPkg and Postrm are the package's own maintainer steps; "" for none.
	PostinstPkg, Postrm string
	// FilesHelp says what the files directory (-files) holds, for the packers' usage.
	FilesHelp string
	payload   func(files, bin string) ([]File, error)
}

// Delve is the delve package: the binary, the service, the rpcd plugin.
func Delve() Package {
	return Package{
		Name: Name, Source: Source, Section: Section, URL: URL, License: License,
		Depends: Depends, Description: Description, Conffiles: Conffiles,
		PostinstPkg: PostinstPkg, Postrm: Postrm,
		FilesHelp: "directory with delve.init, delve.config, delve.rpcd and delve.acl.json",
		payload: func(_, bin string) ([]File, error) {
			if bin == "" {
				return nil, errors.New("no -bin")
			}
			return Payload(bin), nil
		},
	}
}

// LuCIName is the LuCI application's package name; its files are in the repository's
// luci-app-delve directory, laid out as in the openwrt/luci tree.
const LuCIName = "luci-app-delve"

// LuCIPostinst is luci.mk's postinst for every LuCI application: LuCI's caches of the menu and
// the modules are dropped and rpcd re-reads its ACL files (the new access group).
const LuCIPostinst = `#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache.*
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
	exit 0
}
`

// LuCI is luci-app-delve, as luci-app-delve/Makefile (luci.mk) builds it: arch all, what
// htdocs/ holds under /www and what root/ holds under /, the modes as in the source tree (luci.mk
// copies with cp -pR: 0644, 0755 for an executable; directories 0755).
func LuCI() Package {
	return Package{
		Name: LuCIName, Source: Source + "/luci-app-delve", Section: "luci", URL: URL, License: License,
		Depends: []string{"libc", "luci-base", Name},
		Description: []string{
			"Status, a lookup tool and the settings of the delve DNS-over-TLS daemon in LuCI,",
			"through its ubus object delve (Services > DNS over TLS).",
		},
		Arch:        "all",
		PostinstPkg: LuCIPostinst,
		FilesHelp:   "the luci-app-delve directory",
		payload:     luciPayload,
	}
}

// Packages lists the packages, delve first.
func Packages() []Package { return []Package{Delve(), LuCI()} }

// Lookup returns the package named name.
func Lookup(name string) (Package, error) {
	for _, p := range Packages() {
		if p.Name == name {
			return p, nil
		}
	}
	return Package{}, fmt.Errorf("no package %q (packages: %s, %s)", name, Name, LuCIName)
}

// luciPayload walks the application's htdocs (installed under /www) and root (under /).
func luciPayload(dir, _ string) ([]File, error) {
	var out []File
	for _, tree := range []struct{ src, dst string }{{"htdocs", "www"}, {"root", ""}} {
		top := filepath.Join(dir, tree.src)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			rel, _ := filepath.Rel(top, p)
			mode := int64(0o644)
			if info.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
			out = append(out, File{Dst: path.Join(tree.dst, filepath.ToSlash(rel)), Src: filepath.Join(tree.src, rel), Mode: mode})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", top, err)
		}
	}
	slices.SortFunc(out, func(a, b File) int { return cmp.Compare(a.Dst, b.Dst) })
	return out, nil
}

// Files returns what the package installs, sorted by Dst: files is the files directory (-files),
// bin the binary for a per-arch package.
func (p Package) Files(files, bin string) ([]File, error) { return p.payload(files, bin) }

// Read reads the package's payload: the binary from bin, the rest from the files directory.
func (p Package) Read(files, bin string) ([]Content, error) {
	list, err := p.Files(files, bin)
	if err != nil {
		return nil, err
	}
	var out []Content
	for _, f := range list {
		src := f.Src
		if f.Dst != BinPath || p.Arch != "" {
			src = filepath.Join(files, f.Src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("reading %s for /%s: %w", src, f.Dst, err)
		}
		out = append(out, Content{f, b})
	}
	return out, nil
}

// CheckArch refuses an arch the package cannot have: a per-arch package needs a real one, an
// arch-all package exactly its own.
func (p Package) CheckArch(arch string) error {
	if p.Arch != "" && arch != p.Arch {
		return fmt.Errorf("%s is arch %s, not %s", p.Name, p.Arch, arch)
	}
	if p.Arch == "" && arch == "all" {
		return fmt.Errorf("%s is built per arch, not for all", p.Name)
	}
	return nil
}

var (
	// apk and opkg both accept this shape; see scripts/pkgversion.
	versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*-r[0-9]+$`)
	archRE    = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.+-]*$`)
)

// Check refuses a version or an arch that neither opkg nor apk would take.
func Check(arch, version string) error {
	if !archRE.MatchString(arch) {
		return fmt.Errorf("arch %q is not an OpenWrt package architecture", arch)
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q is not in the form 1.2.3-r1", version)
	}
	return nil
}

// Epoch parses SOURCE_DATE_EPOCH, the time every entry of a package carries.
func Epoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no -epoch and no SOURCE_DATE_EPOCH: the package needs a fixed time to be reproducible")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("epoch %q is not Unix seconds", s)
	}
	return time.Unix(n, 0), nil
}

// Gzip compresses b with GNU gzip -9n: no name and no time in the header, and 2.8% smaller than
// compress/gzip at BestCompression (the armv7 binary: 2,545,129 -> 2,474,116 bytes). Flash is
// what a router has least of; gzip is on every Debian system (an Essential package).
func Gzip(b []byte) ([]byte, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command("gzip", "-9n", "-c")
	cmd.Stdin = bytes.NewReader(b)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gzip -9n: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// Deflate is Gzip's raw deflate stream (RFC 1951), without the gzip header and trailer
// (RFC 1952): what apk's "ADBd" files hold.
func Deflate(b []byte) ([]byte, error) {
	z, err := Gzip(b)
	if err != nil {
		return nil, err
	}
	// gzip -n writes the fixed 10-byte header (ID1 ID2 CM=8 FLG=0 MTIME=0 XFL OS) and no
	// optional fields; the trailer is CRC32 and ISIZE, 8 bytes.
	if len(z) < 18 || z[0] != 0x1f || z[1] != 0x8b || z[2] != 8 || z[3] != 0 {
		return nil, fmt.Errorf("gzip -9n: unexpected header % x", z[:min(len(z), 10)])
	}
	return z[10 : len(z)-8], nil
}
