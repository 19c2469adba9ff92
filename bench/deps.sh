#!/bin/sh
# Makes sure the Debian packages `make bench` runs are installed: unbound (the upstream and the
# forwarder under test), stubby, dnsperf and kdig. As root it installs the missing ones, with the
# packaged services kept from starting (they would reach for the Internet: the bench runs its own
# loopback instances with its own configuration) and disabled afterwards. As another user it
# names what is missing and fails.
set -eu

# command  package
need='unbound unbound
stubby stubby
dnsperf dnsperf
kdig knot-dnsutils'

missing=$(echo "$need" | while read -r cmd pkg; do
	command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || echo "$pkg"
done | sort -u | tr '\n' ' ')
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "make bench needs these Debian packages: $missing" >&2
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
