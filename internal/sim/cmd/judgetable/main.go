// Command judgetable prints the simulated comparison of judges that
// docs/judge.md shows (between its sim markers): Flagger's threshold checks,
// Switchyard's threshold checks and the sequential judge on the same
// synthetic traffic.
//
//	go run ./internal/sim/cmd/judgetable [-runs N] [-seed S] [-aa N] [-margin N]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/switchyard/switchyard/internal/sim"
)

func main() {
	runs := flag.Int("runs", sim.DocRuns, "runs per row")
	seed := flag.Uint64("seed", sim.DocSeed, "seed of the first run")
	aa := flag.Int("aa", sim.DocAARuns, "A/A runs (an hour each)")
	margin := flag.Int("margin", sim.DocMarginRuns, "runs at the error margin")
	flag.Parse()
	if err := sim.Doc(os.Stdout, sim.DocOptions{Runs: *runs, Seed: *seed, AARuns: *aa, MarginRuns: *margin, Watch: time.Hour}); err != nil {
		fmt.Fprintln(os.Stderr, "judgetable:", err)
		os.Exit(1)
	}
}
