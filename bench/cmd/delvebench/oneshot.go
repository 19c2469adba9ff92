package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// oneShot is the wall time of whole processes answering one question over a fresh DoT
// connection: exec, TLS handshake, query, answer, exit.
type oneShot struct {
	runs          int
	delve, kdig   []time.Duration
	delveArgs     []string
	kdigArgs      []string
	name, address string
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runOneShot runs `delve NAME A` and `kdig +tls NAME A` alternately, runs times each, and checks
// that both print the right address every time.
func runOneShot(ctx context.Context, e *env, kdig string, runs int) (*oneShot, error) {
	name, want := testenv.BenchName(1), testenv.BenchAddr(1)
	o := &oneShot{runs: runs, name: name, address: want}
	o.delveArgs = []string{e.delve, "@" + e.upAddr + ":" + strconv.Itoa(e.upPort) + "#" + testenv.TLSName,
		"--ca", e.caFile, name, "A"}
	o.kdigArgs = []string{kdig, "+tls", "+tls-ca=" + e.caFile, "+tls-hostname=" + testenv.TLSName,
		"+short", "@" + e.upAddr, "-p", strconv.Itoa(e.upPort), name, "A"}
	for i := 0; i < runs; i++ {
		// Alternate which goes first, so neither always runs on a warmer machine.
		order := [][]string{o.delveArgs, o.kdigArgs}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, argv := range order {
			d, err := timeRun(ctx, argv, want)
			if err != nil {
				return nil, err
			}
			if argv[0] == e.delve {
				o.delve = append(o.delve, d)
			} else {
				o.kdig = append(o.kdig, d)
			}
		}
	}
	return o, nil
}

// timeRun runs argv once and returns its wall time; its output must be exactly want.
func timeRun(ctx context.Context, argv []string, want string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	if got := strings.TrimSpace(out.String()); got != want {
		return 0, fmt.Errorf("%s printed %q, want %q", strings.Join(argv, " "), got, want)
	}
	return d, nil
}

func mustPool(caFile string) *x509.CertPool {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		panic(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		panic("no certificate in " + caFile)
	}
	return p
}
