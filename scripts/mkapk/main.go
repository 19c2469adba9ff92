// Command mkapk packs delve, or luci-app-delve (-pkg luci-app-delve -arch all), into an .apk for apk-tools v3, the package manager of OpenWrt 25.12
// and later, as OpenWrt's build system does with `apk mkpkg` (include/package-pack.mk; the
// format: apk-tools doc/apk-v3.5.scd, src/adb.h, src/apk_adb.h, src/apk_adb.c, src/app_mkpkg.c,
// as of apk-tools 3.0.5). The file is "ADBd" and a raw deflate stream of: the header "ADB."
// with the schema "pckg", one ADB block holding the package's metadata and every path with its
// mode, owner and SHA-256, then one DATA block per non-empty file. It is unsigned, like
// OpenWrt's own packages (OpenWrt signs the index): `apk add --allow-untrusted` installs it.
//
// The uncompressed bytes are what apk mkpkg writes for the same tree (values in the same order,
// shared the same way); the deflate stream is GNU gzip -9n's, as in the .ipk, where apk mkpkg
// uses zlib at level 9. compress/flate at BestCompression made the armv7 .apk 2,513,402 bytes,
// 2.97 % over its .ipk; gzip -9n makes it 0.1 to 0.2 % over (zlib: 0.2 % under). The same inputs give
// the same bytes.
//
//	go run ./scripts/mkapk -arch mipsel_24kc -version 0.1.0-r1 -epoch 1700000000 \
//		-bin dist/mipsel_24kc/delve -files files -o dist/mipsel_24kc/delve-0.1.0-r1.apk
//	go run ./scripts/mkapk -pkg luci-app-delve -arch all -version 0.1.0-r1 -epoch 1700000000 \
//		-files luci-app-delve -o dist/all/luci-app-delve-0.1.0-r1.apk
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/delvedns/delve/scripts/pkgdef"
)

func main() {
	var o options
	name := flag.String("pkg", pkgdef.Name, "the package: "+pkgdef.Name+" or "+pkgdef.LuCIName)
	flag.StringVar(&o.arch, "arch", "", "OpenWrt package architecture, e.g. mipsel_24kc, or all for "+pkgdef.LuCIName+" (required)")
	flag.StringVar(&o.version, "version", "", "package version, e.g. 1.2.3-r1 (required)")
	flag.StringVar(&o.bin, "bin", "", "the delve binary built for -arch (required for "+pkgdef.Name+")")
	flag.StringVar(&o.files, "files", "files", "for "+pkgdef.Name+": "+pkgdef.Delve().FilesHelp+"; for "+pkgdef.LuCIName+": "+pkgdef.LuCI().FilesHelp)
	flag.StringVar(&o.out, "o", "", "the .apk to write (default PKG-VERSION.apk)")
	epoch := flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "mtime of every file, Unix seconds (default $SOURCE_DATE_EPOCH)")
	flag.Parse()
	var err error
	if o.mtime, err = pkgdef.Epoch(*epoch); err != nil {
		fail(err)
	}
	if o.pkg, err = pkgdef.Lookup(*name); err != nil {
		fail(err)
	}
	if o.out == "" {
		o.out = fmt.Sprintf("%s-%s.apk", o.pkg.Name, o.version)
	}
	apk, err := build(o)
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(o.out, apk, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkapk:", err)
	os.Exit(1)
}

type options struct {
	pkg                            pkgdef.Package
	arch, version, bin, files, out string
	mtime                          time.Time
}

// scripts are the scripts OpenWrt's package-pack.mk generates for an .apk, quoted for
// shellcheck: the package's own steps (PostinstPkg, Postrm) without their #! line after
// OpenWrt's default_postinst / default_prerm, which enable and start, or stop and disable, the
// package's init scripts (delve's /etc/init.d/delve; a LuCI app has none); nothing of it in an
// image build without /lib/functions.sh. add_group_and_user creates the users a package asks
// for (neither asks for any). A package without a Postrm has no post-deinstall.
func scripts(p pkgdef.Package) (postInstall, postUpgrade, preDeinstall, postDeinstall string) {
	postInstall = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
export root="${IPKG_INSTROOT}"
export pkgname="` + p.Name + `"
add_group_and_user
default_postinst
` + withoutShebang(p.PostinstPkg)
	// An upgrade runs the new package's post-upgrade, not its post-install.
	postUpgrade = "#!/bin/sh\nexport PKG_UPGRADE=1\n" + withoutShebang(postInstall)
	preDeinstall = `#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
export root="${IPKG_INSTROOT}"
export pkgname="` + p.Name + `"
default_prerm
`
	return postInstall, postUpgrade, preDeinstall, p.Postrm
}

// withoutShebang drops the #! lines, as package-pack.mk's sed '/^\s*#!/d'.
func withoutShebang(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if !strings.HasPrefix(strings.TrimLeft(l, " \t"), "#!") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// Field ids of apk-tools src/apk_adb.h.
const (
	pkgInfo, pkgPaths, pkgScripts, pkgMax              = 1, 2, 3, 6
	piName, piVersion, piHashes, piDescription, piArch = 1, 2, 3, 4, 5
	piLicense, piOrigin, piURL                         = 6, 7, 9
	piInstalledSize, piDepends, piMax                  = 12, 15, 22
	scriptPostInstall, scriptPreDeinstall              = 3, 4
	scriptPostDeinstall, scriptPostUpgrade, scriptMax  = 5, 7, 8
	fiName, fiACL, fiSize, fiMtime, fiHash, fiMax      = 1, 2, 3, 4, 5, 7
	diName, diACL, diFiles, diMax                      = 1, 2, 3, 4
	aclMode, aclUser, aclGroup, aclMax                 = 1, 2, 3, 5
)

// The file and block format (apk-tools src/adb.h).
const (
	formatMagic   uint32 = 0x2e424441 // "ADB."
	schemaPackage uint32 = 0x676b6370 // "pckg"
	blockADB      uint32 = 0
	blockData     uint32 = 2
	maxBlock             = 0x3fffffff // a block's size, with its 4-byte header, in 30 bits
	uniqueIDLen          = 20         // a SHA-1's length, the first bytes of a SHA-256
	owner                = "root"
	dirMode       int64  = 0o755
	metadataMode  int64  = 0o644
)

// file is a regular file of the package.
type file struct {
	dir, name string
	mode      int64
	data      []byte
}

// tree is the payload plus what OpenWrt adds under /lib/apk/packages: NAME.list (the installed
// paths, sorted), NAME.conffiles (kept over upgrades and by sysupgrade) and
// NAME.conffiles_static (each conffile's path and SHA-256, which tells a changed one).
func tree(p pkgdef.Package, payload []pkgdef.Content) ([]file, error) {
	var files []file
	var list []string
	for _, c := range payload {
		files = append(files, file{path.Dir(c.Dst), path.Base(c.Dst), c.Mode, c.Data})
		list = append(list, "/"+c.Dst)
	}
	slices.Sort(list)
	var static strings.Builder
	for _, cf := range p.Conffiles {
		i := slices.IndexFunc(payload, func(c pkgdef.Content) bool { return "/"+c.Dst == cf })
		if i < 0 {
			return nil, fmt.Errorf("conffile %s is not in the payload", cf)
		}
		sum := sha256.Sum256(payload[i].Data)
		fmt.Fprintf(&static, "%s %s\n", cf, hex.EncodeToString(sum[:]))
	}
	meta := "lib/apk/packages"
	files = append(files, file{meta, p.Name + ".list", metadataMode, []byte(strings.Join(list, "\n") + "\n")})
	if len(p.Conffiles) > 0 {
		files = append(files,
			file{meta, p.Name + ".conffiles", metadataMode, []byte(strings.Join(p.Conffiles, "\n") + "\n")},
			file{meta, p.Name + ".conffiles_static", metadataMode, []byte(static.String())},
		)
	}
	return files, nil
}

// build returns the .apk.
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
	files, err := tree(o.pkg, payload)
	if err != nil {
		return nil, err
	}
	raw, err := encode(o, files)
	if err != nil {
		return nil, err
	}
	z, err := pkgdef.Deflate(raw)
	if err != nil {
		return nil, err
	}
	return append([]byte("ADBd"), z...), nil
}

// encode returns the uncompressed package: the file header, the ADB block, the DATA blocks.
// It writes the values in apk mkpkg's order: the info fields, then each directory (the root
// first, then the others sorted) with its files, then the info object, the paths, the scripts
// and the package object.
func encode(o options, files []file) ([]byte, error) {
	dirs := map[string][]file{"": nil}
	for _, f := range files {
		dirs[f.dir] = append(dirs[f.dir], f)
		for d := path.Dir(f.dir); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = nil
			}
		}
	}
	dirNames := make([]string, 0, len(dirs))
	for d := range dirs {
		if d != "" {
			dirNames = append(dirNames, d)
		}
	}
	slices.Sort(dirNames)
	dirNames = append([]string{""}, dirNames...) // the root node, as apk mkpkg writes by default

	a := newADB()
	info := make([]uint32, piMax)
	info[piName] = a.str(o.pkg.Name)
	info[piVersion] = a.str(o.version)
	info[piDescription] = a.str(strings.Join(o.pkg.Description, " "))
	// apk-tools installs only its own arches and noarch (apk_db_arch_compatible), so an arch-all
	// package says noarch in the .apk, as OpenWrt's package-pack.mk writes it (arch:<PKGARCH|noarch>).
	info[piArch] = a.str(apkArch(o.arch))
	info[piLicense] = a.str(o.pkg.License)
	info[piOrigin] = a.str(o.pkg.Source)
	info[piURL] = a.str(o.pkg.URL)
	var deps []uint32
	depNames := map[uint32]string{}
	for _, d := range o.pkg.Depends {
		v := a.object([]uint32{0, a.str(d)}) // schema dependency: name only, any version
		if _, dup := depNames[v]; !dup {
			deps = append(deps, v)
		}
		depNames[v] = d
	}
	sortByName(deps, depNames)
	info[piDepends] = a.array(deps)

	var installedSize uint64
	var paths []uint32
	pathNames := map[uint32]string{}
	fileOrder := map[string][]file{} // directory -> its files in the order of the files array
	for _, d := range dirNames {
		fs := slices.Clone(dirs[d])
		slices.SortFunc(fs, func(x, y file) int { return strings.Compare(x.name, y.name) })
		var vals []uint32
		fileNames := map[uint32]string{}
		for _, f := range fs {
			if len(f.data) > maxBlock-16 {
				return nil, fmt.Errorf("%s/%s: %d bytes, more than one DATA block holds", d, f.name, len(f.data))
			}
			sum := sha256.Sum256(f.data)
			slots := make([]uint32, fiMax)
			slots[fiName] = a.str(f.name)
			slots[fiHash] = a.blob(sum[:])
			slots[fiMtime] = a.integer(uint64(o.mtime.Unix()))
			slots[fiSize] = a.integer(uint64(len(f.data)))
			slots[fiACL] = acl(a, f.mode)
			v := a.object(slots)
			vals = append(vals, v)
			fileNames[v] = f.name
			installedSize += uint64(len(f.data))
		}
		sortByName(vals, fileNames)
		fileOrder[d] = fs
		slots := make([]uint32, diMax)
		slots[diName] = a.str(d)
		slots[diACL] = acl(a, dirMode)
		slots[diFiles] = a.array(vals)
		v := a.object(slots)
		paths = append(paths, v)
		pathNames[v] = d
	}
	info[piInstalledSize] = a.integer(installedSize)
	// The package's unique id: the first 20 bytes of the SHA-256 of the ADB block with these
	// bytes zero, filled in last (written unshared, as adb_wo_blob_raw does).
	info[piHashes] = a.blobVal(make([]byte, uniqueIDLen), false)
	idOff := info[piHashes]&valueMask + 1

	pkg := make([]uint32, pkgMax)
	pkg[pkgInfo] = a.object(info)
	sortByName(paths, pathNames)
	pkg[pkgPaths] = a.array(paths)
	postInstall, postUpgrade, preDeinstall, postDeinstall := scripts(o.pkg)
	slots := make([]uint32, scriptMax)
	slots[scriptPostInstall] = a.str(postInstall)
	slots[scriptPreDeinstall] = a.str(preDeinstall)
	if postDeinstall != "" {
		slots[scriptPostDeinstall] = a.str(postDeinstall)
	}
	slots[scriptPostUpgrade] = a.str(postUpgrade)
	pkg[pkgScripts] = a.object(slots)
	a.setRoot(a.object(pkg))
	if a.err != nil {
		return nil, a.err
	}
	id := sha256.Sum256(a.b)
	copy(a.b[idOff:idOff+uniqueIDLen], id[:])

	var out bytes.Buffer
	out.Write(binary.LittleEndian.AppendUint32(nil, formatMagic))
	out.Write(binary.LittleEndian.AppendUint32(nil, schemaPackage))
	block(&out, blockADB, a.b)
	// The DATA blocks follow the paths array and each directory's files array, numbered from 1
	// as there; a block starts with those two numbers. Empty files have none.
	for i, v := range paths {
		d := pathNames[v]
		for j, f := range fileOrder[d] {
			if len(f.data) == 0 {
				continue
			}
			var hdr [8]byte
			binary.LittleEndian.PutUint32(hdr[0:], uint32(i+1))
			binary.LittleEndian.PutUint32(hdr[4:], uint32(j+1))
			block(&out, blockData, append(hdr[:], f.data...))
		}
	}
	return out.Bytes(), nil
}

// acl writes the owner and mode object; root:root, as under OpenWrt's fakeroot.
func acl(a *adb, mode int64) uint32 {
	slots := make([]uint32, aclMax)
	slots[aclMode] = a.integer(uint64(mode))
	slots[aclUser] = a.str(owner)
	slots[aclGroup] = a.str(owner)
	return a.object(slots)
}

// block writes a block: a u32 with the type in the top 2 bits and the size (with this u32) in
// the other 30, the payload, and zeros up to a multiple of 8 bytes.
func block(out *bytes.Buffer, typ uint32, payload []byte) {
	size := 4 + len(payload)
	out.Write(binary.LittleEndian.AppendUint32(nil, typ<<30|uint32(size)))
	out.Write(payload)
	for ; size%8 != 0; size++ {
		out.WriteByte(0)
	}
}

// apkArch is the arch an .apk names for an OpenWrt package arch: "all" is apk's "noarch".
func apkArch(arch string) string {
	if arch == "all" {
		return "noarch"
	}
	return arch
}
