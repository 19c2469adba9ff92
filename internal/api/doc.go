// Package api holds what every front end of delve shares: the lookup object of the JSON contract,
// the table of methods the daemon serves (from which the rpcd signature is generated), and the
// error codes, mapped to JSON-RPC and ubus in one place.
package api
