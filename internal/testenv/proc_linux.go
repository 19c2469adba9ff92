package testenv

import "syscall"

// sysProcAttr makes the kernel kill a child (unbound) when the test binary dies without Close,
// so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
