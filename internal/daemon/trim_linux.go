package daemon

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimText unmaps the pages of the binary's code and read-only data that start-up touched, and
// asks the kernel to map them back one at a time as they are used (MADV_RANDOM turns off
// fault-around, which maps 64 KiB around each fault). A Go binary's file pages are most of a
// fresh daemon's RSS (6.5 of 8 MiB on x86_64), though most of them are never used again; unmapped,
// they are ordinary page cache that the kernel can reclaim on a router short of memory. The
// mappings are private and the file cannot change under a running executable, so the pages that
// fault back in are the same bytes. It returns how many bytes it released.
func trimText() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	type span struct{ start, end uintptr }
	var spans []span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-0056b000 r-xp 00000000 fe:00 9994302   /usr/bin/delve
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[5] != exe || strings.Contains(fl[1], "w") {
			continue
		}
		from, to, ok := strings.Cut(fl[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(from, 16, 64)
		b, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		spans = append(spans, span{uintptr(a), uintptr(b)})
	}
	n := 0
	for _, s := range spans {
		if madvise(s.start, s.end-s.start, syscall.MADV_RANDOM) != nil {
			continue
		}
		if madvise(s.start, s.end-s.start, syscall.MADV_DONTNEED) == nil {
			n += int(s.end - s.start)
		}
	}
	return n
}

// madvise takes the range as numbers: it is memory Go did not allocate, and no Go pointer to it
// is made.
func madvise(addr, length uintptr, advice int) error {
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, length, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}
