package main

import "syscall"

// sysProcAttr makes the kernel stop the daemon should the demo die without its cleanup (SIGKILL),
// so that no daemon outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
