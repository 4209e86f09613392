package accesslog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes a Follower's Stats to Prometheus, labelled with the
// file, so that the followers of several files register side by side.
type collector struct {
	f                                        *Follower
	lines, counted, malformed, late, unknown *prometheus.Desc
	ignored, reopens, truncations, lag       *prometheus.Desc
}

func newCollector(f *Follower) *collector {
	l := prometheus.Labels{"file": f.path}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("switchyard_accesslog_"+name, help, nil, l)
	}
	return &collector{
		f:           f,
		lines:       d("lines_total", "Complete lines read from nginx's access log, malformed ones included."),
		counted:     d("counted_lines_total", "Access log lines charged to at least one version."),
		malformed:   d("malformed_lines_total", "Access log lines skipped: not in the switchyard log_format, too long, ahead of the clock, or cut short."),
		late:        d("late_lines_total", "Access log lines dropped because their second had already been completed."),
		unknown:     d("unknown_upstream_lines_total", "Access log lines of a followed service with an attempt at an address that is no target of its versions."),
		ignored:     d("ignored_lines_total", "Access log lines that are no version's request (no upstream attempt, no live upstreams, or a service not followed)."),
		reopens:     d("reopens_total", "Files opened at the access log's path after the first (rotations, a file appearing)."),
		truncations: d("truncations_total", "Times the access log was truncated in place (copytruncate)."),
		lag:         d("lag_seconds", "How far the end of the last completed second is behind the clock."),
	}
}

// Collector returns the Prometheus collector of the Follower's Stats, for
// the daemon to register (one per followed file).
func (f *Follower) Collector() prometheus.Collector { return f.prom }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lines, c.counted, c.malformed, c.late, c.unknown, c.ignored, c.reopens, c.truncations, c.lag} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{
		{c.lines, st.Lines}, {c.counted, st.Counted}, {c.malformed, st.Malformed}, {c.late, st.Late},
		{c.unknown, st.Unknown}, {c.ignored, st.Ignored}, {c.reopens, st.Reopens}, {c.truncations, st.Truncations},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	if st.Through > 0 {
		lag := c.f.opt.Now().Sub(time.Unix(st.Through+1, 0)).Seconds()
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag)
	}
}
