// Package crossbuild tests the router builds: the static binaries of scripts/arches run under
// qemu-user against the loopback unbound, and the .ipk that make ipk writes is what OpenWrt's
// opkg reads, byte for byte the same from one build to the next. It has no code of its own.
package crossbuild
