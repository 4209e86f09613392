package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Legs in the order they run and are reported.
const (
	LegDirect     = "direct"
	LegNginx      = "nginx"
	LegHAProxy    = "haproxy"
	LegSwitchyard = "switchyard"
)

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Cell is the repetitions of one leg at one connection count.
type Cell struct {
	Runs []Result
	// Err is why the leg produced no result, if it did not.
	Err string
}

// MedianRPS returns the median requests per second.
func (c Cell) MedianRPS() float64 {
	xs := make([]float64, len(c.Runs))
	for i, r := range c.Runs {
		xs[i] = r.RPS
	}
	return Median(xs)
}

// MedianP99 returns the median p99 latency.
func (c Cell) MedianP99() time.Duration {
	xs := make([]float64, len(c.Runs))
	for i, r := range c.Runs {
		xs[i] = float64(r.P99)
	}
	return time.Duration(Median(xs))
}

// TotalErrors adds the errors of every run.
func (c Cell) TotalErrors() int64 {
	var n int64
	for _, r := range c.Runs {
		n += r.Errors
	}
	return n
}

// RSS is a proxy's resident memory, idle and holding open connections.
type RSS struct {
	IdleKB, LoadedKB int64
	Conns            int // connections actually held open
	Err              string
}

// Report is a whole benchmark run.
type Report struct {
	// Setup describes the machine, the tools and the parameters.
	Setup []string
	Legs  []string
	Conns []int
	// Cells is keyed by leg, then connection count.
	Cells map[string]map[int]*Cell
	// RSS is keyed by leg.
	RSS     map[string]RSS
	RSSConn int
}

// NewReport prepares an empty report.
func NewReport(legs []string, conns []int) *Report {
	r := &Report{Legs: legs, Conns: conns, Cells: map[string]map[int]*Cell{}, RSS: map[string]RSS{}}
	for _, l := range legs {
		r.Cells[l] = map[int]*Cell{}
		for _, c := range conns {
			r.Cells[l][c] = &Cell{}
		}
	}
	return r
}

// ratio formats a/b, or "n/a".
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// ms formats a latency in milliseconds.
func ms(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// WriteMarkdown writes the report as markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## Switchyard side-by-side benchmark\n\n")
	for _, s := range r.Setup {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	b.WriteString("\n### Throughput and tail latency (medians)\n\n")
	b.WriteString("| connections | leg | req/s | p99 | errors | runs |\n|---:|---|---:|---:|---:|---:|\n")
	for _, c := range r.Conns {
		for _, l := range r.Legs {
			cell := r.Cells[l][c]
			if len(cell.Runs) == 0 {
				fmt.Fprintf(&b, "| %d | %s | n/a | n/a | | 0 (%s) |\n", c, l, oneLine(cell.Err))
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %s | %d | %d |\n", c, l, cell.MedianRPS(), ms(cell.MedianP99()), cell.TotalErrors(), len(cell.Runs))
		}
	}
	b.WriteString("\n### Ratios (switchyard / other; req/s: higher is better, p99: lower is better)\n\n")
	b.WriteString("| connections | req/s vs nginx | p99 vs nginx | req/s vs haproxy | p99 vs haproxy | req/s vs direct |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Conns {
		sy := r.cell(LegSwitchyard, c)
		ng := r.cell(LegNginx, c)
		hp := r.cell(LegHAProxy, c)
		di := r.cell(LegDirect, c)
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", c,
			ratio(sy.MedianRPS(), ng.MedianRPS()), ratio(float64(sy.MedianP99()), float64(ng.MedianP99())),
			ratio(sy.MedianRPS(), hp.MedianRPS()), ratio(float64(sy.MedianP99()), float64(hp.MedianP99())),
			ratio(sy.MedianRPS(), di.MedianRPS()))
	}
	if len(r.RSS) > 0 {
		fmt.Fprintf(&b, "\n### Memory (RSS of the proxy, all its processes)\n\n")
		fmt.Fprintf(&b, "| proxy | idle | with %d keep-alive connections | connections held |\n|---|---:|---:|---:|\n", r.RSSConn)
		for _, l := range r.Legs {
			m, ok := r.RSS[l]
			if !ok {
				continue
			}
			if m.Err != "" {
				fmt.Fprintf(&b, "| %s | n/a | n/a | (%s) |\n", l, oneLine(m.Err))
				continue
			}
			fmt.Fprintf(&b, "| %s | %.1f MiB | %.1f MiB | %d |\n", l, float64(m.IdleKB)/1024, float64(m.LoadedKB)/1024, m.Conns)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell returns the cell of leg at conns, or an empty one.
func (r *Report) cell(leg string, conns int) Cell {
	if c, ok := r.Cells[leg][conns]; ok {
		return *c
	}
	return Cell{}
}

// oneLine keeps the first line of an error, without table-breaking pipes.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/")
}
