// Command switchyard makes every deployment of an HTTP service a
// zero-downtime, automatically verified one. See `switchyard --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard/switchyard/internal/cli"
)

func main() {
	// SIGINT and SIGTERM cancel the context, so every command unwinds and
	// cleans up (the demo removes its state directory) instead of dying in
	// place. After the first signal the default handling is back: a second
	// Ctrl-C kills a command that does not stop.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
