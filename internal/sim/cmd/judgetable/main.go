// Command judgetable prints the simulated comparison of judges that
// docs/judge.md shows between its sim markers: Flagger's threshold checks,
// Switchyard's threshold checks and the sequential judge on the same
// synthetic traffic, and the sequential judge's error control.
//
//	go run ./internal/sim/cmd/judgetable [-runs N] [-seed S] [-aa N] [-margin N] [-alone N]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/internal/sim"
)

func main() {
	o := sim.DocDefaults()
	flag.IntVar(&o.Runs, "runs", o.Runs, "runs per row of the table")
	flag.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the first run")
	flag.IntVar(&o.AARuns, "aa", o.AARuns, "A/A runs (an hour each)")
	flag.IntVar(&o.MarginRuns, "margin", o.MarginRuns, "runs at the error margin")
	flag.IntVar(&o.AloneRuns, "alone", o.AloneRuns, "runs at the error margin with only the promotion bound")
	flag.Parse()
	m, err := sim.Measure(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "judgetable:", err)
		os.Exit(1)
	}
	sim.WriteDoc(os.Stdout, m)
}
