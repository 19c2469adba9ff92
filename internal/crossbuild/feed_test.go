package crossbuild

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFeedRecipe holds openwrt/delve/Makefile, which only the OpenWrt SDK can build, to what
// make ipk ships: the same files with the same install modes, the same dependencies,
// conffiles and description.
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

	ipk := makeIPK(t, t.TempDir())
	b, err = os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	outer := readTarGz(t, "ipk", b)
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
