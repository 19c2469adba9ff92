package crossbuild

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// makeLuCI runs `make luci-ipk luci-apk` into dist and returns the two paths it printed.
func makeLuCI(t *testing.T, dist string) (ipk, apk string) {
	t.Helper()
	out, err := run(buildTimeout, root, nil, "make", "-s", "--no-print-directory", "luci-ipk", "luci-apk", "DIST="+dist, "SOURCE_DATE_EPOCH="+epoch)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("make luci-ipk luci-apk printed %q", out)
	}
	abs := func(p string) string {
		if !filepath.IsAbs(p) {
			return filepath.Join(root, p)
		}
		return p
	}
	return abs(lines[len(lines)-2]), abs(lines[len(lines)-1])
}

// luciTree is what luci.mk installs of luci-app-delve: htdocs/ under /www, root/ under /, each
// file with its mode in the source tree (cp -pR: 0644, 0755 for an executable).
func luciTree(t *testing.T) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	for _, tree := range []struct{ src, dst string }{{"htdocs", "/www"}, {"root", "/"}} {
		top := filepath.Join(root, "luci-app-delve", tree.src)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(top, p)
			mode := int64(0o644)
			if info.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
			want[path.Join(tree.dst, filepath.ToSlash(rel))] = mode
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(want) < 8 {
		t.Fatalf("luci-app-delve holds %d files", len(want))
	}
	return want
}

// luciSource is the repository file an installed path comes from.
func luciSource(p string) string {
	if rest, ok := strings.CutPrefix(p, "/www/"); ok {
		return filepath.Join(root, "luci-app-delve/htdocs", rest)
	}
	return filepath.Join(root, "luci-app-delve/root", p)
}

// TestLuCIPackages reads back `make luci-ipk` and `make luci-apk` with the readers of TestIPK
// and TestAPK: arch all, Depends libc, luci-base and delve, the version of delve's packages,
// every file of the application where luci.mk puts it with its mode and bytes, OpenWrt's scripts
// around luci.mk's postinst (drop LuCI's caches, HUP rpcd), which shellcheck passes, and the same
// bytes from a second build.
func TestLuCIPackages(t *testing.T) {
	ipkPath, apkPath := makeLuCI(t, t.TempDir())
	ipk2, apk2 := makeLuCI(t, t.TempDir())
	ipk, apk := mustRead(t, ipkPath), mustRead(t, apkPath)
	if !bytes.Equal(ipk, mustRead(t, ipk2)) || !bytes.Equal(apk, mustRead(t, apk2)) {
		t.Fatal("two builds of the LuCI packages differ")
	}
	out, err := run(time.Minute, root, []string{"SOURCE_DATE_EPOCH=" + epoch}, "./scripts/pkgversion")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(out))
	if filepath.Base(ipkPath) != "luci-app-delve_"+version+"_all.ipk" || filepath.Base(apkPath) != "luci-app-delve-"+version+".apk" ||
		filepath.Base(filepath.Dir(apkPath)) != "all" {
		t.Fatalf("packages %s and %s, want version %s, arch all", ipkPath, apkPath, version)
	}
	t.Logf("%s: %d bytes; %s: %d bytes", filepath.Base(ipkPath), len(ipk), filepath.Base(apkPath), len(apk))
	want := luciTree(t)
	sh := testenv.RequireTool(t, "sh", "dash")
	shellcheck := testenv.RequireTool(t, "shellcheck", "shellcheck")
	checkScript := func(t *testing.T, name, body string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if o, err := run(time.Minute, root, nil, sh, "-n", p); err != nil {
			t.Errorf("sh -n %s: %v\n%s", name, err, o)
		}
		if o, err := run(time.Minute, root, nil, shellcheck, "-s", "sh", p); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", name, err, o)
		}
	}
	// luci.mk's Package/postinst for every application.
	const luciPostinst = "[ -n \"${IPKG_INSTROOT}\" ] || {\n\trm -f /tmp/luci-indexcache.*\n\trm -rf /tmp/luci-modulecache/\n\tkillall -HUP rpcd 2>/dev/null\n\texit 0\n}\n"

	t.Run("ipk", func(t *testing.T) {
		outer := readTarGz(t, "ipk", ipk)
		checkHeaders(t, "ipk", outer)
		if got := strings.Join(names(outer), " "); got != "./debian-binary ./data.tar.gz ./control.tar.gz" {
			t.Fatalf("members %s", got)
		}
		dataTar := find(t, outer, "./data.tar.gz").data
		data := readTarGz(t, "data.tar.gz", dataTar)
		checkHeaders(t, "data.tar.gz", data)
		got := map[string]int64{}
		for _, m := range data {
			name := strings.TrimPrefix(m.hdr.Name, ".")
			if strings.HasSuffix(name, "/") {
				if m.hdr.Mode != 0o755 {
					t.Errorf("directory %s: mode %o", name, m.hdr.Mode)
				}
				continue
			}
			got[name] = m.hdr.Mode
			if src := mustRead(t, luciSource(name)); !bytes.Equal(src, m.data) {
				t.Errorf("%s differs from the repository's", name)
			}
		}
		if !mapsEqual(got, want) {
			t.Errorf("files %v\nwant %v", got, want)
		}
		if !slices.IsSorted(names(data)) {
			t.Errorf("data.tar not sorted: %v", names(data))
		}

		control := readTarGz(t, "control.tar.gz", find(t, outer, "./control.tar.gz").data)
		checkHeaders(t, "control.tar.gz", control)
		if got := names(control); !slices.Equal(got, []string{"./", "./control", "./postinst", "./postinst-pkg", "./prerm"}) {
			t.Fatalf("control members %v: no conffiles, no postrm (luci.mk defines none)", got)
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(find(t, control, "./control").data), "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
				fields[k] = v
			}
		}
		for k, v := range map[string]string{"Package": "luci-app-delve", "Version": version, "Architecture": "all",
			"Depends": "libc, luci-base, delve", "Section": "luci", "License": "MIT", "SourceDateEpoch": epoch,
			"Installed-Size": strconv.Itoa(gunzipLen(t, dataTar))} {
			if fields[k] != v {
				t.Errorf("control %s: %q, want %q", k, fields[k], v)
			}
		}
		if pkg := string(find(t, control, "./postinst-pkg").data); pkg != "#!/bin/sh\n"+luciPostinst {
			t.Errorf("postinst-pkg is not luci.mk's postinst:\n%s", pkg)
		}
		for _, n := range []string{"./postinst", "./postinst-pkg", "./prerm"} {
			checkScript(t, strings.TrimPrefix(n, "./"), string(find(t, control, n).data))
		}
	})

	t.Run("apk", func(t *testing.T) {
		tree, data := readAPK(t, apk)
		rootObj := binary.LittleEndian.Uint32(tree.b[4:])
		info := tree.field(rootObj, pkgInfo)
		for id, w := range map[int]string{piName: "luci-app-delve", piVersion: version, piArch: "noarch", piLicense: "MIT",
			piOrigin: "github.com/delvedns/delve/luci-app-delve"} {
			if got := tree.str(tree.field(info, id)); got != w {
				t.Errorf("info field %d: %q, want %q", id, got, w)
			}
		}
		var deps []string
		for _, d := range tree.items(tree.field(info, piDepends)) {
			deps = append(deps, tree.str(tree.field(d, depName)))
		}
		if !slices.Equal(deps, []string{"delve", "libc", "luci-base"}) {
			t.Errorf("depends %v", deps)
		}
		got := map[string]int64{}
		var installed uint64
		for i, p := range tree.items(tree.field(rootObj, pkgPaths)) {
			dir := tree.str(tree.field(p, diName))
			if m := tree.integer(tree.field(tree.field(p, diACL), aclMode)); m != 0o755 {
				t.Errorf("directory %q: mode %o", dir, m)
			}
			for j, f := range tree.items(tree.field(p, diFiles)) {
				name := path.Join("/", dir, tree.str(tree.field(f, fiName)))
				acl := tree.field(f, fiACL)
				if u, g := tree.str(tree.field(acl, aclUser)), tree.str(tree.field(acl, aclGroup)); u != "root" || g != "root" {
					t.Errorf("%s: owner %s:%s", name, u, g)
				}
				var content []byte
				for _, d := range data {
					if d.pathIdx == uint32(i+1) && d.fileIdx == uint32(j+1) {
						content = d.data
					}
				}
				sum := sha256.Sum256(content)
				if !bytes.Equal(tree.blob(tree.field(f, fiHashes)), sum[:]) || tree.integer(tree.field(f, fiSize)) != uint64(len(content)) ||
					strconv.FormatUint(tree.integer(tree.field(f, fiMtime)), 10) != epoch {
					t.Errorf("%s: hash, size or mtime do not match its DATA block", name)
				}
				installed += uint64(len(content))
				if name == "/lib/apk/packages/luci-app-delve.list" {
					var list []string
					for p := range want {
						list = append(list, p)
					}
					slices.Sort(list)
					if string(content) != strings.Join(list, "\n")+"\n" {
						t.Errorf("luci-app-delve.list:\n%s", content)
					}
					continue
				}
				got[name] = int64(tree.integer(tree.field(acl, aclMode)))
				if !bytes.Equal(content, mustRead(t, luciSource(name))) {
					t.Errorf("%s differs from the repository's", name)
				}
			}
		}
		if !mapsEqual(got, want) {
			t.Errorf("files %v\nwant %v (and /lib/apk/packages/luci-app-delve.list; no conffiles)", got, want)
		}
		if got := tree.integer(tree.field(info, piInstalledSize)); got != installed {
			t.Errorf("installed-size %d, the files hold %d", got, installed)
		}
		scripts := map[string]string{}
		for i, v := range tree.slots(tree.field(rootObj, pkgScripts))[1:] {
			if v != 0 {
				scripts[scriptNames[i+1]] = tree.str(v)
			}
		}
		var sn []string
		for n := range scripts {
			sn = append(sn, n)
		}
		slices.Sort(sn)
		if !slices.Equal(sn, []string{"post-install", "post-upgrade", "pre-deinstall"}) {
			t.Fatalf("scripts %v: OpenWrt's for a package with a postinst and no postrm", sn)
		}
		if !strings.HasSuffix(scripts["post-install"], "export pkgname=\"luci-app-delve\"\nadd_group_and_user\ndefault_postinst\n"+luciPostinst) {
			t.Errorf("post-install does not run default_postinst, then luci.mk's postinst:\n%s", scripts["post-install"])
		}
		for n, body := range scripts {
			checkScript(t, n, body)
		}
	})
}

// gunzipLen is the length of a gzip stream's content: the uncompressed data.tar, which
// Installed-Size counts.
func gunzipLen(t *testing.T, b []byte) int {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
