// Command lucipot writes luci-app-delve's translation template, po/templates/delve.pot, from
// the strings its views pass to _() and the menu titles, as LuCI's build/i18n-scan.pl does for
// the applications in its tree: one entry per string, sorted, each with the places it is used
// (relative to the LuCI tree, applications/luci-app-delve/...).
//
//	go run ./scripts/lucipot            # rewrites luci-app-delve/po/templates/delve.pot
//	go run ./scripts/lucipot -check     # exits 1 when the file is not current
//
// The work is internal/luciapp's, whose tests check that the file is current.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/delvedns/delve/internal/luciapp"
)

// App is the application's directory in this repository.
const App = "luci-app-delve"

func main() {
	check := flag.Bool("check", false, "only check that the .pot is current")
	dir := flag.String("app", App, "the application's directory")
	flag.Parse()
	pot, err := luciapp.Generate(*dir)
	if err != nil {
		fail(err)
	}
	path := filepath.Join(*dir, luciapp.PotPath)
	if *check {
		have, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		if !bytes.Equal(have, pot) {
			fail(fmt.Errorf("%s is not current: run go run ./scripts/lucipot", path))
		}
		return
	}
	if err := os.WriteFile(path, pot, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lucipot:", err)
	os.Exit(1)
}
