'use strict';
'require view';
'require rpc';
'require ui';
'require dom';
'require delve.validate as validate';

/*
 * Services → DNS over TLS → Lookup: a web dig. `ubus call delve lookup` with a name, a record
 * type and an upstream; the answers as a table, the rcode, who answered and how fast, and the
 * badges the daemon sets. Errors are shown as the daemon words them.
 */

var callLookup = rpc.declare({
	object: 'delve',
	method: 'lookup',
	params: [ 'name', 'type', 'upstream' ],
	expect: { '': {} }
});

var callStatus = rpc.declare({ object: 'delve', method: 'status', expect: { '': {} } });

function badge(text, cls, title) {
	return E('span', { 'class': 'label ' + cls, 'style': 'padding:0 .4em;margin-right:.3em', 'title': title }, text);
}

return view.extend({
	load: function() {
		/* The upstreams to choose from, as the running daemon names them. */
		return L.resolveDefault(callStatus(), {});
	},

	renderResult: function(q, res) {
		if (res.error)
			return E('div', { 'class': 'alert-message warning' }, [
				E('h4', {}, _('The lookup failed (%s)').format(res.code)),
				E('p', {}, res.error)
			]);

		var badges = [];
		badges.push(badge(res.rcode, res.rcode == 'NOERROR' ? 'success' : 'warning', _('Response code')));
		if (res.cached)
			badges.push(badge(_('cached'), 'notice', _('Answered from the cache; TTLs have been aged')));
		if (res.secure)
			badges.push(badge(_('secure'), 'success', _('The upstream validated the answer with DNSSEC (AD bit)')));
		if (res.stale)
			badges.push(badge(_('stale'), 'warning', _('No upstream answered in time: an expired answer from the cache (serve-stale, TTL 30)')));
		if (res.capped)
			badges.push(badge(_('capped'), 'warning', _('Only the first %d of %d answers are shown').format(res.answers.length, res.answers_total)));

		var table = E('table', { 'class': 'table', 'id': 'delve-answers' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('Name')),
				E('th', { 'class': 'th' }, _('Type')),
				E('th', { 'class': 'th' }, _('TTL')),
				E('th', { 'class': 'th' }, _('Data'))
			])
		]);
		cbi_update_table(table, (res.answers || []).map(function(a) {
			return [ a.name, a.type, a.ttl, E('code', {}, a.data) ];
		}), E('em', {}, res.rcode == 'NXDOMAIN'
			? _('%s does not exist.').format(res.name)
			: _('%s has no records of the types asked.').format(res.name)));

		return E('div', {}, [
			E('p', {}, badges),
			E('p', {}, _('%s %s, answered by %s in %s.').format(res.name, (res.types || []).join(' '),
				res.upstream || '-', res.cached ? _('no time (cache)') : '%.2f ms'.format(res.rtt_ms))),
			table
		]);
	},

	handleLookup: function(ev) {
		var name = this.nameField.getValue().trim(),
		    type = String(this.typeField.getValue() || '').trim(),
		    upstream = this.upstreamField.getValue(),
		    out = document.getElementById('delve-result');

		if (name === '') {
			dom.content(out, E('div', { 'class': 'alert-message warning' }, _('Enter a domain name, or an IP address for its PTR record.')));
			return Promise.resolve();
		}
		var why = type !== '' ? validate.recordType(type) : null;
		if (why) {
			dom.content(out, E('div', { 'class': 'alert-message warning' }, why));
			return Promise.resolve();
		}

		dom.content(out, E('p', { 'class': 'spinning' }, _('Looking up %s…').format(name)));
		return callLookup(name, type, upstream).then(L.bind(function(res) {
			dom.content(out, this.renderResult({ name: name, type: type }, res));
		}, this)).catch(function(err) {
			dom.content(out, E('div', { 'class': 'alert-message warning' }, [
				E('h4', {}, _('The ubus object delve cannot be reached')),
				E('p', {}, err.message)
			]));
		});
	},

	render: function(st) {
		var types = {};
		validate.commonTypes.forEach(function(t) { types[t] = t; });
		var upstreams = { '': _('By the configured strategy') };
		(st.upstreams || []).forEach(function(u) {
			upstreams[u.name] = '%s (%s)'.format(u.name, u.tls_name || u.address);
		});

		this.nameField = new ui.Textfield('', { placeholder: 'openwrt.org', id: 'delve-name' });
		this.typeField = new ui.Combobox('', types, {
			create: true,
			optional: true,
			select_placeholder: _('-- default types --'),
			custom_placeholder: _('-- other type --'),
			sort: validate.commonTypes,
			id: 'delve-type'
		});
		this.upstreamField = new ui.Select('', upstreams, { id: 'delve-upstream', sort: Object.keys(upstreams) });

		var form = E('div', { 'class': 'cbi-section' }, [
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'widget.delve-name' }, _('Name')),
				E('div', { 'class': 'cbi-value-field' }, [
					this.nameField.render(),
					E('div', { 'class': 'cbi-value-description' }, _('A domain name, or an IP address to ask for its PTR record.'))
				])
			]),
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'delve-type' }, _('Record type')),
				E('div', { 'class': 'cbi-value-field' }, [
					this.typeField.render(),
					E('div', { 'class': 'cbi-value-description' }, _('Choose one or type any other (CAA, TYPE65, ...); empty asks the configured default types.'))
				])
			]),
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title', 'for': 'widget.delve-upstream' }, _('Upstream')),
				E('div', { 'class': 'cbi-value-field' }, this.upstreamField.render())
			]),
			E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title' }),
				E('div', { 'class': 'cbi-value-field' },
					E('button', { 'class': 'btn cbi-button cbi-button-action', 'click': ui.createHandlerFn(this, 'handleLookup') }, _('Look up')))
			])
		]);

		var nameInput = form.querySelector('input[id="widget.delve-name"]');
		if (nameInput)
			nameInput.addEventListener('keydown', L.bind(function(ev) {
				if (ev.keyCode == 13)
					this.handleLookup(ev);
			}, this));

		return E('div', {}, [
			E('h2', {}, _('DNS over TLS: Lookup')),
			E('div', { 'class': 'cbi-map-descr' }, _('Ask the delve daemon for a name, as ubus call delve lookup does: through its cache and its DNS-over-TLS upstreams.')),
			form,
			E('div', { 'class': 'cbi-section', 'id': 'delve-result' })
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
