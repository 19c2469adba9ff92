# shellcheck shell=sh
# Test stand-in for OpenWrt's /lib/functions/procd.sh. The real one builds a JSON message and sends
# it with `ubus call service set|delete|signal`; this one appends one line per call to
# $DELVE_HARNESS_STATE/procd.log, the call's words separated by tabs, so a test can read exactly
# what the init script told procd. Kept from the real one (openwrt-facts.md §4): service_triggers
# runs inside procd_close_service; a trigger carries PROCD_RELOAD_DELAY (1000 ms unless the script
# sets it); procd_add_reload_trigger runs `/etc/init.d/<service> reload` on config.change for each
# package; procd_send_signal takes an upper-case signal name. The real procd.sh turns reload_signal
# into a number with `kill -l`, which busybox can do and dash cannot, so the name is recorded.
# shellcheck disable=SC3043 # local: busybox ash and dash have it

PROCD_RELOAD_DELAY=1000

_procd_record() {
	(
		IFS=$(printf '\t')
		printf '%s\n' "$*"
	) >>"$DELVE_HARNESS_STATE/procd.log"
}

_procd_signal_name() {
	case "$1" in
	HUP | INT | QUIT | KILL | USR1 | USR2 | TERM) return 0 ;;
	esac
	echo "procd.sh stand-in: unknown signal name $1" >&2
	return 1
}

procd_lock() { :; }

procd_open_service() {
	_PROCD_SERVICE="$1"
	_procd_record open_service "$@"
}

procd_close_service() {
	service_triggers
	_procd_record close_service "${1:-set}"
}

procd_open_instance() {
	_procd_record open_instance "$@"
}

procd_set_param() {
	case "$1" in
	reload_signal) _procd_signal_name "$2" || return 1 ;;
	command | netdev | file | respawn | watch | watchdog | env | data | limits | stdout | stderr | \
		no_new_privs | nice | term_timeout | pidfile | user | group | seccomp | capabilities | \
		facility | vrf) ;;
	*)
		echo "procd.sh stand-in: unknown parameter $1" >&2
		return 1
		;;
	esac
	_procd_record set_param "$@"
}

procd_append_param() {
	_procd_record append_param "$@"
}

procd_close_instance() {
	_procd_record close_instance
}

procd_add_reload_trigger() {
	local file
	for file in "$@"; do
		_procd_record trigger config.change "package=$file" "/etc/init.d/$_PROCD_SERVICE" reload "delay=$PROCD_RELOAD_DELAY"
	done
}

procd_add_config_trigger() {
	local event="$1" package="$2"
	shift 2
	_procd_record trigger "$event" "package=$package" "$@" "delay=$PROCD_RELOAD_DELAY"
}

procd_add_interface_trigger() {
	local event="$1" iface="$2"
	shift 2
	_procd_record trigger "$event" "interface=$iface" "$@" "delay=$PROCD_RELOAD_DELAY"
}

procd_add_raw_trigger() {
	local event="$1" timeout="$2"
	shift 2
	_procd_record trigger "$event" "$@" "delay=$timeout"
}

procd_kill() {
	_procd_record kill "$@"
}

procd_send_signal() {
	local service="$1" instance="$2" signal="$3"
	case "$signal" in
	[A-Z]*) _procd_signal_name "$signal" || return 1 ;;
	esac
	_procd_record signal "$service" "$instance" "$signal"
}
