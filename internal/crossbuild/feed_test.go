package crossbuild

import (
	"encoding/binary"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFeedRecipe holds openwrt/delve/Makefile, which only the OpenWrt SDK can build, to what
// make ipk and make apk ship: the same files with the same install modes, the same
// dependencies, conffiles, scripts, license and description, and a version both opkg (24.10)
// and apk (25.12) take.
func TestFeedRecipe(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "openwrt/delve/Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	recipe := string(b)
	for _, want := range []string{
		"include $(TOPDIR)/rules.mk",
		"include $(INCLUDE_DIR)/package.mk",
		"include ../../lang/golang/golang-package.mk",
		"GO_PKG:=github.com/delvedns/delve\n",
		"GO_PKG_BUILD_PKG:=github.com/delvedns/delve/cmd/delve\n",
		"PKG_BUILD_DEPENDS:=golang/host",
		"DEPENDS:=$(GO_ARCH_DEPENDS) +ca-bundle +rpcd\n",
		"$(call GoPackage/Package/Install/Bin,$(1))",
		"define Package/delve/conffiles\n/etc/config/delve\nendef",
		"$(eval $(call GoBinPackage,delve))",
		"$(eval $(call BuildPackage,delve))",
		"/etc/init.d/rpcd reload",
		"PKG_LICENSE:=MIT\n",
		"PKG_LICENSE_FILES:=LICENSE\n",
		// One version everywhere: the binary's is the package's.
		"github.com/delvedns/delve/internal/version.Version=$(PKG_VERSION)-r$(PKG_RELEASE) \\\n",
		"github.com/delvedns/delve/internal/version.Commit=$(PKG_SOURCE_VERSION) \\\n",
	} {
		if !strings.Contains(recipe, want) {
			t.Errorf("the recipe lacks %q", want)
		}
	}

	// INSTALL_BIN is 0755, INSTALL_CONF 0600, INSTALL_DATA 0644 (rules.mk).
	modes := map[string]int64{"INSTALL_BIN": 0o755, "INSTALL_CONF": 0o600, "INSTALL_DATA": 0o644}
	got := map[string]int64{"./usr/bin/delve": 0o755} // GoPackage/Package/Install/Bin, GO_PKG_INSTALL_BIN_PATH
	re := regexp.MustCompile(`\$\((INSTALL_BIN|INSTALL_CONF|INSTALL_DATA)\) \$\(PKG_BUILD_DIR\)/(files/\S+) \$\(1\)(/\S+)`)
	for _, m := range re.FindAllStringSubmatch(recipe, -1) {
		if _, err := os.Stat(filepath.Join(root, m[2])); err != nil {
			t.Errorf("the recipe installs %s, which the source tree does not have", m[2])
		}
		got["."+m[3]] = modes[m[1]]
	}

	if _, err := os.Stat(filepath.Join(root, "LICENSE")); err != nil {
		t.Errorf("PKG_LICENSE_FILES names LICENSE: %v", err)
	}
	// OpenWrt's VERSION is $(PKG_VERSION)-r$(PKG_RELEASE); apk wants number{.number} and -rN.
	pv := regexp.MustCompile(`(?m)^PKG_VERSION:=(.*)$`).FindStringSubmatch(recipe)
	pr := regexp.MustCompile(`(?m)^PKG_RELEASE:=(.*)$`).FindStringSubmatch(recipe)
	if pv == nil || pr == nil || !regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`).MatchString(pv[1]) || !regexp.MustCompile(`^[0-9]+$`).MatchString(pr[1]) {
		t.Errorf("PKG_VERSION %q, PKG_RELEASE %q: want X.Y.Z and a number, so that X.Y.Z-rN is an apk version", pv, pr)
	}
	// The recipe builds the release tag vX.Y.Z: its X.Y.Z is scripts/pkgversion's (the newest tag,
	// 0.1.0 before the first), so the feed's package and make ipk's carry the same X.Y.Z.
	if out, err := run(buildTimeout, root, nil, "./scripts/pkgversion"); err != nil {
		t.Error(err)
	} else if base, _, _ := strings.Cut(strings.TrimSpace(string(out)), "-r"); pv != nil && pv[1] != base {
		t.Errorf("PKG_VERSION %s, scripts/pkgversion %s: bump the recipe with the tag", pv[1], out)
	}

	ipk, apk := sharedPackages(t)
	outer := readTarGz(t, "ipk", mustRead(t, ipk))
	data := readTarGz(t, "data.tar.gz", find(t, outer, "./data.tar.gz").data)
	want := map[string]int64{}
	for _, m := range data {
		if !strings.HasSuffix(m.hdr.Name, "/") {
			want[m.hdr.Name] = m.hdr.Mode
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("the recipe installs %v, make ipk %v", got, want)
	}
	// make apk: the same files, and OpenWrt's own under /lib/apk/packages.
	tree, _ := readAPK(t, mustRead(t, apk))
	pkg := binary.LittleEndian.Uint32(tree.b[4:])
	fromAPK := map[string]int64{}
	for _, p := range tree.items(tree.field(pkg, pkgPaths)) {
		dir := tree.str(tree.field(p, diName))
		for _, f := range tree.items(tree.field(p, diFiles)) {
			name := path.Join("./", dir, tree.str(tree.field(f, fiName)))
			if !strings.HasPrefix(name, "lib/apk/packages/") {
				fromAPK["./"+name] = int64(tree.integer(tree.field(tree.field(f, fiACL), aclMode)))
			}
		}
	}
	if !maps.Equal(got, fromAPK) {
		t.Errorf("the recipe installs %v, make apk %v", got, fromAPK)
	}

	// The conffiles, and the package's own steps, which OpenWrt puts in postinst-pkg and
	// postrm of an .ipk and appends to post-install (and post-upgrade) or makes post-deinstall
	// of an .apk.
	define := func(name string) string {
		_, body, ok := strings.Cut(recipe, "define Package/delve/"+name+"\n")
		if !ok {
			t.Fatalf("the recipe has no define Package/delve/%s", name)
		}
		body, _, _ = strings.Cut(body, "endef")
		return strings.ReplaceAll(body, "$$", "$") // make's escape
	}
	ctl := readTarGz(t, "control.tar.gz", find(t, outer, "./control.tar.gz").data)
	if c := string(find(t, ctl, "./conffiles").data); define("conffiles") != c {
		t.Errorf("conffiles: recipe %q, make ipk %q", define("conffiles"), c)
	}
	for name, member := range map[string]string{"postinst": "./postinst-pkg", "postrm": "./postrm"} {
		if ipkScript := string(find(t, ctl, member).data); define(name) != ipkScript {
			t.Errorf("%s: recipe\n%s\nmake ipk's %s\n%s", name, define(name), member, ipkScript)
		}
	}
	scripts := tree.slots(tree.field(pkg, pkgScripts))
	postInstall, postDeinstall := tree.str(scripts[3]), tree.str(scripts[5])
	if own := strings.TrimPrefix(define("postinst"), "#!/bin/sh\n"); !strings.HasSuffix(postInstall, "\ndefault_postinst\n"+own) {
		t.Errorf("make apk's post-install does not end with default_postinst and the recipe's postinst:\n%s", postInstall)
	}
	if define("postrm") != postDeinstall {
		t.Errorf("postrm: recipe\n%s\nmake apk's post-deinstall\n%s", define("postrm"), postDeinstall)
	}

	// The description, as OpenWrt turns it into the control file.
	control := readTarGz(t, "control.tar.gz", find(t, outer, "./control.tar.gz").data)
	text := string(find(t, control, "./control").data)
	_, desc, _ := strings.Cut(text, "Description: ")
	var fromIPK []string
	for l := range strings.Lines(desc) {
		fromIPK = append(fromIPK, strings.TrimSpace(l))
	}
	_, def, _ := strings.Cut(recipe, "define Package/delve/description\n")
	def, _, _ = strings.Cut(def, "endef")
	var fromRecipe []string
	for l := range strings.Lines(def) {
		fromRecipe = append(fromRecipe, strings.TrimSpace(l))
	}
	if !slices.Equal(fromIPK, fromRecipe) {
		t.Errorf("descriptions differ:\nipk    %q\nrecipe %q", fromIPK, fromRecipe)
	}
}
