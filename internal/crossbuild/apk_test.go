package crossbuild

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// makePackages runs `make ipk apk` into dist with extra make arguments and returns the two
// paths it printed, the .ipk's and the .apk's.
func makePackages(t *testing.T, dist string, args ...string) (ipk, apk string) {
	t.Helper()
	ipk, apk, err := makePackagesErr(dist, args...)
	if err != nil {
		t.Fatal(err)
	}
	return ipk, apk
}

func makePackagesErr(dist string, args ...string) (ipk, apk string, err error) {
	args = append([]string{"-s", "--no-print-directory", "ipk", "apk", "ARCH=" + ipkArch, "DIST=" + dist, "SOURCE_DATE_EPOCH=" + epoch}, args...)
	out, err := run(buildTimeout, root, nil, "make", args...)
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		return "", "", fmt.Errorf("make ipk apk printed %q, want the two packages' paths", out)
	}
	abs := func(p string) string {
		if !filepath.IsAbs(p) {
			return filepath.Join(root, p)
		}
		return p
	}
	return abs(lines[len(lines)-2]), abs(lines[len(lines)-1]), nil
}

// armPackages are the packages of one `make ipk apk` for ipkArch, made once per test run for
// the tests that only read them.
var armPackages = sync.OnceValues(func() ([2]string, error) {
	ipk, apk, err := makePackagesErr(filepath.Join(tmp, "dist"))
	return [2]string{ipk, apk}, err
})

func sharedPackages(t *testing.T) (ipk, apk string) {
	t.Helper()
	p, err := armPackages()
	if err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// The apk v3 format, read here by apk-tools' specification (doc/apk-v3.5.scd, src/adb.h,
// src/apk_adb.h) and not with scripts/mkapk's code.
const (
	adbTypeMask   = 0xf0000000
	adbValueMask  = 0x0fffffff
	adbSpecial    = 0x00000000
	adbInt        = 0x10000000
	adbInt32      = 0x20000000
	adbInt64      = 0x30000000
	adbBlob8      = 0x80000000
	adbBlob16     = 0x90000000
	adbBlob32     = 0xa0000000
	adbArray      = 0xd0000000
	adbObject     = 0xe0000000
	blockTypeADB  = 0
	blockTypeSig  = 1
	blockTypeData = 2
	blockTypeExt  = 3
)

// adbTree is an ADB block with accessors that fail the test on malformed values.
type adbTree struct {
	t *testing.T
	b []byte
}

func (a adbTree) at(off, n uint32) []byte {
	a.t.Helper()
	if uint64(off)+uint64(n) > uint64(len(a.b)) {
		a.t.Fatalf("ADB: %d bytes at %d run past the block's %d", n, off, len(a.b))
	}
	return a.b[off : off+n]
}

// slots returns an object's or array's values, index 0 being the count as stored.
func (a adbTree) slots(v uint32) []uint32 {
	a.t.Helper()
	if v == 0 {
		return []uint32{1} // null: nothing set
	}
	if typ := v & adbTypeMask; typ != adbObject && typ != adbArray {
		a.t.Fatalf("ADB: value %#08x is not an object or array", v)
	}
	off := v & adbValueMask
	if off%4 != 0 {
		a.t.Fatalf("ADB: object at %d not aligned to 4", off)
	}
	n := binary.LittleEndian.Uint32(a.at(off, 4))
	if n == 0 {
		a.t.Fatalf("ADB: object at %d with count 0", off)
	}
	raw := a.at(off, 4*n)
	s := make([]uint32, n)
	for i := range s {
		s[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return s
}

// field is slot i of an object, null when the object is shorter.
func (a adbTree) field(obj uint32, i int) uint32 {
	a.t.Helper()
	s := a.slots(obj)
	if i >= len(s) {
		return 0
	}
	return s[i]
}

// items is an array's elements.
func (a adbTree) items(arr uint32) []uint32 { return a.slots(arr)[1:] }

func (a adbTree) blob(v uint32) []byte {
	a.t.Helper()
	off := v & adbValueMask
	switch v & adbTypeMask {
	case adbSpecial:
		if v != 0 {
			a.t.Fatalf("ADB: special value %#x where a blob was expected", v)
		}
		return nil
	case adbBlob8:
		n := uint32(a.at(off, 1)[0])
		return a.at(off+1, n)
	case adbBlob16:
		if off%2 != 0 {
			a.t.Fatalf("ADB: blob16 at %d not aligned", off)
		}
		return a.at(off+2, uint32(binary.LittleEndian.Uint16(a.at(off, 2))))
	case adbBlob32:
		if off%4 != 0 {
			a.t.Fatalf("ADB: blob32 at %d not aligned", off)
		}
		return a.at(off+4, binary.LittleEndian.Uint32(a.at(off, 4)))
	}
	a.t.Fatalf("ADB: value %#08x is not a blob", v)
	return nil
}

func (a adbTree) str(v uint32) string { return string(a.blob(v)) }

func (a adbTree) integer(v uint32) uint64 {
	a.t.Helper()
	off := v & adbValueMask
	switch v & adbTypeMask {
	case adbInt:
		return uint64(off)
	case adbInt32:
		return uint64(binary.LittleEndian.Uint32(a.at(off, 4)))
	case adbInt64:
		return binary.LittleEndian.Uint64(a.at(off, 8))
	}
	a.t.Fatalf("ADB: value %#08x is not an integer", v)
	return 0
}

// dataBlock is a DATA block: which file (1-based indexes into paths and its files) and the bytes.
type dataBlock struct {
	pathIdx, fileIdx uint32
	data             []byte
}

// readAPK decompresses a package and splits it into its ADB block and DATA blocks.
func readAPK(t *testing.T, b []byte) (adbTree, []dataBlock) {
	t.Helper()
	var raw []byte
	switch {
	case bytes.HasPrefix(b, []byte("ADBd")): // deflate (apk-tools adb_comp.c)
		var err error
		if raw, err = io.ReadAll(flate.NewReader(bytes.NewReader(b[4:]))); err != nil {
			t.Fatalf("apk: inflating: %v", err)
		}
	case bytes.HasPrefix(b, []byte("ADB.")):
		raw = b
	default:
		t.Fatalf("apk: file starts with %q, not ADBd or ADB.", b[:min(4, len(b))])
	}
	if len(raw) < 8 || string(raw[:4]) != "ADB." || string(raw[4:8]) != "pckg" {
		t.Fatalf("apk: header %q, want ADB. and the package schema pckg", raw[:min(8, len(raw))])
	}
	var tree adbTree
	var data []dataBlock
	for off := 8; off < len(raw); {
		if off+4 > len(raw) {
			t.Fatalf("apk: %d stray bytes at the end", len(raw)-off)
		}
		tag := binary.LittleEndian.Uint32(raw[off:])
		typ, size := tag>>30, int(tag&0x3fffffff)
		if typ == blockTypeExt {
			t.Fatalf("apk: extended block at %d; none is this large", off)
		}
		if size < 4 || off+size > len(raw) {
			t.Fatalf("apk: block at %d of size %d in %d bytes", off, size, len(raw))
		}
		payload := raw[off+4 : off+size]
		next := off + (size+7)/8*8 // blocks are aligned to 8 (ADB_BLOCK_ALIGNMENT)
		if next > len(raw) || !bytes.Equal(raw[off+size:next], make([]byte, next-off-size)) {
			t.Fatalf("apk: block at %d: padding missing or not zero", off)
		}
		switch typ {
		case blockTypeADB:
			if tree.b != nil || len(data) > 0 {
				t.Fatalf("apk: ADB block at %d is not the first and only one", off)
			}
			tree = adbTree{t, payload}
		case blockTypeSig:
			t.Fatalf("apk: a SIG block at %d; the package is meant to be unsigned", off)
		case blockTypeData:
			if tree.b == nil {
				t.Fatalf("apk: DATA block at %d before the ADB block", off)
			}
			if len(payload) < 8 {
				t.Fatalf("apk: DATA block at %d without its header", off)
			}
			data = append(data, dataBlock{binary.LittleEndian.Uint32(payload), binary.LittleEndian.Uint32(payload[4:]), payload[8:]})
		}
		off = next
	}
	if tree.b == nil {
		t.Fatal("apk: no ADB block")
	}
	// struct adb_hdr: compat version 0 (apk refuses others), version, reserved, root.
	if len(tree.b) < 8 || tree.b[0] != 0 {
		t.Fatalf("apk: ADB header % x", tree.b[:min(8, len(tree.b))])
	}
	return tree, data
}

// Field ids of apk-tools src/apk_adb.h.
const (
	pkgInfo, pkgPaths, pkgScripts, pkgTriggers, pkgReplacesPriority = 1, 2, 3, 4, 5
	piName, piVersion, piHashes, piDescription, piArch, piLicense   = 1, 2, 3, 4, 5, 6
	piOrigin, piMaintainer, piURL, piInstalledSize, piDepends       = 7, 8, 9, 12, 15
	depName                                                         = 1
	diName, diACL, diFiles                                          = 1, 2, 3
	fiName, fiACL, fiSize, fiMtime, fiHashes, fiTarget              = 1, 2, 3, 4, 5, 6
	aclMode, aclUser, aclGroup, aclXattrs                           = 1, 2, 3, 4
)

var scriptNames = []string{1: "trigger", 2: "pre-install", 3: "post-install", 4: "pre-deinstall", 5: "post-deinstall", 6: "pre-upgrade", 7: "post-upgrade"}

// apkFile is a regular file as the ADB block lists it, with its content from its DATA block.
type apkFile struct {
	mode       uint64
	user, grp  string
	size       uint64
	mtime      uint64
	hash, data []byte
}

func TestAPK(t *testing.T) {
	ipkPath, first := sharedPackages(t)
	_, second := makePackages(t, t.TempDir()) // elsewhere, from the same commit
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	ipkBytes, err := os.ReadFile(ipkPath)
	if err != nil {
		t.Fatal(err)
	}
	sa := sha256.Sum256(a)
	t.Logf("%s: %d bytes, sha256 %s; the .ipk of the same build %d bytes", first, len(a), hex.EncodeToString(sa[:]), len(ipkBytes))
	t.Run("reproducible", func(t *testing.T) {
		if !bytes.Equal(a, b) {
			sb := sha256.Sum256(b)
			t.Fatalf("two builds differ: sha256 %x and %x", sa, sb)
		}
	})

	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(first), "delve-"), ".apk")
	t.Run("file name and version", func(t *testing.T) {
		// OpenWrt's name, <name>-<version>.apk, in a folder per arch beside the binary.
		if filepath.Base(filepath.Dir(first)) != ipkArch || filepath.Base(first) != "delve-"+version+".apk" {
			t.Fatalf("path %s, want .../%s/delve-VERSION.apk", first, ipkArch)
		}
		if filepath.Base(ipkPath) != "delve_"+version+"_"+ipkArch+".ipk" {
			t.Fatalf("the .ipk is %s, the .apk %s: not one version", filepath.Base(ipkPath), filepath.Base(first))
		}
	})

	tree, data := readAPK(t, a)
	rootObj := binary.LittleEndian.Uint32(tree.b[4:])
	pkg := tree.slots(rootObj)
	for i := pkgTriggers; i < len(pkg); i++ {
		if pkg[i] != 0 {
			t.Errorf("package field %d set: %#x", i, pkg[i])
		}
	}
	info := tree.field(rootObj, pkgInfo)

	t.Run("info", func(t *testing.T) {
		check := func(id int, name, want string) {
			if got := tree.str(tree.field(info, id)); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
		check(piName, "name", "delve")
		check(piVersion, "version", version)
		check(piArch, "arch", ipkArch)
		check(piLicense, "license", "MIT")
		check(piOrigin, "origin", "github.com/delvedns/delve")
		check(piURL, "url", "https://github.com/delvedns/delve")
		check(piMaintainer, "maintainer", "") // the feed recipe has no PKG_MAINTAINER
		// OpenWrt passes $(strip) of the recipe's description: its lines joined by spaces.
		check(piDescription, "description", strings.Join(recipeDescription(t), " "))
		var deps []string
		for _, d := range tree.items(tree.field(info, piDepends)) {
			if s := tree.slots(d); len(s) != 2 {
				t.Errorf("dependency with %d slots: a version or match where none is wanted", len(s))
			}
			deps = append(deps, tree.str(tree.field(d, depName)))
		}
		// apk keeps dependencies sorted (pre_commit adb_wa_sort_unique).
		if !slices.Equal(deps, []string{"ca-bundle", "libc", "rpcd"}) {
			t.Errorf("depends %v", deps)
		}
		// The unique id: the first 20 bytes of the SHA-256 of the ADB block with them zero.
		hv := tree.field(info, piHashes)
		id := tree.blob(hv)
		if len(id) != 20 || hv&adbTypeMask != adbBlob8 {
			t.Fatalf("hashes: %d bytes (%#x), want a 20-byte blob", len(id), hv)
		}
		zeroed := slices.Clone(tree.b)
		off := hv&adbValueMask + 1
		copy(zeroed[off:off+20], make([]byte, 20))
		if sum := sha256.Sum256(zeroed); !bytes.Equal(id, sum[:20]) {
			t.Errorf("hashes %x, want %x", id, sum[:20])
		}
		if v := version; !strings.Contains(v, "-r") {
			t.Errorf("version %q has no -r release", v)
		}
	})

	// The paths, each directory's files, and which DATA block holds which file.
	files := map[string]*apkFile{}
	var dirs []string
	t.Run("paths", func(t *testing.T) {
		for i, p := range tree.items(tree.field(rootObj, pkgPaths)) {
			dir := tree.str(tree.field(p, diName))
			dirs = append(dirs, dir)
			acl := tree.field(p, diACL)
			if m, u, g := tree.integer(tree.field(acl, aclMode)), tree.str(tree.field(acl, aclUser)), tree.str(tree.field(acl, aclGroup)); m != 0o755 || u != "root" || g != "root" {
				t.Errorf("directory %q: %o %s:%s, want 0755 root:root", dir, m, u, g)
			}
			var names []string
			for j, f := range tree.items(tree.field(p, diFiles)) {
				name := tree.str(tree.field(f, fiName))
				names = append(names, name)
				facl := tree.field(f, fiACL)
				if x := tree.field(facl, aclXattrs); x != 0 {
					t.Errorf("%s/%s: xattrs", dir, name)
				}
				if tgt := tree.field(f, fiTarget); tgt != 0 {
					t.Errorf("%s/%s: a link or device target", dir, name)
				}
				af := &apkFile{
					mode: tree.integer(tree.field(facl, aclMode)), user: tree.str(tree.field(facl, aclUser)), grp: tree.str(tree.field(facl, aclGroup)),
					size: tree.integer(tree.field(f, fiSize)), mtime: tree.integer(tree.field(f, fiMtime)), hash: tree.blob(tree.field(f, fiHashes)),
				}
				for _, d := range data {
					if d.pathIdx == uint32(i+1) && d.fileIdx == uint32(j+1) {
						if af.data != nil {
							t.Errorf("%s/%s: two DATA blocks", dir, name)
						}
						af.data = d.data
					}
				}
				files[path.Join("/", dir, name)] = af
			}
			if !slices.IsSorted(names) {
				t.Errorf("directory %q: files not sorted: %v", dir, names)
			}
		}
		// Sorted as apk looks them up (bytewise, a prefix first), the root node first.
		if !slices.IsSorted(dirs) {
			t.Errorf("paths not sorted: %v", dirs)
		}
		want := []string{"", "etc", "etc/config", "etc/init.d", "lib", "lib/apk", "lib/apk/packages", "usr", "usr/bin",
			"usr/libexec", "usr/libexec/rpcd", "usr/share", "usr/share/acl.d", "usr/share/rpcd", "usr/share/rpcd/acl.d"}
		if !slices.Equal(dirs, want) {
			t.Errorf("directories %q, want %q", dirs, want)
		}
		// DATA blocks come in the order of the paths and files they hold.
		for i := 1; i < len(data); i++ {
			p, c := data[i-1], data[i]
			if c.pathIdx < p.pathIdx || c.pathIdx == p.pathIdx && c.fileIdx <= p.fileIdx {
				t.Errorf("DATA block %d (%d/%d) after %d/%d", i, c.pathIdx, c.fileIdx, p.pathIdx, p.fileIdx)
			}
		}
		if n := len(files); len(data) != n {
			t.Errorf("%d DATA blocks for %d files", len(data), n)
		}
	})

	t.Run("files", func(t *testing.T) {
		want := map[string]struct {
			mode uint64
			src  string // in the repository; "" for what is checked below
		}{
			"/etc/config/delve":                        {0o600, "files/delve.config"},
			"/etc/init.d/delve":                        {0o755, "files/delve.init"},
			"/usr/bin/delve":                           {0o755, ""},
			"/usr/libexec/rpcd/delve":                  {0o755, "files/delve.rpcd"},
			"/usr/share/acl.d/delve.json":              {0o644, "files/delve.ubusd-acl.json"},
			"/usr/share/rpcd/acl.d/delve.json":         {0o644, "files/delve.acl.json"},
			"/lib/apk/packages/delve.list":             {0o644, ""},
			"/lib/apk/packages/delve.conffiles":        {0o644, ""},
			"/lib/apk/packages/delve.conffiles_static": {0o644, ""},
		}
		var got []string
		for p := range files {
			got = append(got, p)
		}
		var wantNames []string
		for p := range want {
			wantNames = append(wantNames, p)
		}
		slices.Sort(got)
		slices.Sort(wantNames)
		if !slices.Equal(got, wantNames) {
			t.Fatalf("files %v, want %v", got, wantNames)
		}
		var installed uint64
		for p, f := range files {
			w := want[p]
			if f.mode != w.mode || f.user != "root" || f.grp != "root" {
				t.Errorf("%s: %o %s:%s, want %o root:root", p, f.mode, f.user, f.grp, w.mode)
			}
			if strconv.FormatUint(f.mtime, 10) != epoch {
				t.Errorf("%s: mtime %d, want SOURCE_DATE_EPOCH %s", p, f.mtime, epoch)
			}
			if f.size != uint64(len(f.data)) {
				t.Errorf("%s: size %d, DATA block %d bytes", p, f.size, len(f.data))
			}
			// apk checks each file against its SHA-256 as it extracts it.
			if sum := sha256.Sum256(f.data); !bytes.Equal(f.hash, sum[:]) {
				t.Errorf("%s: hash %x, content's %x", p, f.hash, sum)
			}
			if w.src != "" {
				src, err := os.ReadFile(filepath.Join(root, w.src))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(f.data, src) {
					t.Errorf("%s differs from %s", p, w.src)
				}
			}
			installed += f.size
		}
		if got := tree.integer(tree.field(info, piInstalledSize)); got != installed {
			t.Errorf("installed-size %d, the files add up to %d", got, installed)
		}

		bin := files["/usr/bin/delve"].data
		ef, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("/usr/bin/delve: %v", err)
		}
		if ef.Machine != elf.EM_ARM {
			t.Fatalf("/usr/bin/delve is for %v, want ARM", ef.Machine)
		}
		// The same binary as in the .ipk of the same build.
		outer := readTarGz(t, "ipk", ipkBytes)
		ipkData := readTarGz(t, "data.tar.gz", find(t, outer, "./data.tar.gz").data)
		if !bytes.Equal(find(t, ipkData, "./usr/bin/delve").data, bin) {
			t.Errorf("the .apk's /usr/bin/delve is not the .ipk's")
		}
		for _, m := range ipkData {
			if m.hdr.Typeflag != '0' {
				continue
			}
			f := files[strings.TrimPrefix(m.hdr.Name, ".")]
			if f == nil || f.mode != uint64(m.hdr.Mode) || !bytes.Equal(f.data, m.data) {
				t.Errorf("%s: not in the .apk as in the .ipk", m.hdr.Name)
			}
		}

		// OpenWrt's package metadata (package-pack.mk): the installed paths, sorted; the
		// conffiles; each conffile with its SHA-256.
		list := "/etc/config/delve\n/etc/init.d/delve\n/usr/bin/delve\n/usr/libexec/rpcd/delve\n/usr/share/acl.d/delve.json\n/usr/share/rpcd/acl.d/delve.json\n"
		if got := string(files["/lib/apk/packages/delve.list"].data); got != list {
			t.Errorf("delve.list:\n%s\nwant\n%s", got, list)
		}
		if got := string(files["/lib/apk/packages/delve.conffiles"].data); got != "/etc/config/delve\n" {
			t.Errorf("delve.conffiles %q", got)
		}
		sum := sha256.Sum256(files["/etc/config/delve"].data)
		if got, want := string(files["/lib/apk/packages/delve.conffiles_static"].data), "/etc/config/delve "+hex.EncodeToString(sum[:])+"\n"; got != want {
			t.Errorf("delve.conffiles_static %q, want %q", got, want)
		}
	})

	scripts := map[string]string{}
	for i, v := range tree.slots(tree.field(rootObj, pkgScripts))[1:] {
		if v != 0 {
			if i+1 >= len(scriptNames) {
				t.Fatalf("script slot %d", i+1)
			}
			scripts[scriptNames[i+1]] = tree.str(v)
		}
	}
	t.Run("scripts", func(t *testing.T) {
		var names []string
		for n := range scripts {
			names = append(names, n)
		}
		slices.Sort(names)
		if want := []string{"post-deinstall", "post-install", "post-upgrade", "pre-deinstall"}; !slices.Equal(names, want) {
			t.Fatalf("scripts %v, want %v (OpenWrt's for a package with postinst and postrm)", names, want)
		}
		sh := testenv.RequireTool(t, "sh", "dash")
		shellcheck := testenv.RequireTool(t, "shellcheck", "shellcheck")
		dir := t.TempDir()
		for name, body := range scripts {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(body, "#!/bin/sh\n") || strings.Count(body, "#!") != 1 {
				t.Errorf("%s: want one #!/bin/sh, at the top:\n%s", name, body)
			}
			if _, err := run(time.Minute, dir, nil, sh, "-n", p); err != nil {
				t.Errorf("sh -n %s: %v", name, err)
			}
			if out, err := run(time.Minute, dir, nil, shellcheck, "-s", "sh", p); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", name, err, out)
			}
		}
		if !strings.HasPrefix(scripts["post-upgrade"], "#!/bin/sh\nexport PKG_UPGRADE=1\n") ||
			strings.TrimPrefix(scripts["post-upgrade"], "#!/bin/sh\nexport PKG_UPGRADE=1\n") != strings.TrimPrefix(scripts["post-install"], "#!/bin/sh\n") {
			t.Errorf("post-upgrade is not post-install with PKG_UPGRADE=1:\n%s", scripts["post-upgrade"])
		}
	})

	t.Run("scripts run", func(t *testing.T) {
		// Against stand-ins for OpenWrt's /lib/functions.sh and /etc/init.d/rpcd. On a live
		// system post-install enables and starts delve (default_postinst) and reloads rpcd;
		// in an image build ($IPKG_INSTROOT set) it does the first and rpcd starts later.
		sh := testenv.RequireTool(t, "sh", "dash")
		for _, tt := range []struct {
			script, instroot string
			want             []string
		}{
			{"post-install", "", []string{"add_group_and_user pkgname=delve root=", "default_postinst pkgname=delve root=", "rpcd reload"}},
			{"post-install", "image", []string{"add_group_and_user pkgname=delve root=IMAGE", "default_postinst pkgname=delve root=IMAGE"}},
			{"post-upgrade", "", []string{"add_group_and_user pkgname=delve root=", "default_postinst pkgname=delve root= upgrade", "rpcd reload"}},
			{"pre-deinstall", "", []string{"default_prerm pkgname=delve root="}},
			{"post-deinstall", "", []string{"rpcd reload"}},
			{"post-deinstall", "image", nil},
		} {
			t.Run(tt.script+" "+tt.instroot, func(t *testing.T) {
				dir := t.TempDir()
				log := filepath.Join(dir, "log")
				instroot := ""
				if tt.instroot != "" {
					instroot = filepath.Join(dir, "image")
				}
				lib := filepath.Join(dir, "image", "lib")
				os.MkdirAll(lib, 0o755)
				// default_postinst in an upgrade sees PKG_UPGRADE=1.
				filter := "cat"
				if instroot != "" {
					filter = fmt.Sprintf(`sed "s|%s|IMAGE|"`, instroot)
				}
				stand := fmt.Sprintf(`say() { echo "$* pkgname=$pkgname root=$root${PKG_UPGRADE:+ upgrade}" | %[1]s >>%[2]s; }
add_group_and_user() { echo "add_group_and_user pkgname=$pkgname root=$root" | %[1]s >>%[2]s; }
default_postinst() { say default_postinst; }
default_prerm() { say default_prerm; }
`, filter, log)
				if err := os.WriteFile(filepath.Join(lib, "functions.sh"), []byte(stand), 0o644); err != nil {
					t.Fatal(err)
				}
				rpcd := filepath.Join(dir, "rpcd")
				os.WriteFile(rpcd, []byte("#!/bin/sh\necho \"rpcd $*\" >>"+log+"\n"), 0o755)
				body := strings.ReplaceAll(scripts[tt.script], "/etc/init.d/rpcd", rpcd)
				if tt.instroot == "" { // the live system's /lib/functions.sh is the stand-in
					body = strings.ReplaceAll(body, `${IPKG_INSTROOT}/lib/functions.sh`, filepath.Join(lib, "functions.sh"))
				}
				p := filepath.Join(dir, tt.script)
				os.WriteFile(p, []byte(body), 0o755)
				if _, err := run(time.Minute, dir, []string{"IPKG_INSTROOT=" + instroot}, sh, p, version); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(log)
				var lines []string
				sc := bufio.NewScanner(bytes.NewReader(got))
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				if !slices.Equal(lines, tt.want) {
					t.Errorf("calls %q, want %q", lines, tt.want)
				}
			})
		}
	})
}

// TestPackageVersion: one version everywhere. Both packages' Version fields are what the binary
// inside each prints on `delve version`'s first line, its second line the commit built; by
// default that version is scripts/pkgversion's, and VERSION or IPK_VERSION on the make command
// line sets it for the file names, the fields and the binary alike.
func TestPackageVersion(t *testing.T) {
	qemu := testenv.RequireTool(t, readArches(t)[ipkArch].qemu, "qemu-user")
	pkgversion, err := run(buildTimeout, root, nil, "./scripts/pkgversion")
	if err != nil {
		t.Fatal(err)
	}
	commit, err := run(buildTimeout, root, nil, "git", "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*")
	if err != nil {
		t.Fatal(err)
	}
	sharedIPK, sharedAPK := sharedPackages(t)
	for _, tc := range []struct {
		name, version string
		make          func(t *testing.T) (ipk, apk string)
	}{
		{"scripts/pkgversion", strings.TrimSpace(string(pkgversion)), func(*testing.T) (string, string) { return sharedIPK, sharedAPK }},
		{"IPK_VERSION", "9.8.7-r6", func(t *testing.T) (string, string) { return makePackages(t, t.TempDir(), "IPK_VERSION=9.8.7-r6") }},
		{"VERSION", "9.8.7-r5", func(t *testing.T) (string, string) { return makePackages(t, t.TempDir(), "VERSION=9.8.7-r5") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipk, apk := tc.make(t)
			v := tc.version
			if filepath.Base(ipk) != "delve_"+v+"_"+ipkArch+".ipk" || filepath.Base(apk) != "delve-"+v+".apk" {
				t.Fatalf("make printed %s and %s, want version %s", ipk, apk, v)
			}
			tree, data := readAPK(t, mustRead(t, apk))
			info := tree.field(binary.LittleEndian.Uint32(tree.b[4:]), pkgInfo)
			if got := tree.str(tree.field(info, piVersion)); got != v {
				t.Errorf(".apk version %q, want %q", got, v)
			}
			outer := readTarGz(t, "ipk", mustRead(t, ipk))
			control := string(find(t, readTarGz(t, "control.tar.gz", find(t, outer, "./control.tar.gz").data), "./control").data)
			if !strings.Contains(control, "\nVersion: "+v+"\n") {
				t.Errorf(".ipk control, want Version: %s:\n%s", v, control)
			}
			ipkBin := find(t, readTarGz(t, "data.tar.gz", find(t, outer, "./data.tar.gz").data), "./usr/bin/delve").data
			want := "delve " + v + "\ncommit " + strings.TrimSpace(string(commit)) + "\n"
			for what, bin := range map[string][]byte{".ipk": ipkBin, ".apk": apkFileData(t, tree, data, "usr/bin", "delve")} {
				path := filepath.Join(t.TempDir(), "delve")
				if err := os.WriteFile(path, bin, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := run(runTimeout, tmp, nil, qemu, path, "version")
				if err != nil {
					t.Fatal(err)
				}
				if string(out) != want {
					t.Errorf("the binary in the %s says %q, want %q", what, out, want)
				}
			}
		})
	}
}

// apkFileData is the content of the file name in directory dir of an .apk.
func apkFileData(t *testing.T, tree adbTree, data []dataBlock, dir, name string) []byte {
	t.Helper()
	for i, p := range tree.items(tree.field(binary.LittleEndian.Uint32(tree.b[4:]), pkgPaths)) {
		if tree.str(tree.field(p, diName)) != dir {
			continue
		}
		for j, f := range tree.items(tree.field(p, diFiles)) {
			if tree.str(tree.field(f, fiName)) != name {
				continue
			}
			for _, d := range data {
				if d.pathIdx == uint32(i+1) && d.fileIdx == uint32(j+1) {
					return d.data
				}
			}
		}
	}
	t.Fatalf("apk: no %s/%s", dir, name)
	return nil
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recipeDescription is the feed recipe's define Package/delve/description, a line an entry.
func recipeDescription(t *testing.T) []string {
	t.Helper()
	recipe := string(mustRead(t, filepath.Join(root, "openwrt/delve/Makefile")))
	_, def, ok := strings.Cut(recipe, "define Package/delve/description\n")
	if !ok {
		t.Fatal("the recipe has no define Package/delve/description")
	}
	def, _, _ = strings.Cut(def, "endef")
	var lines []string
	for l := range strings.Lines(def) {
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}

// budget reads scripts/size-budget, the size ratchet `make size` applies too.
func budget(t *testing.T) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for l := range strings.Lines(string(mustRead(t, filepath.Join(root, "scripts/size-budget")))) {
		l, _, _ = strings.Cut(l, "#")
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 2 || err != nil || n <= 0 {
			t.Fatalf("scripts/size-budget: line %q is not NAME BYTES", l)
		}
		m[f[0]] = n
	}
	for _, k := range []string{"binary", "ipk", "apk-over-ipk-percent"} {
		if m[k] == 0 {
			t.Fatalf("scripts/size-budget has no %s", k)
		}
	}
	return m
}
