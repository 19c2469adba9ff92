'use strict';
'require view';
'require poll';
'require rpc';
'require ui';
'require dom';

/*
 * Services → DNS over TLS → Status: `ubus call delve status`, refreshed by LuCI's poll, and the
 * write-side buttons flush, reload and redial. The bridge answers daemon failures as an object
 * {"error": ..., "code": ...} with ubus status 0; a missing ubus object or a denied call is an
 * RPC error instead. Both are shown, with the reason.
 */

var callStatus = rpc.declare({ object: 'delve', method: 'status', expect: { '': {} } });
var callFlush = rpc.declare({ object: 'delve', method: 'flush', expect: { '': {} } });
var callReload = rpc.declare({ object: 'delve', method: 'reload', expect: { '': {} } });
var callRedial = rpc.declare({ object: 'delve', method: 'redial', expect: { '': {} } });

/* fetchStatus never rejects: an RPC failure becomes { rpc_error: message }. */
function fetchStatus() {
	return callStatus().catch(function(err) {
		return { rpc_error: err.message || String(err) };
	});
}

function since(iso) {
	var t = Date.parse(iso);
	if (isNaN(t))
		return iso || '';
	var ago = Math.max(0, Math.round((Date.now() - t) / 1000));
	return _('%s (%s ago)').format(new Date(t).toLocaleString(), '%t'.format(ago));
}

function badge(ok, yes, no) {
	return E('span', { 'class': 'label ' + (ok ? 'success' : 'warning'), 'style': 'padding:0 .4em' }, ok ? yes : no);
}

function bar(value, max, text) {
	var pct = max > 0 ? Math.min(100, 100 * value / max) : 0;
	return E('div', { 'class': 'cbi-progressbar', 'title': text },
		E('div', { 'style': 'width:%.2f%%'.format(pct) }));
}

function hitRate(cache) {
	var asked = (cache.hits || 0) + (cache.misses || 0);
	return asked ? '%.1f %%'.format(100 * cache.hits / asked) : '-';
}

/* The daemon reports -1 for what it cannot read (no /proc): shown as "-", as delve status does. */
function known(n) {
	return (typeof n == 'number' && n >= 0) ? String(n) : '-';
}

function kib(n) {
	return (typeof n == 'number' && n >= 0) ? '%1024.1mB'.format(n * 1024) : '-';
}

/* What the page says when there is no status: the daemon's own error, or the RPC's. */
function failure(st) {
	if (st.rpc_error)
		return {
			title: _('The ubus object delve cannot be reached'),
			text: _('rpcd did not run the delve bridge: %s. Check that the delve package is installed, run /etc/init.d/rpcd reload, and log in again.').format(st.rpc_error)
		};
	if (st.code == 'daemon_down')
		return { title: _('Not running'), text: st.error };
	return { title: _('The daemon answered with an error (%s)').format(st.code), text: st.error };
}

function kv(rows) {
	return E('table', { 'class': 'table' }, rows.map(function(r) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '33%' }, r[0]),
			E('td', { 'class': 'td left' }, r[1])
		]);
	}));
}

return view.extend({
	load: function() {
		return fetchStatus();
	},

	renderState: function(st) {
		if (st.rpc_error || st.error) {
			var f = failure(st);
			return E('div', { 'class': 'cbi-section', 'id': 'delve-state' }, [
				E('h3', {}, _('Service')),
				E('div', { 'class': 'alert-message warning' }, [
					E('h4', {}, f.title),
					E('p', {}, f.text)
				])
			]);
		}

		var cfg = st.config || {}, cache = st.cache || {}, proc = st.process || {}, ups = st.upstreams || [];
		var nodes = [];

		nodes.push(E('div', { 'class': 'cbi-section' }, [
			E('h3', {}, _('Service')),
			kv([
				[ _('State'), badge(true, _('Running'), '') ],
				[ _('Version'), st.version ],
				[ _('Uptime'), '%t'.format(st.uptime_s || 0) ],
				[ _('Configuration'), cfg.last_reload_error
					? E('span', {}, [ _('Loaded %s from %s.').format(since(cfg.loaded_at), cfg.file), ' ',
						E('strong', {}, _('The last reload was refused: %s').format(cfg.last_reload_error)) ])
					: _('Loaded %s from %s.').format(since(cfg.loaded_at), cfg.file) ],
				[ _('Strategy'), cfg.strategy ],
				[ _('Lookups'), _('%d, of which %d failed').format(st.lookups || 0, st.lookup_failures || 0) ],
				[ _('Process'), _('%s resident (peak %s), %d goroutines, %s open files').format(
					kib(proc.rss_kib), kib(proc.peak_rss_kib), proc.goroutines || 0, known(proc.open_fds)) ],
				[ _('Threads'), _('%d running Go code at once (GOMAXPROCS, option threads)').format(proc.threads || 0) ]
			])
		]));

		var table = E('table', { 'class': 'table', 'id': 'delve-upstreams' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('Name')),
				E('th', { 'class': 'th' }, _('Address')),
				E('th', { 'class': 'th' }, _('TLS name')),
				E('th', { 'class': 'th' }, _('State')),
				E('th', { 'class': 'th' }, _('Smoothed RTT')),
				E('th', { 'class': 'th' }, _('Queries')),
				E('th', { 'class': 'th' }, _('Failures')),
				E('th', { 'class': 'th' }, _('Stalls')),
				E('th', { 'class': 'th', 'title': _('Connections the server closed before answering any query owed on them') }, _('Dropped')),
				E('th', { 'class': 'th' }, _('Open connections'))
			])
		]);
		cbi_update_table(table, ups.map(function(u) {
			var state = u.healthy
				? badge(true, _('Healthy'), '')
				: E('span', {}, [
					badge(false, '', _('Down')), ' ',
					E('small', {}, _('since %s').format(since(u.down_since))),
					E('br'),
					E('small', {}, u.last_error || '')
				]);
			return [
				u.name,
				u.address.indexOf(':') >= 0 ? '[%s]:%d'.format(u.address, u.port) : '%s:%d'.format(u.address, u.port),
				u.tls_name || E('em', {}, _('pins only')),
				state,
				u.srtt_ms ? '%.1f ms'.format(u.srtt_ms) : '-',
				u.queries,
				u.failures,
				u.stalls,
				u.dropped_connections,
				u.open_connections
			];
		}), E('em', {}, _('No upstream is configured.')));

		nodes.push(E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Upstreams')), table ]));

		var cacheRows = [
			[ _('Entries'), bar(cache.entries, cache.size, _('%d of %d').format(cache.entries || 0, cache.size || 0)) ],
			[ _('Memory'), bar(cache.bytes, cache.memory,
				_('%s of %s').format('%1024.2mB'.format(cache.bytes || 0), '%1024.2mB'.format(cache.memory || 0))) ],
			[ _('Hit rate'), _('%s (%d hits, %d misses)').format(hitRate(cache), cache.hits || 0, cache.misses || 0) ],
			[ _('Prefetches'), cache.prefetches || 0 ]
		];
		cacheRows.push([ _('Stale answers'), _('%d (expired answers given because no upstream answered in time)').format(cache.stale || 0) ]);
		nodes.push(E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Cache')), kv(cacheRows) ]));

		if (st.dns)
			nodes.push(E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, _('DNS listener')),
				kv([
					[ _('Addresses'), (cfg.listen || []).join(', ') || _('none') ],
					[ _('Queries'), _('%d over UDP, %d over TCP; %d answered, %d from the cache').format(
						st.dns.udp_queries, st.dns.tcp_queries, st.dns.answered, st.dns.cached) ],
					[ _('Refused or dropped'), _('%d refused, %d SERVFAIL, %d malformed, %d rate limited').format(
						st.dns.refused, st.dns.servfail, st.dns.malformed, st.dns.rate_limited) ]
				])
			]));

		return E('div', { 'id': 'delve-state' }, nodes);
	},

	update: function(st) {
		var old = document.getElementById('delve-state');
		if (old)
			dom.content(old.parentNode, this.renderState(st));
		this.setButtons(!st.rpc_error && !st.error);
	},

	setButtons: function(running) {
		var readonly = !L.hasViewPermission();
		document.querySelectorAll('#delve-actions button').forEach(function(btn) {
			btn.disabled = readonly || !running;
		});
	},

	refresh: function() {
		return fetchStatus().then(L.bind(this.update, this));
	},

	/* act calls a write method, shows what came of it and refreshes the page: the daemon's refusal
	 * under failTitle, an RPC failure as LuCI words it, else ok(res). */
	act: function(call, failTitle, ok) {
		return call().then(function(res) {
			if (res.error)
				ui.addNotification(null, [ E('h4', {}, failTitle), E('p', {}, res.error) ], 'danger');
			else
				ui.addNotification(null, ok(res), 'info');
		}).catch(function(err) {
			ui.addNotification(null, E('p', {}, err.message), 'danger');
		}).then(L.bind(this.refresh, this));
	},

	handleFlush: function() {
		return this.act(callFlush, _('Flushing the cache failed'), function(res) {
			return E('p', {}, _('The cache is empty: %d answers were dropped.').format(res.flushed));
		});
	},

	handleReload: function() {
		return this.act(callReload, _('The daemon refused the configuration and keeps running the previous one'), function(res) {
			return [ E('p', {}, _('Configuration reloaded from %s: %d upstreams.').format(res.file, res.upstreams)) ].concat(
				(res.warnings || []).map(function(w) { return E('p', {}, _('Warning: %s').format(w)); }));
		});
	},

	handleRedial: function() {
		return this.act(callRedial, _('Redialing failed'), function(res) {
			return E('p', {}, _('Every upstream connection was dropped and every failure forgotten (%d upstreams); the next lookup dials again.').format(res.redialed));
		});
	},

	render: function(st) {
		var actions = E('div', { 'class': 'cbi-section', 'id': 'delve-actions' }, [
			E('button', {
				'class': 'btn cbi-button cbi-button-action',
				'title': _('Empty the cache'),
				'click': ui.createHandlerFn(this, 'handleFlush')
			}, _('Flush cache')), ' ',
			E('button', {
				'class': 'btn cbi-button cbi-button-apply',
				'title': _('Read /etc/config/delve again; a bad file is refused and the running configuration stays'),
				'click': ui.createHandlerFn(this, 'handleReload')
			}, _('Reload configuration')), ' ',
			E('button', {
				'class': 'btn cbi-button cbi-button-reset',
				'title': _('Drop every upstream connection and forget their failures, as after a WAN change'),
				'click': ui.createHandlerFn(this, 'handleRedial')
			}, _('Redial upstreams'))
		]);

		var page = E('div', {}, [
			E('h2', {}, _('DNS over TLS')),
			E('div', { 'class': 'cbi-map-descr' }, _('The state of the delve daemon, as it reports it over ubus, refreshed every 5 seconds.')),
			actions,
			E('div', {}, this.renderState(st))
		]);

		poll.add(L.bind(this.refresh, this), 5);
		window.setTimeout(L.bind(this.setButtons, this, !st.rpc_error && !st.error), 0);
		return page;
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
