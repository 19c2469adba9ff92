// Command delve looks names up over DNS-over-TLS, serves lookups to scripts and daemons on an
// OpenWrt router (delve serve), and is the rpcd plugin behind the ubus object delve (delve rpcd).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/delvedns/delve/internal/cli"
	"github.com/delvedns/delve/internal/version"
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
			fmt.Println("delve", version.Version)
			return 0
		}
	}
	return cli.Run(ctx, args, os.Stdout, os.Stderr)
}
