#!/bin/sh
# The Debian packages the tests use (`make test` runs this first; see ensure-debs.sh).
exec "$(dirname "$0")/ensure-debs.sh" "the tests" \
	unbound:unbound kdig:knot-dnsutils dig:bind9-dnsutils openssl:openssl \
	qemu-arm:qemu-user qemu-mips:qemu-user qemu-mipsel:qemu-user \
	shellcheck:shellcheck busybox:busybox stubby:stubby dnsperf:dnsperf node:nodejs
