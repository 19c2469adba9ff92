// Package ubus serves the ubus object "delve" two ways. The rpcd exec plugin (option ubus
// 'rpcd'): `delve rpcd list` prints the method signatures generated from the daemon's method
// table (or {} with option ubus 'native', so that rpcd leaves the name to the daemon), and `delve
// rpcd call METHOD` forwards one call from stdin to the daemon's JSON-RPC socket and prints
// exactly one JSON object, an error object {"error":"...","code":"..."} when the call fails. The
// native object (Native, option ubus 'native'): the daemon registers the object with ubusd itself
// (ubus/ubusd, ubus/blob) and answers each call through the same argument checks and reply
// fitting as the plugin (Handle), the blobmsg converted as rpcd converts it, so that both answer
// alike; its subscribers get a lookup notification for each lookup.
//
// rpcd ignores an exec plugin's exit status and stderr and waits for `list` without a timeout,
// so `list` reads nothing and `call` reports every failure on stdout and ends within a hard
// deadline well inside rpcd's exec timeout. That timeout is rpcd's -t option: OpenWrt's
// /etc/init.d/rpcd passes rpcd.@rpcd[0].timeout, 30 s in the shipped /etc/config/rpcd; without
// -t it is the compiled-in RPC_EXEC_DEFAULT_TIMEOUT, 120 s (rpcd include/rpcd/exec.h). `ubus
// call` has its own -t, default 30 s, so a shell caller gives up after 30 s either way.
//
// Two environment variables redirect `call`, for tests and for running a daemon elsewhere:
// DELVE_CONFIG names the UCI file to read main.socket and main.timeout from (default
// /etc/config/delve), and DELVE_SOCKET names the daemon's socket, taking precedence over the file.
package ubus
