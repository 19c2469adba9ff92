package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// profileRuns runs delve's 64-client workloads (miss and hot, through the socket and, when there
// is one, the DNS listener) under bench/cmd/delveprof, the same daemon with CPU and allocation
// profiles, and leaves the profiles in dir/<workload>/ for `go tool pprof`.
func (b *bench) profileRuns(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	bin := filepath.Join(b.env.dir, "delveprof")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/delveprof")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building delveprof: %w: %s", err, out)
	}
	e := *b.env
	e.delve = bin
	n := maxInt(b.cfg.clients)
	for _, t := range b.targets() {
		if t.system != "delve" {
			continue
		}
		for _, mode := range []string{modeMiss, modeHot} {
			out := filepath.Join(dir, fmt.Sprintf("%s%s-%s-%d", t.via, t.variant, mode, n))
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			e.delveEnv = append(append([]string(nil), b.env.delveEnv...), "DELVEPROF_DIR="+out)
			saved := b.env
			b.env = &e
			r, err := b.loadRun(ctx, t, mode, n)
			b.env = saved
			if err != nil {
				return err
			}
			b.rows = append(b.rows, r)
			b.logf("profiled %s %s %d clients: %.0f lookups/s, %.0f ms cpu/10k; profiles in %s", t.label(), mode, n,
				r.res.qps(), cpuPer10k(r), out)
		}
	}
	return nil
}
