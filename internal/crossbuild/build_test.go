package crossbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// epoch is the SOURCE_DATE_EPOCH of every build here (2023-11-14), so that the binaries of the
// qemu tests and of the .ipk tests are the same links.
const epoch = "1700000000"

// buildTimeout bounds one cross-build; a cold build cache compiles the standard library anew
// for each GOARCH: about a minute each on two idle CPUs, eight when the machine is busy with
// fuzzers. make test gives the whole package 15 minutes.
const buildTimeout = 12 * time.Minute

var (
	// root is the repository: tests run in internal/crossbuild.
	root = func() string {
		p, err := filepath.Abs("../..")
		if err != nil {
			panic(err)
		}
		return p
	}()
	// tmp holds the binaries of this test run; TestMain removes it.
	tmp string
)

func TestMain(m *testing.M) {
	var err error
	tmp, err = os.MkdirTemp("", "delve-crossbuild-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// arch is a row of scripts/arches.
type arch struct {
	name string
	env  []string // GOARCH=..., GOARM=...
	qemu string   // qemu-user command, "" for none
}

func readArches(t *testing.T) map[string]arch {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "scripts/arches"))
	if err != nil {
		t.Fatal(err)
	}
	arches := map[string]arch{}
	for line := range strings.Lines(string(b)) {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		a := arch{name: f[0]}
		for _, w := range f[1:] {
			switch {
			case strings.Contains(w, "="):
				a.env = append(a.env, w)
			case a.qemu == "" && w != "-":
				a.qemu = w
			}
		}
		if _, dup := arches[a.name]; dup {
			t.Fatalf("scripts/arches lists %s twice", a.name)
		}
		arches[a.name] = a
	}
	return arches
}

// built holds one build per arch and test run, whichever test asks first.
var built sync.Map // arch name -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// buildFor builds delve for the OpenWrt arch with scripts/build-arch, as make build-all does,
// once per test run.
func buildFor(t *testing.T, archName string) string {
	t.Helper()
	p, err := build(archName)
	if err != nil {
		t.Fatalf("building %s: %v", archName, err)
	}
	return p
}

func build(archName string) (string, error) {
	v, _ := built.LoadOrStore(archName, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		r.path = filepath.Join(tmp, archName, "delve")
		_, r.err = run(buildTimeout, root, []string{"SOURCE_DATE_EPOCH=" + epoch}, "./scripts/build-arch", archName, r.path)
	})
	return r.path, r.err
}

// buildAll starts the builds of the arches at once: they are the slow part on a cold cache.
func buildAll(archNames ...string) {
	var wg sync.WaitGroup
	for _, a := range archNames {
		wg.Go(func() { build(a) })
	}
	wg.Wait()
}

// run runs a command in dir with extra environment and a deadline, and returns its stdout; the
// error carries stderr.
func run(timeout time.Duration, dir string, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no end after %v", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func TestArchesTable(t *testing.T) {
	arches := readArches(t)
	// The arches issue 5 asks for, with the Go settings of openwrt-facts.md §6.5. The flash-tight
	// 32-bit ARM and MIPS builds give up inlining for size; x86 and aarch64 keep it.
	want := map[string][]string{
		"arm_cortex-a7_neon-vfpv4": {"GOARCH=arm", "GOARM=7"},
		"arm_cortex-a9_vfpv3-d16":  {"GOARCH=arm", "GOARM=7"},
		"mips_24kc":                {"GOARCH=mips", "GOMIPS=softfloat"},
		"mipsel_24kc":              {"GOARCH=mipsle", "GOMIPS=softfloat"},
		"aarch64_cortex-a53":       {"GOARCH=arm64", "GOARM64=v8.0", "DELVE_INLINE=1"},
		"aarch64_generic":          {"GOARCH=arm64", "GOARM64=v8.0", "DELVE_INLINE=1"},
		"x86_64":                   {"GOARCH=amd64", "GOAMD64=v1", "DELVE_INLINE=1"},
		"i386_pentium4":            {"GOARCH=386", "GO386=sse2", "DELVE_INLINE=1"},
	}
	for name, env := range want {
		a, ok := arches[name]
		if !ok {
			t.Errorf("scripts/arches has no %s", name)
			continue
		}
		if strings.Join(a.env, " ") != strings.Join(env, " ") {
			t.Errorf("%s: %v, want %v", name, a.env, env)
		}
	}
	for _, a := range arches {
		goarch := ""
		for _, e := range a.env {
			if v, ok := strings.CutPrefix(e, "GOARCH="); ok {
				goarch = v
			}
		}
		if goarch == "" {
			t.Errorf("%s: no GOARCH", a.name)
		}
		if (goarch == "mips" || goarch == "mipsle") && !strings.Contains(strings.Join(a.env, " "), "GOMIPS=") {
			t.Errorf("%s: no GOMIPS (most MIPS routers have no FPU: softfloat)", a.name)
		}
		if goarch == "arm" && !strings.Contains(strings.Join(a.env, " "), "GOARM=") {
			t.Errorf("%s: no GOARM", a.name)
		}
	}
}

// TestMakeHelpListsEveryTarget: `make help` names every target of the Makefile a person runs
// (all but help itself and the helpers help-router and pkg-tools).
func TestMakeHelpListsEveryTarget(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	help, err := run(buildTimeout, root, nil, "make", "-s", "--no-print-directory", "help")
	if err != nil {
		t.Fatal(err)
	}
	internal := map[string]bool{"help": true, "help-router": true, "pkg-tools": true}
	n := 0
	for line := range strings.Lines(string(b)) {
		target, _, ok := strings.Cut(line, ":")
		if !ok || target == "" || strings.ContainsAny(target, " \t$=#.") || internal[target] || strings.HasPrefix(line[len(target):], ":=") {
			continue
		}
		n++
		if !bytes.Contains(help, []byte("make "+target+" ")) {
			t.Errorf("make help does not list %s:\n%s", target, help)
		}
	}
	if n < 10 {
		t.Fatalf("found %d targets in the Makefile; the parsing is off", n)
	}
}
