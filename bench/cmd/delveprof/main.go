// Command delveprof is `delve serve --config FILE` with profiling, for the benchmark only: it
// runs the same daemon (internal/daemon) and writes a CPU profile of its whole life to
// DIR/cpu.pprof, at exit the allocations and the heap to DIR/allocs.pprof and DIR/heap.pprof,
// and to DIR/memory.txt where the Go runtime's memory was when it held the most (runtime/metrics
// read every 20 ms). delvebench -profile DIR uses it in place of the delve binary.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/daemon"
)

func main() {
	if len(os.Args) != 4 || os.Args[1] != "serve" || os.Args[2] != "--config" || os.Getenv("DELVEPROF_DIR") == "" {
		fmt.Fprintln(os.Stderr, "usage: DELVEPROF_DIR=DIR delveprof serve --config FILE")
		os.Exit(2)
	}
	dir := os.Getenv("DELVEPROF_DIR")
	// Sample allocations finely (the default is one per 512 KB): the heap is a few MB.
	runtime.MemProfileRate = 16 << 10
	if err := run(dir, os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "delveprof:", err)
		os.Exit(1)
	}
}

func run(dir, config string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(daemon.Options{Config: config, Threads: daemon.SetThreads}) // main.threads, as delve serve
	if err != nil {
		return err
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	stopMem := make(chan struct{})
	memDone := make(chan string)
	go func() { memDone <- peakMemory(stopMem, filepath.Join(dir, "heap-peak.pprof")) }()
	runErr := d.Run(ctx)
	close(stopMem)
	if err := os.WriteFile(filepath.Join(dir, "memory.txt"), []byte(<-memDone), 0o644); err != nil {
		return err
	}
	pprof.StopCPUProfile()
	if err := cpu.Close(); err != nil {
		return err
	}
	for _, name := range []string{"allocs", "heap"} {
		if name == "heap" {
			runtime.GC()
		}
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			return err
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return runErr
}

// peakMemory samples the runtime's memory classes until stop is closed and describes the sample
// in which the memory the runtime holds from the OS (total minus released) was largest; it also
// writes a heap profile to heapFile when the peak grows (at most every half second).
func peakMemory(stop <-chan struct{}, heapFile string) string {
	var lastHeap time.Time
	descs := metrics.All()
	var names []string
	for _, d := range descs {
		if strings.HasPrefix(d.Name, "/memory/classes/") || d.Name == "/sched/goroutines:goroutines" ||
			d.Name == "/gc/heap/goal:bytes" || d.Name == "/gc/cycles/total:gc-cycles" {
			names = append(names, d.Name)
		}
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	value := func(s []metrics.Sample, name string) uint64 {
		for _, x := range s {
			if x.Name == name && x.Value.Kind() == metrics.KindUint64 {
				return x.Value.Uint64()
			}
		}
		return 0
	}
	held := func(s []metrics.Sample) uint64 {
		return value(s, "/memory/classes/total:bytes") - value(s, "/memory/classes/heap/released:bytes")
	}
	var peak []metrics.Sample
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(samples)
		if peak == nil || held(samples) > held(peak) {
			peak = append(peak[:0], samples...)
			if time.Since(lastHeap) > 500*time.Millisecond {
				lastHeap = time.Now()
				if f, err := os.Create(heapFile); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
		select {
		case <-stop:
			var b strings.Builder
			fmt.Fprintf(&b, "Go runtime memory at its peak (total minus released: %d KiB)\n", held(peak)/1024)
			for _, x := range peak {
				if x.Value.Kind() == metrics.KindUint64 {
					v := x.Value.Uint64()
					if strings.HasSuffix(x.Name, ":bytes") {
						fmt.Fprintf(&b, "%8d KiB  %s\n", v/1024, x.Name)
					} else {
						fmt.Fprintf(&b, "%8d      %s\n", v, x.Name)
					}
				}
			}
			return b.String()
		case <-t.C:
		}
	}
}
