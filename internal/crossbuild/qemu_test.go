package crossbuild

import (
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// runTimeout bounds one run of delve under qemu-user: a DoT handshake emulated on this CPU takes
// well under a second.
const runTimeout = 60 * time.Second

// TestQemu runs the router binaries of three CPUs on this machine under qemu-user: the armv7 of
// the ipq40xx boxes and both MIPS byte orders, soft-float as on routers without an FPU.
func TestQemu(t *testing.T) {
	arches := readArches(t)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	server := "@127.0.0.1:" + strconv.Itoa(ub.Port) + "#" + ub.TLSName

	for _, tt := range []struct {
		arch    string
		machine elf.Machine
		order   binary.ByteOrder
	}{
		{"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, binary.LittleEndian},
		{"mips_24kc", elf.EM_MIPS, binary.BigEndian},
		{"mipsel_24kc", elf.EM_MIPS, binary.LittleEndian},
	} {
		t.Run(tt.arch, func(t *testing.T) {
			t.Parallel()
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
				if got := string(out); !strings.HasPrefix(got, "delve ") || strings.TrimSpace(got) == "delve dev" {
					t.Fatalf("%q: no stamped version", got)
				}
			})
			t.Run("DoT lookup", func(t *testing.T) {
				out, err := run(runTimeout, tmp, nil, qemu, bin, server, "--ca", ub.CAFile, "a.delve.test", "A")
				if err != nil {
					t.Fatal(err)
				}
				if got := string(out); got != "192.0.2.1\n" {
					t.Fatalf("printed %q, want 192.0.2.1", got)
				}
			})
			t.Run("NXDOMAIN exits 1", func(t *testing.T) {
				out, err := run(runTimeout, tmp, nil, qemu, bin, server, "--ca", ub.CAFile, "missing.delve.test", "A")
				if err == nil || !strings.Contains(err.Error(), "exit status 1") {
					t.Fatalf("%q, %v: want exit status 1", out, err)
				}
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
				if strings.Join(methods, " ") != "flush lookup reload status" || sig["lookup"]["name"] != "string" {
					t.Fatalf("signature %s", out)
				}
			})
		})
	}
}
