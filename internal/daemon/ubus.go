package daemon

import (
	"context"

	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/uci"
)

// setUbus starts, moves or stops the native ubus object as cfg says (option ubus 'native',
// option ubus_socket). It runs under reloadMu. Stopping unregisters the object, so that rpcd,
// reloaded by the init script, can take the name for the bridge; it happens in the background
// (retire), since Close lets the object's calls in flight finish, and the reload that switched
// it off may be one of them, holding reloadMu.
func (d *Daemon) setUbus(cfg *uci.Config) {
	want := cfg.Ubus == uci.UbusNative
	cur := d.native.Load()
	if cur != nil && (!want || cfg.UbusSocket != d.ubusSocket) {
		d.native.Store(nil)
		old := cur
		d.serve(func() { _ = old.Close() })
		cur = nil
	}
	if want && cur == nil {
		d.ubusSocket = cfg.UbusSocket
		d.native.Store(ubus.StartNative(ubus.NativeOptions{
			Socket: cfg.UbusSocket, Call: d.ubusCall, Hub: &d.hub, Logger: d.log,
		}))
	}
}

// stopUbus unregisters the native object at shutdown, in the background: a reload that came in
// through it waits for reloadMu, which shutdown holds, and is refused once shutdown lets go;
// shutdown waits for it with the retired transports.
func (d *Daemon) stopUbus() {
	if n := d.native.Swap(nil); n != nil {
		d.serve(func() { _ = n.Close() })
	}
}

// ubusCall runs a call of the native object through the same handler as the socket's calls.
func (d *Daemon) ubusCall(ctx context.Context, method string, params map[string]string) (json.RawMessage, error) {
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params) // strings always encode
	}
	res, err := d.handlerFor("ubus")(ctx, method, raw, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// ubusStatus is the native object's part of status, nil when it is off.
func (d *Daemon) ubusStatus() *ubus.NativeStatus {
	n := d.native.Load()
	if n == nil {
		return nil
	}
	st := n.Status()
	return &st
}
