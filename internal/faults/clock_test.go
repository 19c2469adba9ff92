package faults

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
)

// TestTolerateUnsetClock is tolerate_unset_clock end to end: real binaries stamped with a build
// time, and a DoT server whose certificate is valid only from tomorrow, as every certificate
// looks to a router that booted without a real-time clock.
//
//   - built two days from now, so the running clock is "before the build" (it cannot be right),
//     with the option on: lookups work, and each accepted handshake is a WARN in the log;
//   - the same binary with the option off: lookups fail and say the certificate is not valid yet;
//   - built two days ago (the clock may well be right) with the option on: refused as well.
func TestTolerateUnsetClock(t *testing.T) {
	t.Parallel()
	now := time.Now()
	future := delveBinary(t, unixTime(now.Add(48*time.Hour)))
	past := delveBinary(t, unixTime(now.Add(-48*time.Hour)))
	srv := newDotServer(t, dotOptions{notBefore: now.Add(24 * time.Hour), notAfter: now.Add(72 * time.Hour)}, healthy)
	const warn = `level=WARN msg="accepted a certificate that is not valid yet, because the system clock is earlier than this build of delve (tolerate_unset_clock is on)`
	// The text goes on with the certificate's and the clock's times and what to do.
	const refused = `certificate not valid yet: certificate "dot.delve.test" is valid only from `
	cases := []struct {
		name     string
		bin      string
		tolerate bool
		ok       bool
	}{
		{"clock before the build, option on", future, true, true},
		{"clock before the build, option off", future, false, false},
		{"clock after the build, option on", past, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newConf(t)
			c.ups = []upstreamConf{srv.upstream("early")}
			if tc.tolerate {
				c.main = []string{"option tolerate_unset_clock '1'"}
			}
			p := serve(t, c, serveOptions{bin: tc.bin})
			cl := p.client(t)
			l, _, err := lookup(cl, "clock.example", "A")
			if !tc.ok {
				wantCode(t, err, api.CodeNoUpstream, refused)
				if strings.Contains(p.log.String(), "accepted a certificate") {
					t.Fatalf("the log says a certificate was accepted:\n%s", p.log.String())
				}
			} else {
				if err != nil || len(l.Addresses) != 1 || l.Addresses[0] != faultAddr {
					t.Fatalf("lookup: %+v %v", l, err)
				}
				p.waitCount(t, warn, 1)
				// Each use is logged: a new connection, a new warning.
				p.signal(t, syscall.SIGUSR1)
				p.waitCount(t, "reconnecting every upstream", 1)
				if _, _, err := lookup(cl, "clock2.example", "A"); err != nil {
					t.Fatal(err)
				}
				p.waitCount(t, warn, 2)
			}

			// The command line reads the same option from the same file.
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(tc.bin, "--config", c.path(), "--timeout", "3s", "clock3.example", "A")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.ok {
				if code != 0 || strings.TrimSpace(stdout.String()) != faultAddr {
					t.Fatalf("delve clock3.example: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
				}
				if !strings.Contains(stderr.String(), "not valid yet") {
					t.Errorf("the command line accepted a not-yet-valid certificate without a word on stderr: %q", stderr.String())
				}
			} else if code != 3 || !strings.Contains(stderr.String(), refused) {
				t.Fatalf("delve clock3.example: exit %d, stderr %q; want 3 and %q", code, stderr.String(), refused)
			}
			t.Logf("command line: exit %d, stderr %q", code, strings.TrimSpace(stderr.String()))
		})
	}
}

// TestUnsetClockRefusesExpiredBeforeBuild (issue 20, finding 6): the tolerance checks a chain at
// the build time, a lower bound of the real time, not at its NotBefore: with the clock before the
// build, a certificate that is valid at the clock's time but expired before the build is
// refused, and says so, through the daemon and on the command line alike.
func TestUnsetClockRefusesExpiredBeforeBuild(t *testing.T) {
	t.Parallel()
	now := time.Now()
	built := now.Add(48 * time.Hour).Truncate(time.Second)
	bin := delveBinary(t, unixTime(built))
	srv := newDotServer(t, dotOptions{notBefore: now.Add(-10 * 24 * time.Hour), notAfter: now.Add(24 * time.Hour)}, healthy)
	want := `certificate expired: certificate "dot.delve.test" expired at `
	c := newConf(t)
	c.ups = []upstreamConf{srv.upstream("expiring")}
	c.main = []string{"option tolerate_unset_clock '1'"}
	p := serve(t, c, serveOptions{bin: bin})
	_, _, err := lookup(p.client(t), "clock.example", "A")
	wantCode(t, err, api.CodeNoUpstream, want)
	if !strings.Contains(err.Error(), "before this build of delve ("+built.UTC().Format("2006-01-02 15:04 UTC")+"), so it has expired whatever the unset clock says") {
		t.Fatalf("the error does not name the build time: %v", err)
	}
	if strings.Contains(p.log.String(), "accepted a certificate") {
		t.Fatalf("the log says a certificate was accepted:\n%s", p.log.String())
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", c.path(), "--timeout", "3s", "clock2.example", "A")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("delve clock2.example: %v, stdout %q, stderr %q; want exit 3 and %q", err, stdout.String(), stderr.String(), want)
	}
}
