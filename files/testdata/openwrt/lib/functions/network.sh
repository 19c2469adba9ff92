# shellcheck shell=sh
# Test stand-in for the functions of OpenWrt's /lib/functions/network.sh that delve's init script
# uses, with their calling convention (the first argument names the variable to set; network_is_up
# returns the status). The real ones read `ubus call network.interface dump`; these read
# $DELVE_HARNESS_STATE/network/IFACE, lines of KEY=VALUE: up (1 or 0), device, ipaddrs, ipaddrs6.
# shellcheck disable=SC3043 # local: busybox ash and dash have it

network_flush_cache() { :; }

_network_get() {
	local f="$DELVE_HARNESS_STATE/network/$2"
	[ -f "$f" ] || return 1
	sed -n "s/^$1=//p" "$f"
}

network_is_up() { [ "$(_network_get up "$1")" = 1 ]; }

network_get_device() { eval "$1=\$(_network_get device \"\$2\")"; }

network_get_ipaddrs() { eval "$1=\$(_network_get ipaddrs \"\$2\")"; }

network_get_ipaddrs6() { eval "$1=\$(_network_get ipaddrs6 \"\$2\")"; }
