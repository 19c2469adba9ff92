package dnsserver

// The syscall package's frozen table for 386 ends before sendmmsg (Linux 3.0): its number
// from the kernel's table (x/sys/unix has the same).
const sysSENDMMSG = 345
