// Package upstream talks to one DNS-over-TLS server: authenticated TLS (name, SPKI pins or both),
// a small pool of long-lived connections with pipelined queries matched by ID and question,
// EDNS(0) padding and keepalive, and queries retried when a connection closes under them.
package upstream
