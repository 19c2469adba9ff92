#!/bin/sh
# ensure-debs.sh WHO CMD:PACKAGE... makes sure each command is installed, from its Debian package.
# As root it installs the missing packages, with the packaged services kept from starting (unbound
# and stubby would reach for the Internet: tests and benchmarks start their own loopback
# instances) and disabled afterwards. As another user it names what is missing and fails.
set -eu
who=$1
shift

missing=$(for pair in "$@"; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || echo "$pkg"
done | sort -u | tr '\n' ' ')
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "$who need these Debian packages: $missing" >&2
	echo "install them as root: apt-get install -y $missing" >&2
	exit 1
fi

echo "installing $missing" >&2
policy=/usr/sbin/policy-rc.d
restore=
if [ -e "$policy" ]; then
	restore=$(mktemp)
	cp -p "$policy" "$restore"
fi
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"
cleanup() {
	if [ -n "$restore" ]; then mv "$restore" "$policy"; else rm -f "$policy"; fi
}
trap cleanup EXIT INT TERM

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian enables the packaged services even when policy-rc.d kept them from starting.
for svc in unbound stubby; do
	systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
