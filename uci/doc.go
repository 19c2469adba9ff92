// Package uci loads /etc/config/delve, as OpenWrt's uci tool writes it, into a validated Config whose
// errors name the place and the reason ("delve.cloudflare.port: "99999" is not a port (1-65535)").
package uci
