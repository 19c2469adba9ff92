'use strict';
'require baseclass';
'require rpc';

/* Status → Overview: one line per delve upstream and the cache's hit rate. */

var callStatus = rpc.declare({ object: 'delve', method: 'status', expect: { '': {} } });

return baseclass.extend({
	title: _('DNS over TLS'),

	load: function() {
		return callStatus().catch(function(err) {
			return { rpc_error: err.message || String(err) };
		});
	},

	render: function(st) {
		if (st.rpc_error)
			return E('p', {}, _('The ubus object delve cannot be reached: %s').format(st.rpc_error));
		if (st.error)
			return E('p', {}, st.code == 'daemon_down' ? _('Not running: %s').format(st.error) : st.error);

		var table = E('table', { 'class': 'table' });
		(st.upstreams || []).forEach(function(u) {
			var state = u.healthy
				? (u.srtt_ms ? _('smoothed RTT %s').format('%.1f ms'.format(u.srtt_ms)) : _('not asked yet'))
				: (u.last_error || '');
			table.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, u.name),
				E('td', { 'class': 'td left' }, [
					E('span', { 'class': 'label ' + (u.healthy ? 'success' : 'warning'), 'style': 'padding:0 .4em' }, u.healthy ? _('Up') : _('Down')),
					' ', state
				])
			]));
		});

		var c = st.cache || {}, asked = (c.hits || 0) + (c.misses || 0);
		table.appendChild(E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '33%' }, _('Cache hit rate')),
			E('td', { 'class': 'td left' }, asked
				? _('%s (%d hits, %d misses; %d entries cached)').format('%.1f %%'.format(100 * c.hits / asked), c.hits || 0, c.misses || 0, c.entries || 0)
				: _('no lookups yet'))
		]));
		return table;
	}
});
