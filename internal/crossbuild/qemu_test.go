package crossbuild

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
)

// runTimeout bounds one run of delve under qemu-user: an emulated DoT handshake takes about a
// second here, several on a loaded machine.
const runTimeout = 60 * time.Second

// TestQemu runs the router binaries of three CPUs on this machine under qemu-user: the armv7 of
// the ipq40xx boxes and both MIPS byte orders, soft-float as on routers without an FPU. The
// arches are built together but run one after the other: three emulated handshakes at once on
// a busy machine can outlast delve's 5 s dial timeout.
func TestQemu(t *testing.T) {
	arches := readArches(t)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	server := "@127.0.0.1:" + strconv.Itoa(ub.Port) + "#" + ub.TLSName
	// Generous: an emulated handshake on a loaded machine can take seconds; this is about
	// answers, not speed.
	timeout := "--timeout=" + (runTimeout / 2).String()

	cpus := []struct {
		arch    string
		machine elf.Machine
		order   binary.ByteOrder
	}{
		{"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, binary.LittleEndian},
		{"mips_24kc", elf.EM_MIPS, binary.BigEndian},
		{"mipsel_24kc", elf.EM_MIPS, binary.LittleEndian},
	}
	var names []string
	for _, c := range cpus {
		names = append(names, c.arch)
	}
	buildAll(names...)
	for _, tt := range cpus {
		t.Run(tt.arch, func(t *testing.T) {
			a, ok := arches[tt.arch]
			if !ok || a.qemu == "" {
				t.Fatalf("scripts/arches has no qemu-user command for %s", tt.arch)
			}
			qemu := testenv.RequireTool(t, a.qemu, "qemu-user")
			bin := buildFor(t, tt.arch)

			t.Run("static ELF for the CPU", func(t *testing.T) {
				f, err := elf.Open(bin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.Machine != tt.machine || f.ByteOrder != tt.order || f.Class != elf.ELFCLASS32 {
					t.Fatalf("%v %v %v, want %v %v 32-bit", f.Machine, f.ByteOrder, f.Class, tt.machine, tt.order)
				}
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
						t.Fatalf("dynamically linked (%v): the router's musl is not what this was built against", p.Type)
					}
				}
				if f.Section(".symtab") != nil {
					t.Fatal("not stripped")
				}
			})
			t.Run("version", func(t *testing.T) {
				out, err := run(runTimeout, tmp, nil, qemu, bin, "version")
				if err != nil {
					t.Fatal(err)
				}
				// scripts/build-arch stamps the package version, as make ipk and make apk do.
				pv, err := run(runTimeout, root, nil, "./scripts/pkgversion")
				if err != nil {
					t.Fatal(err)
				}
				if first, _, _ := strings.Cut(string(out), "\n"); first != "delve "+strings.TrimSpace(string(pv)) {
					t.Fatalf("%q: not the package version %s", out, pv)
				}
			})
			t.Run("DoT lookup", func(t *testing.T) {
				out, err := lookupCLI(t, qemu, bin, server, "--ca", ub.CAFile, timeout, "a.delve.test", "A")
				if err != nil {
					t.Fatal(err)
				}
				if got := string(out); got != "192.0.2.1\n" {
					t.Fatalf("printed %q, want 192.0.2.1", got)
				}
			})
			t.Run("NXDOMAIN exits 1", func(t *testing.T) {
				out, err := lookupCLI(t, qemu, bin, server, "--ca", ub.CAFile, timeout, "missing.delve.test", "A")
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("%q, %v: want exit status 1", out, err)
				}
			})
			t.Run("daemon", func(t *testing.T) {
				testDaemon(t, qemu, bin, ub)
			})
			t.Run("rpcd list", func(t *testing.T) {
				// What rpcd runs at start, through /usr/libexec/rpcd/delve: it must answer without
				// the daemon.
				out, err := run(runTimeout, tmp, nil, qemu, bin, "rpcd", "list")
				if err != nil {
					t.Fatal(err)
				}
				var sig map[string]map[string]string
				if err := json.Unmarshal(out, &sig); err != nil {
					t.Fatalf("%q: %v", out, err)
				}
				var methods []string
				for m := range sig {
					methods = append(methods, m)
				}
				slices.Sort(methods)
				var want []string
				for _, m := range api.Methods() {
					want = append(want, m.Name)
				}
				slices.Sort(want)
				if !slices.Equal(methods, want) || sig["lookup"]["name"] != "string" {
					t.Fatalf("signature %s", out)
				}
			})
		})
	}
}

// testDaemon runs `delve serve` under qemu with the loopback unbound as its upstream and asks it
// a lookup through the rpcd plugin (`delve rpcd call`, under qemu too) and through the WebSocket.
func testDaemon(t *testing.T, qemu, bin string, ub *testenv.Unbound) {
	// A short directory of its own: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dvq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, conf := filepath.Join(dir, "delve.sock"), filepath.Join(dir, "delve")
	wsPort, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := "127.0.0.1:" + strconv.Itoa(wsPort)
	config := "config delve 'main'\n\tlist type 'A'\n\toption timeout '30000'\n" +
		"\toption socket '" + sock + "'\n\toption websocket '" + wsAddr + "'\n\toption ca_file '" + ub.CAFile + "'\n\n" +
		"config upstream 'unbound'\n\toption address '127.0.0.1'\n\toption port '" + strconv.Itoa(ub.Port) + "'\n\toption tls_name '" + ub.TLSName + "'\n"
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	var log testenv.SyncBuffer
	cmd := exec.Command(qemu, bin, "serve", "--config", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(runTimeout); ; {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("delve serve exited (%v):\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("delve serve not answering on its socket after %v:\n%s", runTimeout, log.String())
		}
	}

	lookup := `{"name":"a.delve.test","type":"A","ubus_rpc_session":"0123456789abcdef0123456789abcdef"}`
	var out []byte
	for try := 1; ; try++ {
		out, err = runStdin(runTimeout, []string{"DELVE_SOCKET=" + sock, "DELVE_CONFIG=" + conf}, lookup, qemu, bin, "rpcd", "call", "lookup")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(out, &r) == nil && r.Code == "timeout" && try == 1 {
			t.Logf("once more after a timeout (emulation on a busy machine): %s\ndelve serve says:\n%s", out, log.String())
			continue
		}
		break
	}
	checkLookup(t, "rpcd call lookup", out)

	// status.version (ubus call delve status) is the version `delve version` prints first.
	out, err = runStdin(runTimeout, []string{"DELVE_SOCKET=" + sock, "DELVE_CONFIG=" + conf}, `{"ubus_rpc_session":"0123456789abcdef0123456789abcdef"}`, qemu, bin, "rpcd", "call", "status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status %s: %v", out, err)
	}
	if v, err := run(runTimeout, tmp, nil, qemu, bin, "version"); err != nil {
		t.Fatal(err)
	} else if first, _, _ := strings.Cut(string(v), "\n"); first != "delve "+st.Version {
		t.Errorf("status.version %q, delve version %q", st.Version, v)
	}

	ws, _, err := (&websocket.Dialer{HandshakeTimeout: runTimeout}).Dial("ws://"+wsAddr+"/", nil)
	if err != nil {
		t.Fatalf("WebSocket: %v\n%s", err, log.String())
	}
	defer ws.Close()
	ws.SetWriteDeadline(time.Now().Add(runTimeout))
	ws.SetReadDeadline(time.Now().Add(runTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a.delve.test","type":"A"}}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(msg, &resp); err != nil {
		t.Fatalf("%s: %v", msg, err)
	}
	checkLookup(t, "WebSocket lookup", resp.Result)
	ws.Close()

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("delve serve after SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(runTimeout):
		t.Fatalf("delve serve did not stop on SIGTERM within %v:\n%s", runTimeout, log.String())
	}
}

func checkLookup(t *testing.T, what string, out []byte) {
	t.Helper()
	var r struct {
		Rcode     string   `json:"rcode"`
		Addresses []string `json:"addresses"`
		Error     string   `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%s: %q: %v", what, out, err)
	}
	if r.Rcode != "NOERROR" || !slices.Equal(r.Addresses, []string{"192.0.2.1"}) {
		t.Fatalf("%s: %s", what, out)
	}
}

// lookupCLI runs a lookup with the delve CLI under qemu. delve's upstream gives a TCP and TLS
// handshake 5 s, which an emulated handshake on a busy machine (several test binaries and
// fuzzers at once) can now and then outlast: exit status 3 gets one more try. A wrong answer
// or a second failure still fails.
func lookupCLI(t *testing.T, qemu string, args ...string) ([]byte, error) {
	t.Helper()
	out, err := run(runTimeout, tmp, nil, qemu, args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Logf("once more after exit status 3 (emulation on a busy machine): %v", err)
		out, err = run(runTimeout, tmp, nil, qemu, args...)
	}
	return out, err
}

// runStdin is run with stdin.
func runStdin(timeout time.Duration, env []string, stdin string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
