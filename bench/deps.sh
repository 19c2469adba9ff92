#!/bin/sh
# The Debian packages `make bench` runs: unbound (the upstream and the forwarder under test),
# stubby, dnsperf and kdig (see scripts/ensure-debs.sh).
exec "$(dirname "$0")/../scripts/ensure-debs.sh" "make bench and its peers" \
	unbound:unbound stubby:stubby dnsperf:dnsperf kdig:knot-dnsutils
