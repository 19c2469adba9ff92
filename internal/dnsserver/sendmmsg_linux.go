//go:build linux && !386 && !amd64

package dnsserver

import "syscall"

const sysSENDMMSG = syscall.SYS_SENDMMSG
