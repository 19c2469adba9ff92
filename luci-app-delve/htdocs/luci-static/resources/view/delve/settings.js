'use strict';
'require view';
'require form';
'require rpc';
'require uci';
'require ui';
'require dom';
'require poll';
'require request';
'require delve.validate as validate';

/*
 * Services → DNS over TLS → Settings: /etc/config/delve as the README documents it. Every check
 * is the daemon's own (delve.validate mirrors uci/validate.go), so the form refuses what
 * `delve serve` would refuse. Save & Apply commits the file; procd then has the daemon reload it,
 * and the box at the top says whether it took the new configuration.
 */

var callStatus = rpc.declare({ object: 'delve', method: 'status', expect: { '': {} } });

/* check adapts a delve.validate check (null or why not) to form.js's validate (true or why not). */
function check(fn) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return fn(value) || true;
	};
}

/* checkList runs a whole-list check on the list's values with the new one. */
function checkList(fn) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		var all = [].concat(this.formvalue(section_id) || []);
		if (all.indexOf(value) < 0)
			all.push(value);
		return fn(all) || true;
	};
}

/* A section name that is not taken yet: id, id2, id3, ... */
function freeName(id) {
	var taken = {};
	uci.sections('delve').forEach(function(s) { taken[s['.name']] = true; });
	if (!taken[id])
		return id;
	for (var i = 2; ; i++)
		if (!taken[id + i])
			return id + i;
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), {}),
			L.resolveDefault(request.get(L.resource('delve/presets.json')).then(function(res) {
				return res.json();
			}), { presets: [] })
		]);
	},

	/* The box that says which configuration the daemon runs. */
	renderDaemon: function(st) {
		var cfg = st.config || {};
		if (st.error || !st.config)
			return E('div', { 'class': 'alert-message warning', 'id': 'delve-config-state' }, [
				E('h4', {}, _('The daemon is not running')),
				E('p', {}, st.error || _('No answer from the ubus object delve.'))
			]);
		if (cfg.last_reload_error)
			return E('div', { 'class': 'alert-message danger', 'id': 'delve-config-state' }, [
				E('h4', {}, _('The daemon refused the saved configuration')),
				E('p', {}, cfg.last_reload_error),
				E('p', {}, _('It keeps running the configuration it loaded at %s. Correct the setting and apply again.').format(new Date(cfg.loaded_at).toLocaleString()))
			]);
		var ago = Math.max(0, Math.round((Date.now() - Date.parse(cfg.loaded_at)) / 1000));
		return E('div', { 'class': 'alert-message notice', 'id': 'delve-config-state' },
			_('The daemon runs the configuration it loaded at %s (%s ago).').format(new Date(cfg.loaded_at).toLocaleString(), '%t'.format(ago)));
	},

	pollDaemon: function() {
		return L.resolveDefault(callStatus(), {}).then(L.bind(function(st) {
			var box = document.getElementById('delve-config-state');
			if (box)
				box.parentNode.replaceChild(this.renderDaemon(st), box);
		}, this));
	},

	handleAddPreset: function(m, presets, ev) {
		var key = document.getElementById('delve-preset').value.split('/');
		var p = presets.filter(function(p) { return p.id == key[0]; })[0];
		if (!p)
			return Promise.resolve();
		var addrs = p[key[1]] || [];
		return m.save(function() {
			addrs.forEach(function(a) {
				var sid = uci.add('delve', 'upstream', freeName(key[1] == 'ipv6' ? p.id + '6' : p.id));
				uci.set('delve', sid, 'address', a);
				uci.set('delve', sid, 'port', '853');
				uci.set('delve', sid, 'tls_name', p.tls_name);
				uci.set('delve', sid, 'enabled', '1');
			});
		});
	},

	render: function(data) {
		var st = data[0] || {}, presets = (data[1] && data[1].presets) || [];

		if (!L.hasViewPermission())
			return E('div', {}, [
				E('h2', {}, _('DNS over TLS: Settings')),
				E('div', { 'class': 'alert-message warning' },
					_('Your login may see the status and look names up, but not read or change the settings: they hold the WebSocket token. Ask for the write side of the luci-app-delve access group.'))
			]);

		var m, s, o;

		m = new form.Map('delve', _('DNS over TLS: Settings'),
			_('The configuration of the delve daemon, /etc/config/delve. Save & Apply writes it and has the daemon reload it; a value the daemon would refuse is refused here.'));

		s = m.section(form.NamedSection, 'main', 'delve', _('Service'));
		s.addremove = false;

		s.tab('general', _('General'));
		s.tab('cache', _('Cache'));
		s.tab('integration', _('dnsmasq and listener'));
		s.tab('advanced', _('TLS and advanced'));

		/* General */
		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'),
			_('Off stops the daemon.'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', form.DynamicList, 'type', _('Record types'),
			_('Record types asked when a lookup names none (default A and AAAA).'));
		validate.commonTypes.forEach(function(t) { o.value(t); });
		o.validate = checkList(validate.typeList);

		o = s.taboption('general', form.Value, 'timeout', _('Timeout'),
			_('Milliseconds for a whole lookup, retries included, 100–60000.'));
		o.placeholder = '3000';
		o.validate = check(validate.timeout);

		o = s.taboption('general', form.ListValue, 'strategy', _('Strategy'),
			_('Which upstream is asked: the first healthy one in order (failover), each in turn (round robin), or the one with the lowest smoothed RTT (fastest).'));
		o.value('failover', _('Failover, in section order'));
		o.value('round_robin', _('Round robin'));
		o.value('fastest', _('Fastest (smoothed RTT)'));
		o.default = 'failover';

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'),
			_('What the daemon logs to logd (logread -e delve).'));
		o.value('debug', _('Debug'));
		o.value('info', _('Info'));
		o.value('warn', _('Warning'));
		o.value('error', _('Error'));
		o.default = 'info';

		/* Cache */
		o = s.taboption('cache', form.Value, 'cache_size', _('Cache size'),
			_('Cached answers, 0–1000000; 0 turns the cache off.'));
		o.placeholder = '1024';
		o.validate = check(validate.cacheSize);

		o = s.taboption('cache', form.Value, 'cache_memory', _('Cache memory'),
			_('Bytes all cached answers may hold, in KiB, or with a unit K, M or G (4M = 4096K), 64K–1G. An answer above 1/16 of it is not cached.'));
		o.placeholder = '4M';
		o.validate = check(validate.cacheMemory);

		o = s.taboption('cache', form.Flag, 'serve_stale', _('Serve stale answers'),
			_('When no upstream answers within 1.8 s, answer from an expired cached answer (TTL 30, up to a day past its expiry), RFC 8767.'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('cache', form.Flag, 'prefetch', _('Prefetch'),
			_('Refresh a popular cached answer in the background when it is asked in the last tenth of its TTL.'));
		o.default = '1';
		o.rmempty = false;

		/* dnsmasq and the listener */
		o = s.taboption('integration', form.DynamicList, 'listen', _('DNS listener'),
			_('Plain DNS (UDP and TCP) on IP:port, for dnsmasq, e.g. 127.0.0.1:5453 and [::1]:5453; "none" or empty turns it off. Wildcard addresses are refused: list a LAN address to serve the LAN directly.'));
		o.validate = checkList(validate.listen);

		o = s.taboption('integration', form.Flag, 'dnsmasq', _('Point dnsmasq at delve'),
			_('The init script makes dnsmasq forward to the first listener address (and sets noresolv); off puts dnsmasq\'s previous servers back.'));
		o.default = '0';

		o = s.taboption('integration', form.DynamicList, 'trigger', _('Trigger interfaces'),
			_('Interfaces whose up/down events make delve redial its upstreams (default wan).'));
		o.placeholder = 'wan';
		o.validate = check(validate.trigger);

		o = s.taboption('integration', form.Value, 'socket', _('JSON-RPC socket'),
			_('The unix socket of the JSON-RPC API; the ubus object delve uses it.'));
		o.placeholder = '/var/run/delve/delve.sock';
		o.validate = check(validate.socket);

		o = s.taboption('integration', form.ListValue, 'ubus', _('ubus object'),
			_('Who serves the ubus object delve, which these pages use: rpcd (its bridge, a process per call) or the daemon itself, registered with ubusd (native).'));
		o.value('rpcd', _('rpcd bridge'));
		o.value('native', _('Native (the daemon registers it)'));
		o.default = 'rpcd';

		o = s.taboption('integration', form.Value, 'ubus_socket', _('ubusd socket'),
			_('ubusd\'s socket for the native object; empty: /var/run/ubus/ubus.sock, or /var/run/ubus.sock where only that exists.'));
		o.placeholder = '/var/run/ubus/ubus.sock';
		o.depends('ubus', 'native');
		o.validate = check(validate.socket);

		o = s.taboption('integration', form.Value, 'websocket', _('WebSocket'),
			_('JSON-RPC over WebSocket on IP:port, e.g. 127.0.0.1:8053; empty turns it off. A non-loopback address needs a token.'));
		o.validate = function(section_id, value) {
			if (value == null || value === '')
				return true;
			var why = validate.hostPort(value);
			if (why)
				return why;
			var token = this.section.formvalue(section_id, 'websocket_token');
			if (!validate.isLoopbackHostPort(value) && (token == null || token === ''))
				return _('needs a WebSocket token because %s is not a loopback address').format(value);
			return true;
		};

		o = s.taboption('integration', form.Value, 'websocket_token', _('WebSocket token'),
			_('Clients send Authorization: Bearer TOKEN; required when the WebSocket is not on a loopback address.'));
		o.password = true;

		/* TLS and advanced */
		o = s.taboption('advanced', form.Value, 'ca_file', _('CA file'),
			_('PEM bundle to verify upstream certificates; empty uses the system roots (ca-bundle).'));
		o.placeholder = '/etc/ssl/certs/ca-certificates.crt';
		o.validate = check(validate.absPath);

		o = s.taboption('advanced', form.Value, 'threads', _('Threads'),
			_('How many CPU threads run delve\'s Go code at once (GOMAXPROCS), 0–64; 0 is one per CPU. One is the cheapest per lookup, and a household\'s lookups come one or two at a time; 0 suits a busy multi-core router.'));
		o.placeholder = '1';
		o.validate = check(validate.threads);

		o = s.taboption('advanced', form.Flag, 'tolerate_unset_clock', _('Tolerate an unset clock'),
			_('While the clock is earlier than the build of delve (a router without a real-time clock, before NTP), accept certificates whose only fault is "not valid yet". Names, chains, pins and expiry are still checked.'));
		o.default = '0';

		/* Upstreams */
		s = m.section(form.GridSection, 'upstream', _('Upstreams'),
			_('DNS-over-TLS servers, asked in this order by the failover strategy (drag to sort). Each needs a TLS name or at least one pin, and at least one must be enabled.'));
		s.addremove = true;
		s.anonymous = false;
		s.sortable = true;
		s.nodescriptions = true;
		s.addbtntitle = _('Add upstream');

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;
		o.editable = true;

		o = s.option(form.Value, 'address', _('Address'),
			_('The server\'s IPv4 or IPv6 address (no host names: there is no DNS yet to look them up with).'));
		o.rmempty = false;
		o.validate = function(section_id, value) {
			var why = validate.address(value || '');
			if (why)
				return why;
			var name = this.section.formvalue(section_id, 'tls_name'),
			    pins = [].concat(this.section.formvalue(section_id, 'pin') || []).filter(function(p) { return p !== ''; });
			if ((name == null || name === '') && pins.length == 0)
				return _('needs a TLS name or at least one pin: delve authenticates every server (RFC 8310 strict profile)');
			return true;
		};

		o = s.option(form.Value, 'port', _('Port'), _('1–65535, never 53.'));
		o.placeholder = '853';
		o.validate = check(validate.port);

		o = s.option(form.Value, 'tls_name', _('TLS name'),
			_('The name the server\'s certificate must carry, e.g. cloudflare-dns.com.'));
		o.validate = check(validate.tlsName);

		o = s.option(form.DynamicList, 'pin', _('Pins'),
			_('SHA-256 SPKI pins, base64 or sha256/<base64>.'));
		o.validate = checkList(validate.pins);
		o.textvalue = function(section_id) {
			var pins = [].concat(this.cfgvalue(section_id) || []);
			return pins.length ? pins.map(function(p) { return p.substring(0, 12) + '…'; }).join(' ') : '-';
		};

		var choices = presets.reduce(function(list, p) {
			if ((p.ipv4 || []).length)
				list.push(E('option', { 'value': p.id + '/ipv4' }, _('%s, IPv4 (%s)').format(p.title, p.ipv4.join(', '))));
			if ((p.ipv6 || []).length)
				list.push(E('option', { 'value': p.id + '/ipv6' }, _('%s, IPv6 (%s)').format(p.title, p.ipv6.join(', '))));
			return list;
		}, []);

		var page = E('div', {}, [ this.renderDaemon(st) ]);
		poll.add(L.bind(this.pollDaemon, this), 5);

		return m.render().then(L.bind(function(mapEl) {
			page.appendChild(mapEl);
			page.appendChild(E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, _('Add a well-known provider')),
				E('div', { 'class': 'cbi-section-descr' },
					_('Adds an upstream section for each address of the provider, with its TLS name; save and apply to use them.')),
				E('div', { 'class': 'cbi-value' }, [
					E('select', { 'id': 'delve-preset', 'class': 'cbi-input-select' }, choices), ' ',
					E('button', {
						'class': 'btn cbi-button cbi-button-add',
						'id': 'delve-preset-add',
						'click': ui.createHandlerFn(this, 'handleAddPreset', m, presets)
					}, _('Add'))
				])
			]));
			return page;
		}, this));
	}
});
