package crossbuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

const ipkArch = "arm_cortex-a7_neon-vfpv4"

// makeIPK runs `make ipk` into dist and returns the path it printed.
func makeIPK(t *testing.T, dist string) string {
	t.Helper()
	out, err := run(buildTimeout, root, nil, "make", "-s", "--no-print-directory", "ipk", "ARCH="+ipkArch, "DIST="+dist, "SOURCE_DATE_EPOCH="+epoch)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := lines[len(lines)-1]
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	return p
}

// member is one entry of a tar with its raw header block.
type member struct {
	hdr  *tar.Header
	raw  [512]byte // the header block as written
	data []byte
}

// readTarGz checks the gzip header the way `gzip -n` writes it and returns the tar's members.
func readTarGz(t *testing.T, what string, b []byte) []member {
	t.Helper()
	if len(b) < 10 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s: no gzip magic", what)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if zr.Name != "" || zr.Comment != "" || !zr.ModTime.IsZero() {
		t.Fatalf("%s: gzip header has name %q, comment %q, time %v: not reproducible", what, zr.Name, zr.Comment, zr.ModTime)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var ms []member
	var off int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", what, h.Name, err)
		}
		var m member
		m.hdr, m.data = h, data
		copy(m.raw[:], raw[off:])
		ms = append(ms, m)
		off += 512 + (int64(len(data))+511)/512*512
	}
	return ms
}

// checkHeaders holds every member to what opkg-lede's tar reader takes and ipkg-build writes.
func checkHeaders(t *testing.T, what string, ms []member) {
	t.Helper()
	for _, m := range ms {
		h := m.hdr
		// opkg-lede: the magic must start with "ustar" (GNU "ustar  " or POSIX "ustar\0").
		if !bytes.HasPrefix(m.raw[257:], []byte("ustar")) {
			t.Errorf("%s: %s: magic %q", what, h.Name, m.raw[257:265])
		}
		if h.Format&tar.FormatPAX != 0 || len(h.PAXRecords) > 0 || h.Typeflag == tar.TypeXHeader || h.Typeflag == tar.TypeXGlobalHeader {
			t.Errorf("%s: %s: PAX records, which opkg-lede does not read", what, h.Name)
		}
		if h.Format != tar.FormatGNU && h.Format != tar.FormatUSTAR {
			t.Errorf("%s: %s: format %v, want GNU or USTAR", what, h.Name, h.Format)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: %s: owner %d:%d (%q:%q), want 0:0 numeric", what, h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != mustInt(t, epoch) {
			t.Errorf("%s: %s: mtime %v, want SOURCE_DATE_EPOCH %s", what, h.Name, h.ModTime, epoch)
		}
		if !strings.HasPrefix(h.Name, "./") {
			t.Errorf("%s: %s: not relative to ./", what, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if h.Mode != 0o755 || !strings.HasSuffix(h.Name, "/") {
				t.Errorf("%s: directory %s: mode %o", what, h.Name, h.Mode)
			}
		case tar.TypeReg:
		default:
			t.Errorf("%s: %s: type %q", what, h.Name, h.Typeflag)
		}
	}
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func names(ms []member) []string {
	var ns []string
	for _, m := range ms {
		ns = append(ns, m.hdr.Name)
	}
	return ns
}

func find(t *testing.T, ms []member, name string) member {
	t.Helper()
	for _, m := range ms {
		if m.hdr.Name == name {
			return m
		}
	}
	t.Fatalf("no %s among %v", name, names(ms))
	return member{}
}

func TestIPK(t *testing.T) {
	// Two builds of the same commit, in two places, with the same SOURCE_DATE_EPOCH.
	first := makeIPK(t, t.TempDir())
	second := makeIPK(t, t.TempDir())
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := sha256.Sum256(a), sha256.Sum256(b)
	t.Logf("%s: %d bytes, sha256 %s", filepath.Base(first), len(a), hex.EncodeToString(sa[:]))
	t.Logf("%s: %d bytes, sha256 %s", filepath.Base(second), len(b), hex.EncodeToString(sb[:]))
	t.Run("reproducible", func(t *testing.T) {
		if !bytes.Equal(a, b) {
			t.Fatalf("two builds differ: sha256 %x and %x", sa, sb)
		}
	})

	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(first), "delve_"), "_"+ipkArch+".ipk")
	t.Run("file name and version", func(t *testing.T) {
		if filepath.Base(first) != "delve_"+version+"_"+ipkArch+".ipk" {
			t.Fatalf("file name %s", filepath.Base(first))
		}
		// OpenWrt 24.10: PKG_VERSION-rPKG_RELEASE.
		if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(\.[0-9]+)?-r[0-9]+$`).MatchString(version) {
			t.Fatalf("version %q is not in the form 1.2.3-r1", version)
		}
	})

	outer := readTarGz(t, "ipk", a)
	checkHeaders(t, "ipk", outer)
	t.Run("outer tar", func(t *testing.T) {
		// ipkg-build's members and order; opkg looks each up by name.
		if got := strings.Join(names(outer), " "); got != "./debian-binary ./data.tar.gz ./control.tar.gz" {
			t.Fatalf("members %s", got)
		}
		if d := find(t, outer, "./debian-binary").data; string(d) != "2.0\n" {
			t.Fatalf("debian-binary %q", d)
		}
		for _, m := range outer {
			if m.hdr.Mode != 0o644 {
				t.Errorf("%s: mode %o", m.hdr.Name, m.hdr.Mode)
			}
		}
	})

	dataGz := find(t, outer, "./data.tar.gz").data
	data := readTarGz(t, "data.tar.gz", dataGz)
	checkHeaders(t, "data.tar.gz", data)
	t.Run("data", func(t *testing.T) {
		want := []struct {
			name string
			mode int64
			src  string // in the repository; "" for the binary
		}{
			{"./", 0o755, ""},
			{"./etc/", 0o755, ""},
			{"./etc/config/", 0o755, ""},
			{"./etc/config/delve", 0o600, "files/delve.config"},
			{"./etc/init.d/", 0o755, ""},
			{"./etc/init.d/delve", 0o755, "files/delve.init"},
			{"./usr/", 0o755, ""},
			{"./usr/bin/", 0o755, ""},
			{"./usr/bin/delve", 0o755, ""},
			{"./usr/libexec/", 0o755, ""},
			{"./usr/libexec/rpcd/", 0o755, ""},
			{"./usr/libexec/rpcd/delve", 0o755, "files/delve.rpcd"},
			{"./usr/share/", 0o755, ""},
			{"./usr/share/acl.d/", 0o755, ""},
			{"./usr/share/acl.d/delve.json", 0o644, "files/delve.ubusd-acl.json"},
			{"./usr/share/rpcd/", 0o755, ""},
			{"./usr/share/rpcd/acl.d/", 0o755, ""},
			{"./usr/share/rpcd/acl.d/delve.json", 0o644, "files/delve.acl.json"},
		}
		var wantNames []string
		for _, w := range want {
			wantNames = append(wantNames, w.name)
		}
		if got := names(data); !slices.Equal(got, wantNames) {
			t.Fatalf("entries\n%s\nwant (sorted, as tar --sort=name)\n%s", strings.Join(got, "\n"), strings.Join(wantNames, "\n"))
		}
		for i, w := range want {
			m := data[i]
			if m.hdr.Mode != w.mode {
				t.Errorf("%s: mode %o, want %o", w.name, m.hdr.Mode, w.mode)
			}
			if w.src != "" {
				src, err := os.ReadFile(filepath.Join(root, w.src))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.data, src) {
					t.Errorf("%s differs from %s", w.name, w.src)
				}
			}
		}
		bin := find(t, data, "./usr/bin/delve").data
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("/usr/bin/delve: %v", err)
		}
		if f.Machine != elf.EM_ARM {
			t.Fatalf("/usr/bin/delve is for %v, want ARM", f.Machine)
		}
		// The shim execs the binary where the package puts it.
		if shim := find(t, data, "./usr/libexec/rpcd/delve").data; !bytes.Contains(shim, []byte("/usr/bin/delve")) {
			t.Fatalf("the rpcd shim does not run /usr/bin/delve:\n%s", shim)
		}
	})

	control := readTarGz(t, "control.tar.gz", find(t, outer, "./control.tar.gz").data)
	checkHeaders(t, "control.tar.gz", control)
	t.Run("control tar", func(t *testing.T) {
		want := []string{"./", "./conffiles", "./control", "./postinst", "./postinst-pkg", "./postrm", "./prerm"}
		if got := names(control); !slices.Equal(got, want) {
			t.Fatalf("entries %v, want %v", got, want)
		}
		for _, m := range control {
			mode := int64(0o755) // directory and scripts
			if m.hdr.Name == "./control" || m.hdr.Name == "./conffiles" {
				mode = 0o644
			}
			if m.hdr.Mode != mode {
				t.Errorf("%s: mode %o, want %o", m.hdr.Name, m.hdr.Mode, mode)
			}
		}
		if c := string(find(t, control, "./conffiles").data); c != "/etc/config/delve\n" {
			t.Errorf("conffiles %q", c)
		}
	})

	t.Run("control fields", func(t *testing.T) {
		text := string(find(t, control, "./control").data)
		var keys []string
		fields := map[string]string{}
		var desc []string
		for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if strings.HasPrefix(line, " ") {
				if len(keys) == 0 || keys[len(keys)-1] != "Description" {
					t.Fatalf("line %d: continuation of a field other than Description: %q", i+1, line)
				}
				desc = append(desc, line)
				continue
			}
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("line %d: %q", i+1, line)
			}
			keys = append(keys, k)
			fields[k] = v
		}
		// The order of OpenWrt's package-pack.mk, of which these are a subsequence.
		order := []string{"Package", "Version", "Depends", "Conflicts", "Provides", "Alternatives", "Source", "SourceName",
			"License", "LicenseFiles", "Section", "Require-User", "SourceDateEpoch", "URL", "ABIVersion", "CPE-ID",
			"Status", "Essential", "Maintainer", "Architecture", "Installed-Size", "Description"}
		last := -1
		for _, k := range keys {
			i := slices.Index(order, k)
			if i < 0 || i <= last {
				t.Errorf("field %s out of OpenWrt's order: %v", k, keys)
			}
			last = i
		}
		for _, k := range []string{"Package", "Version", "Depends", "Source", "License", "Section", "Architecture", "Installed-Size", "Description"} {
			if fields[k] == "" {
				t.Errorf("no %s", k)
			}
		}
		check := func(k, want string) {
			if fields[k] != want {
				t.Errorf("%s: %q, want %q", k, fields[k], want)
			}
		}
		check("Package", "delve")
		check("Version", version)
		check("Architecture", ipkArch)
		check("Depends", "libc, ca-bundle, rpcd")
		check("SourceDateEpoch", epoch)
		check("License", "MIT") // LICENSE

		// Installed-Size: the bytes of the uncompressed data.tar (openwrt PR #14352).
		zr, err := gzip.NewReader(bytes.NewReader(dataGz))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, zr)
		if err != nil {
			t.Fatal(err)
		}
		check("Installed-Size", strconv.FormatInt(n, 10))

		// printf "Description: " then each line with its leading blanks made one space.
		if !strings.HasPrefix(fields["Description"], " ") || strings.HasPrefix(fields["Description"], "  ") {
			t.Errorf("Description: first line %q, want one extra space as OpenWrt writes it", fields["Description"])
		}
		for _, l := range desc {
			if strings.HasPrefix(l, "  ") || strings.TrimSpace(l) == "" {
				t.Errorf("Description continuation %q", l)
			}
		}
	})

	t.Run("scripts", func(t *testing.T) {
		sh := testenv.RequireTool(t, "sh", "dash")
		shellcheck := testenv.RequireTool(t, "shellcheck", "shellcheck")
		dir := t.TempDir()
		for _, name := range []string{"postinst", "prerm", "postinst-pkg", "postrm"} {
			body := find(t, control, "./"+name).data
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, body, 0o755); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(body, []byte("#!/bin/sh\n")) {
				t.Errorf("%s: no #!/bin/sh", name)
			}
			if _, err := run(time.Minute, dir, nil, sh, "-n", p); err != nil {
				t.Errorf("sh -n %s: %v", name, err)
			}
			if out, err := run(time.Minute, dir, nil, shellcheck, "-s", "sh", p); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", name, err, out)
			}
		}
		script := func(name string) string { return string(find(t, control, "./"+name).data) }
		// OpenWrt's default_postinst enables and starts /etc/init.d/delve and sources
		// postinst-pkg; default_prerm stops and disables it.
		for name, call := range map[string]string{"postinst": `default_postinst "$0" "$@"`, "prerm": `default_prerm "$0" "$@"`} {
			s := script(name)
			if !strings.Contains(s, `. "${IPKG_INSTROOT}/lib/functions.sh"`) || !strings.Contains(s, call) {
				t.Errorf("%s does not follow OpenWrt's convention:\n%s", name, s)
			}
		}
		if !strings.Contains(script("postinst"), `[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0`) {
			t.Errorf("postinst ignores IPKG_NO_SCRIPT")
		}
		for _, name := range []string{"postinst-pkg", "postrm"} {
			s := script(name)
			if !strings.Contains(s, "/etc/init.d/rpcd reload") || !strings.Contains(s, `[ -n "${IPKG_INSTROOT}" ] && exit 0`) {
				t.Errorf("%s: want an rpcd reload, skipped in an image build:\n%s", name, s)
			}
		}
	})

	t.Run("scripts run", func(t *testing.T) {
		// Against stand-ins: rpcd is reloaded on a live system, not in an image build.
		sh := testenv.RequireTool(t, "sh", "dash")
		for _, tt := range []struct {
			instroot   string
			wantReload bool
		}{{"", true}, {"/tmp/image", false}} {
			dir := t.TempDir()
			log := filepath.Join(dir, "log")
			rpcd := filepath.Join(dir, "rpcd")
			os.WriteFile(rpcd, []byte("#!/bin/sh\necho \"rpcd $*\" >>"+log+"\n"), 0o755)
			body := strings.ReplaceAll(string(find(t, control, "./postinst-pkg").data), "/etc/init.d/rpcd", rpcd)
			p := filepath.Join(dir, "postinst-pkg")
			os.WriteFile(p, []byte(body), 0o755)
			if _, err := run(time.Minute, dir, []string{"IPKG_INSTROOT=" + tt.instroot}, sh, p); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(log)
			if reloaded := string(got) == "rpcd reload\n"; reloaded != tt.wantReload {
				t.Errorf("IPKG_INSTROOT=%q: rpcd calls %q", tt.instroot, got)
			}
		}
	})

	t.Run("GNU tar reads it", func(t *testing.T) {
		tarCmd := testenv.RequireTool(t, "tar", "tar")
		out, err := run(time.Minute, root, nil, tarCmd, "-tzvf", first)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "./data.tar.gz") {
			t.Fatalf("%s", out)
		}
	})
}
