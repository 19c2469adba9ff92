# shellcheck shell=sh
# Test stand-in for the parts of OpenWrt's /lib/functions.sh (and uci_load from /lib/config/uci.sh)
# that delve's init script and the rc.common stand-in use, with the semantics of openwrt-facts.md §5:
# config_get VAR SECTION OPTION [DEFAULT] gives DEFAULT for an unset or empty option and a list as
# its items joined by spaces; config_get_bool accepts 1/on/true/yes/enabled and
# 0/off/false/no/disabled, else DEFAULT; config_list_foreach calls FUNCTION once per list item.
#
# The real config_load evaluates `uci export PACKAGE` with the config/option/list callbacks below;
# this one sources $UCI_CONFIG_DIR/PACKAGE itself, which is the same thing for a file written the
# way delve.config is (single-quoted values, no escapes). Assignments are plain shell variables
# where busybox uses `export -n`, which dash lacks.
# shellcheck disable=SC3043 # local: busybox ash and dash have it

LIST_SEP=" "

append() {
	# shellcheck disable=SC2034 # value and sep are read by the eval
	local var="$1" value="$2" sep="${3:- }"
	eval "$var=\${$var:+\${$var}\${value:+\$sep}}\$value"
}

list_contains() {
	local var="$1" str="$2" val
	eval "val=\" \${$var} \""
	[ "${val%% "$str" *}" != "$val" ]
}

config_load() {
	[ -n "$IPKG_INSTROOT" ] && return 0
	local v
	# Like uci_load: forget the lists of the previous load, so loading twice does not double them.
	for v in $CONFIG_LIST_STATE; do
		eval "CONFIG_$v=; CONFIG_${v}_LENGTH="
	done
	CONFIG_LIST_STATE=
	# shellcheck disable=SC2034 # config_foreach reads it in the real functions.sh
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	[ -f "$UCI_CONFIG_DIR/$1" ] || return 1
	# shellcheck source=/dev/null
	. "$UCI_CONFIG_DIR/$1"
}

package() { return 0; }

config() {
	local cfgtype="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION="$name"
	config_set "$CONFIG_SECTION" TYPE "$cfgtype"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
}

list() {
	local varname="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	[ "$len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_$varname"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_$varname" "$*" "$LIST_SEP"
}

config_set() {
	eval "CONFIG_${1}_$2=\$3"
}

config_get() {
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) : ;;
	*)
		case "$3" in
		'') eval "echo \"\${CONFIG_${1}_$2:-\$4}\"" ;;
		*) eval "$1=\${CONFIG_${2}_$3:-\$4}" ;;
		esac
		;;
	esac
}

get_bool() {
	case "$1" in
	1 | on | true | yes | enabled) echo 1 ;;
	0 | off | false | no | disabled) echo 0 ;;
	*) echo "$2" ;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	_tmp=$(get_bool "$_tmp" "$4")
	eval "$1=\$_tmp"
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section="$1" option="$2" function="$3" val len c=1
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ "$c" -le "$len" ]; do
		config_get val "$section" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c=$((c + 1))
	done
}

# user_exists NAME, as the real one: NAME has a line in /etc/passwd (here the harness's).
user_exists() {
	grep -qs "^${1}:" "$DELVE_HARNESS_STATE/passwd"
}
