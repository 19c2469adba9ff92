// Package faults holds no code: its tests run the real delve daemon on loopback against dying,
// stalling, lying and hostile upstreams and clients (fault injection, hostile input, security
// checks), and its soak test, behind the build tag "soak", runs `make soak`.
package faults
