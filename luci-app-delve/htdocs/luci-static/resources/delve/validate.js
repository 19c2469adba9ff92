'use strict';
'require baseclass';

/*
 * The checks of delve's UCI loader (uci/validate.go in the delve repository), written again for
 * the settings form so that it accepts exactly the values `delve serve` accepts: the Go tests run
 * both on the same values. Each check returns null for a good value, or the reason it is not one.
 */

/* The record type names miekg/dns knows that a lookup may ask for (api.ParseType), in type order. */
var TYPES = [
	'A', 'NS', 'MD', 'MF', 'CNAME', 'SOA', 'MB', 'MG', 'MR', 'NULL', 'PTR', 'HINFO', 'MINFO', 'MX',
	'TXT', 'RP', 'AFSDB', 'X25', 'ISDN', 'RT', 'NSAP-PTR', 'SIG', 'KEY', 'PX', 'GPOS', 'AAAA', 'LOC',
	'NXT', 'EID', 'NIMLOC', 'SRV', 'ATMA', 'NAPTR', 'KX', 'CERT', 'DNAME', 'APL', 'DS', 'SSHFP',
	'IPSECKEY', 'RRSIG', 'NSEC', 'DNSKEY', 'DHCID', 'NSEC3', 'NSEC3PARAM', 'TLSA', 'SMIMEA', 'HIP',
	'NINFO', 'RKEY', 'TALINK', 'CDS', 'CDNSKEY', 'OPENPGPKEY', 'CSYNC', 'ZONEMD', 'SVCB', 'HTTPS',
	'SPF', 'UINFO', 'UID', 'GID', 'UNSPEC', 'NID', 'L32', 'L64', 'LP', 'EUI48', 'EUI64', 'ANY', 'URI',
	'CAA', 'AVC', 'AMTRELAY', 'RESINFO', 'TA', 'DLV'
];

/* The types offered first in the lookup tool and the settings. */
var COMMON_TYPES = [ 'A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS', 'SOA', 'PTR', 'SRV', 'CAA', 'HTTPS', 'SVCB', 'DS', 'DNSKEY', 'TLSA', 'ANY' ];

var MAX_TYPES = 16;          /* api.MaxTypes */
var MAX_SOCKET_BYTES = 107;  /* sun_path less its NUL */

/* parseDecimal: one to nine digits, nothing else. */
function decimal(s) {
	return /^[0-9]{1,9}$/.test(s) ? parseInt(s, 10) : null;
}

/* strings.Fields: the words of a value, as the loader splits lists. */
function fields(s) {
	return String(s).split(/\s+/).filter(function(w) { return w !== ''; });
}

function utf8Length(s) {
	return unescape(encodeURIComponent(s)).length;
}

/* netip.ParseAddr of an IPv4 address: four decimal octets without leading zeros. */
function ip4Bytes(s) {
	var parts = s.split('.');
	if (parts.length != 4)
		return null;
	var out = [];
	for (var i = 0; i < 4; i++) {
		if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i]) || +parts[i] > 255)
			return null;
		out.push(+parts[i]);
	}
	return out;
}

/* netip.ParseAddr of an IPv6 address, with an optional zone: 16 bytes, or null. */
function ip6Bytes(s) {
	var zi = s.indexOf('%');
	if (zi >= 0) {
		if (zi == s.length - 1)
			return null;
		s = s.substring(0, zi);
	}
	var out = [], ellipsis = -1;
	if (s.substring(0, 2) == '::') {
		ellipsis = 0;
		s = s.substring(2);
		if (s === '')
			return [ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 ];
	}
	while (out.length < 16) {
		var m = s.match(/^[0-9a-fA-F]*/)[0];
		if (m.length == 0 || m.length > 4)
			return null;
		if (s.charAt(m.length) == '.') {
			if (ellipsis < 0 && out.length != 12)
				return null;
			if (out.length + 4 > 16)
				return null;
			var v4 = ip4Bytes(s);
			if (!v4)
				return null;
			out = out.concat(v4);
			s = '';
			break;
		}
		var v = parseInt(m, 16);
		out.push(v >> 8, v & 255);
		s = s.substring(m.length);
		if (s === '')
			break;
		if (s.charAt(0) != ':' || s.length == 1)
			return null;
		s = s.substring(1);
		if (s.charAt(0) == ':') {
			if (ellipsis >= 0)
				return null;
			ellipsis = out.length;
			s = s.substring(1);
			if (s === '')
				break;
		}
	}
	if (s !== '')
		return null;
	if (out.length < 16) {
		if (ellipsis < 0)
			return null;
		var fill = [];
		for (var i = out.length; i < 16; i++)
			fill.push(0);
		out = out.slice(0, ellipsis).concat(fill, out.slice(ellipsis));
	}
	else if (ellipsis >= 0) {
		return null;
	}
	return out;
}

/* netip.ParseAddr: { v4: bool, bytes: [...] } or null. */
function parseAddr(s) {
	if (s.indexOf(':') < 0) {
		var b4 = ip4Bytes(s);
		return b4 ? { v4: true, bytes: b4 } : null;
	}
	var b6 = ip6Bytes(s);
	return b6 ? { v4: false, bytes: b6 } : null;
}

/* Addr.Unmap().IsLoopback() */
function isLoopback(a) {
	var b = a.bytes;
	if (!a.v4) {
		var mapped = true;
		for (var i = 0; i < 10; i++)
			if (b[i] != 0)
				mapped = false;
		if (mapped && b[10] == 255 && b[11] == 255)
			return b[12] == 127;
		for (var j = 0; j < 15; j++)
			if (b[j] != 0)
				return false;
		return b[15] == 1;
	}
	return b[0] == 127;
}

/* net.SplitHostPort, then parseHostPort's checks: an IP address and a port 1-65535. */
function parseHostPort(s) {
	var host, port;
	if (s.charAt(0) == '[') {
		var end = s.indexOf(']');
		if (end < 0 || s.charAt(end + 1) != ':')
			return null;
		host = s.substring(1, end);
		port = s.substring(end + 2);
		if (host.indexOf('[') >= 0)
			return null;
	}
	else {
		var i = s.lastIndexOf(':');
		if (i < 0)
			return null;
		host = s.substring(0, i);
		port = s.substring(i + 1);
		if (host.indexOf(':') >= 0 || host.indexOf('[') >= 0 || host.indexOf(']') >= 0)
			return null;
	}
	if (port.indexOf('[') >= 0 || port.indexOf(']') >= 0)
		return null;
	var addr = parseAddr(host), p = decimal(port);
	if (!addr || p == null || p < 1 || p > 65535)
		return null;
	return addr;
}

/* api.ParseType */
function recordType(s) {
	var u = s.toUpperCase();
	if (TYPES.indexOf(u) >= 0)
		return null;
	var m = u.match(/^TYPE([0-9]+)$/);
	if (!m)
		return _('unknown record type "%s"').format(s);
	var n = m[1].replace(/^0+(?=.)/, '');
	if (n.length > 5 || +n < 1 || +n > 65535)
		return _('record type number "%s" is out of range (1-65535)').format(s);
	n = +n;
	if (n == 65535 || n == 41 || (n >= 128 && n <= 254))
		return _('"%s" is not a record type a lookup can ask for').format(s);
	return null;
}

/* parseKiB, with the bounds of cache_memory: KiB, or null. */
function memoryKiB(s) {
	var m = String(s).match(/^([0-9]*)(.*)$/), n = decimal(m[1]);
	if (n == null)
		return null;
	switch (m[2].toLowerCase()) {
	case '': case 'k': case 'kb': case 'kib':
		return n;
	case 'm': case 'mb': case 'mib':
		return n < (1 << 21) ? n * 1024 : null;
	case 'g': case 'gb': case 'gib':
		return n < (1 << 11) ? n * 1024 * 1024 : null;
	}
	return null;
}

/* dnsName: why s is not a TLS authentication name, or null. */
function dnsName(s) {
	if (parseAddr(s))
		return _('is an IP address; the TLS name is the name in the server\'s certificate, such as cloudflare-dns.com');
	var name = s.replace(/\.$/, ''), why = _('is not a valid DNS name (letters, digits and hyphens in dot-separated labels)');
	if (name === '' || name.length > 253)
		return why;
	var labels = name.split('.');
	for (var i = 0; i < labels.length; i++)
		if (!/^[0-9A-Za-z-]{1,63}$/.test(labels[i]) || labels[i].charAt(0) == '-' || labels[i].charAt(labels[i].length - 1) == '-')
			return why;
	/* strconv.Atoi: the last label may not be a number that fits an int. */
	var last = labels[labels.length - 1];
	if (/^[0-9]+$/.test(last)) {
		var digits = last.replace(/^0+(?=.)/, '');
		if (digits.length < 19 || (digits.length == 19 && digits <= '9223372036854775807'))
			return why;
	}
	return null;
}

/* parsePin: base64 of 32 bytes, padded or not, optionally after "sha256/". Words have no \r or
 * \n, the only characters Go's decoder skips; so this is all that decodes to 32 bytes. */
function pin(s) {
	var b64 = s.indexOf('sha256/') == 0 ? s.substring(7) : s;
	if (/^[A-Za-z0-9+\/]{43}=?$/.test(b64))
		return null;
	return _('is not the base64 SHA-256 digest of a public key (32 bytes, optionally written sha256/<base64>)');
}

function quote(s) {
	return '"' + s + '"';
}

return baseclass.extend({
	types: TYPES,
	commonTypes: COMMON_TYPES,

	/* Each returns null when the loader takes the value, else why not. */

	typeList: function(values) {
		var seen = {}, n = 0;
		for (var i = 0; i < values.length; i++) {
			var words = fields(values[i]);
			for (var j = 0; j < words.length; j++) {
				var why = recordType(words[j]);
				if (why)
					return why;
				var u = words[j].toUpperCase();
				if (!seen[u]) {
					seen[u] = true;
					n++;
				}
			}
		}
		return n > MAX_TYPES ? _('lists %d record types, more than the %d one lookup may ask for').format(n, MAX_TYPES) : null;
	},

	recordType: recordType,

	timeout: function(s) {
		var n = decimal(s);
		return (n == null || n < 100 || n > 60000) ? _('%s is not a timeout in milliseconds (100-60000)').format(quote(s)) : null;
	},

	cacheSize: function(s) {
		var n = decimal(s);
		return (n == null || n > 1000000) ? _('%s is not a number of cache entries (0-1000000)').format(quote(s)) : null;
	},

	threads: function(s) {
		var n = decimal(s);
		return (n == null || n > 64) ? _('%s is not a number of threads (0-64; 0 is one per CPU)').format(quote(s)) : null;
	},

	cacheMemory: function(s) {
		var kib = memoryKiB(s);
		if (kib === 0)
			return _('%s is below the smallest cache (64K); a cache size of 0 turns the cache off').format(quote(s));
		if (kib == null || kib < 64 || kib > (1 << 20))
			return _('%s is not a memory size in KiB, or with a unit K, M or G such as 4M (64K-1G)').format(quote(s));
		return null;
	},

	socket: function(s) {
		if (s.charAt(0) != '/')
			return _('%s is not an absolute path').format(quote(s));
		if (utf8Length(s) > MAX_SOCKET_BYTES)
			return _('%s is too long for a unix socket path (%d bytes at most)').format(quote(s), MAX_SOCKET_BYTES);
		return null;
	},

	absPath: function(s) {
		return s.charAt(0) == '/' ? null : _('%s is not an absolute path').format(quote(s));
	},

	hostPort: function(s) {
		return parseHostPort(s) ? null : _('%s is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)').format(quote(s));
	},

	isLoopbackHostPort: function(s) {
		var a = parseHostPort(s);
		return a != null && isLoopback(a);
	},

	/* values: every entry of the listen list. */
	listen: function(values) {
		var words = [];
		for (var i = 0; i < values.length; i++)
			words = words.concat(fields(values[i]));
		for (var j = 0; j < words.length; j++) {
			if (words[j] == 'none') {
				if (words.length > 1)
					return _('"none" turns the listener off and cannot stand beside addresses');
				continue;
			}
			var a = parseHostPort(words[j]);
			if (!a)
				return _('%s is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)').format(quote(words[j]));
			/* The listener's own rule (dnsserver): a wildcard would answer on the WAN side too. */
			if (a.bytes.every(function(b) { return b == 0; }))
				return _('%s is a wildcard address; list each address to serve (such as the LAN address)').format(quote(words[j]));
		}
		return null;
	},

	trigger: function(s) {
		var words = fields(s);
		for (var i = 0; i < words.length; i++)
			if (!/^[A-Za-z0-9_]+$/.test(words[i]))
				return _('%s is not a network interface name (letters, digits and _, as in /etc/config/network)').format(quote(words[i]));
		return null;
	},

	address: function(s) {
		return parseAddr(s) ? null : _('%s is not an IP address (delve makes no bootstrap lookups: give the server\'s IPv4 or IPv6 address)').format(quote(s));
	},

	port: function(s) {
		var n = decimal(s);
		if (n == null || n < 1 || n > 65535)
			return _('%s is not a port (1-65535)').format(quote(s));
		if (n == 53)
			return _('%s is plain DNS\'s port; DNS over TLS must not use it, its port is 853').format(quote(s));
		return null;
	},

	tlsName: function(s) {
		var why = dnsName(s);
		return why ? quote(s) + ' ' + why : null;
	},

	pins: function(values) {
		for (var i = 0; i < values.length; i++) {
			var words = fields(values[i]);
			for (var j = 0; j < words.length; j++) {
				var why = pin(words[j]);
				if (why)
					return quote(words[j]) + ' ' + why;
			}
		}
		return null;
	},

	/* A section name the daemon and uci accept, for presets. */
	sectionName: function(s) {
		return /^[A-Za-z0-9_]+$/.test(s) ? null : _('%s is not a section name (letters, digits and _)').format(quote(s));
	}
});
