// Package crossbuild tests the router builds: the static binaries of scripts/arches run under
// qemu-user against the loopback unbound; the .ipk that make ipk writes is what OpenWrt's opkg
// reads and the .apk of make apk what apk-tools v3 reads, each byte for byte the same from one
// build to the next; the armv7 sizes stay within scripts/size-budget. It has no code of its own.
package crossbuild
