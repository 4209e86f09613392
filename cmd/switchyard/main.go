// Command switchyard makes every deployment of an HTTP service a
// zero-downtime, automatically verified one. See `switchyard --help`.
package main

import (
	"context"
	"os"

	"github.com/switchyard/switchyard/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
