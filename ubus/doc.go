// Package ubus is the rpcd exec plugin behind the ubus object "delve": `delve rpcd list` prints
// the method signatures generated from the daemon's method table, and `delve rpcd call METHOD`
// forwards one call from stdin to the daemon's JSON-RPC socket and prints exactly one JSON object,
// an error object {"error":"...","code":"..."} when the call fails.
//
// rpcd ignores an exec plugin's exit status and stderr and waits for `list` without a timeout,
// so `list` reads nothing and `call` reports every failure on stdout and ends within a hard
// deadline well inside rpcd's 30 s exec timeout (see openwrt-facts.md §1).
//
// Two environment variables redirect `call`, for tests and for running a daemon elsewhere:
// DELVE_CONFIG names the UCI file to read main.socket and main.timeout from (default
// /etc/config/delve), and DELVE_SOCKET names the daemon's socket, taking precedence over the file.
package ubus
