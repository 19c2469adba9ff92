// Command delve looks names up over DNS-over-TLS, serves lookups to scripts and daemons on an
// OpenWrt router (delve serve), and is the rpcd plugin behind the ubus object delve (delve rpcd).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/delvedns/delve/internal/cli"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/version"
	"github.com/delvedns/delve/ubus"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			// The package version (opkg list-installed, apk info show the same), then the commit.
			fmt.Println("delve", version.Version)
			fmt.Println("commit", version.Source())
			return cli.ExitOK
		case "help":
			fmt.Print(cli.Usage)
			return cli.ExitOK
		case "serve":
			return serve(ctx, args[1:])
		case "rpcd":
			return ubus.Run(ctx, args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
		}
		if cli.IsControl(args[0]) {
			return cli.Control(ctx, args[0], args[1:], os.Stdout, os.Stderr)
		}
	}
	return cli.Run(ctx, args, os.Stdout, os.Stderr)
}

// serveUsage is what delve serve --help prints.
const serveUsage = `usage: delve serve [-c FILE | --config FILE]

Runs the daemon (procd starts it from /etc/init.d/delve): lookups over JSON-RPC 2.0 on a unix
socket, a WebSocket and plain DNS, as the UCI file configures them.

  -c, --config FILE   UCI file (default /etc/config/delve)
  -h, --help          this text

Exit status: 0 after SIGTERM or SIGINT, or when the file says enabled '0'; 1 when it cannot
serve (the socket is taken, another delve answers on it, a listener cannot bind); 2 for a bad
file or command line.
`

// serve runs the daemon: exit 0 after a clean shutdown or when disabled, 2 for a bad
// configuration or command line, 1 when it cannot serve (the socket is taken, ...).
func serve(ctx context.Context, args []string) int {
	opts := daemon.Options{Threads: daemon.SetThreads}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-h" || a == "--help" || a == "help":
			fmt.Print(serveUsage)
			return cli.ExitOK
		case a == "--config" || a == "-c":
			if i+1 == len(args) {
				fmt.Fprintf(os.Stderr, "delve serve: %s needs a file name (usage: delve serve [-c FILE | --config FILE])\n", a)
				return cli.ExitUsage
			}
			i++
			opts.Config = args[i]
		case len(a) > 9 && a[:9] == "--config=":
			opts.Config = a[9:]
		default:
			fmt.Fprintf(os.Stderr, "delve serve: unexpected argument %q (usage: delve serve [-c FILE | --config FILE]; delve serve --help)\n", a)
			return cli.ExitUsage
		}
	}
	d, err := daemon.New(opts)
	if errors.Is(err, daemon.ErrDisabled) {
		fmt.Fprintln(os.Stdout, "delve:", err, "- not starting") // information, not an error (procd: daemon.info)
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "delve serve:", err)
		return cli.ExitUsage
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "delve serve:", err)
		return 1
	}
	return cli.ExitOK
}
