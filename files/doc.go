// Package files holds what the OpenWrt package installs besides the binary: the procd init script
// (delve.init → /etc/init.d/delve), the default UCI configuration (delve.config →
// /etc/config/delve), the rpcd exec-plugin shim (delve.rpcd → /usr/libexec/rpcd/delve) and its ACL
// (delve.acl.json → /usr/share/rpcd/acl.d/delve.json), and ubusd's ACL for the user delve
// (delve.ubusd-acl.json → /usr/share/acl.d/delve.json). It has no Go code; its tests check those
// files with sh, busybox sh, shellcheck, go-uci and delve's UCI loader, and run the init script
// against stand-ins for OpenWrt's shell library (testdata/openwrt).
package files
