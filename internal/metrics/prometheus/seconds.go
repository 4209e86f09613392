package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/spec"
)

// SecondSource is the sequential judge's inputs on a cluster
// (spec.analysis.sequential.prometheus): each version's raw cumulative
// counters, read with one range query per input and version at one point
// per scrape interval, and differenced here, second by second. A rate()
// or increase() would smear a second's requests over its window and
// extrapolate; differences count every request once, in the second
// Prometheus first saw it.
type SecondSource struct {
	q       *Querier
	cfg     spec.SequentialPrometheus
	stable  string
	buckets *metrics.LatencyBuckets
	// now is the clock (tests set it).
	now func() time.Time
}

var _ metrics.SecondSource = (*SecondSource)(nil)

// SecondSource returns the judge's source of a service whose stable
// version is stable, reading the (defaulted, validated) block cfg.
func (q *Querier) SecondSource(cfg spec.SequentialPrometheus, stable string) *SecondSource {
	return &SecondSource{q: q, cfg: cfg, stable: stable, buckets: metrics.NewLatencyBuckets(), now: time.Now}
}

// ServiceSeconds returns the judge's source of svc, from its
// spec.analysis.sequential.prometheus block. Validation requires the block
// on a cluster; without one, every call fails naming it.
func (q *Querier) ServiceSeconds(svc *spec.Service) metrics.SecondSource {
	if an := svc.Spec.Analysis; an != nil && an.Sequential != nil && an.Sequential.Prometheus != nil {
		return q.SecondSource(*an.Sequential.Prometheus, svc.Spec.Stable)
	}
	return noSeconds{}
}

// noSeconds is the source of a service without a Prometheus block.
type noSeconds struct{}

func (noSeconds) Seconds(context.Context, string, []string, int64) (metrics.Seconds, error) {
	return metrics.Seconds{}, errors.New("spec.analysis.sequential.prometheus is not set: the judge has no counters to read")
}

// The range a query reads, in points (Prometheus refuses more than 11,000
// per series).
const (
	// maxPoints bounds how far back a query reaches ("as far back as it
	// can" is the last maxPoints scrape intervals).
	maxPoints = 10000
	// padPoints are read before the seconds asked for, so that a series
	// missing a point or two there (a failed scrape marks it stale) is
	// still differenced from its earlier value rather than taken for a new
	// counter and counted whole.
	padPoints = 30
	// lagPoints keep the last points out: a scrape in flight may not be in
	// them yet, and a point read now must not change later.
	lagPoints = 2
)

// Seconds implements metrics.SecondSource. Through is the last point all
// the versions with new points have (seconds after it are not complete);
// a version without series has no traffic.
func (s *SecondSource) Seconds(ctx context.Context, service string, versions []string, after int64) (metrics.Seconds, error) {
	step := max(s.cfg.ScrapeInterval.Duration.Truncate(time.Second), time.Second)
	stepS := int64(step / time.Second)
	end := s.now().Unix() - lagPoints*stepS
	if end <= after {
		return metrics.Seconds{Through: after}, nil
	}
	from := max(after, end-maxPoints*stepS)
	// Points fall on start + k*step: start at after (less the padding) so
	// that one lands on it.
	start := from - padPoints*stepS
	end = start + (end-start)/stepS*stepS
	a, err := s.q.api(s.cfg.Address)
	if err != nil {
		return metrics.Seconds{}, err
	}
	r := v1.Range{Start: time.Unix(start, 0), End: time.Unix(end, 0), Step: step}
	out := metrics.Seconds{Through: end, By: map[string][]metrics.Second{}}
	for _, ver := range versions {
		vars := spec.QueryVars{Service: service, Version: ver, Stable: s.stable, Interval: spec.PromDuration(step)}
		var in [3][]series
		for i, tmpl := range []string{s.cfg.Requests, s.cfg.Errors, s.cfg.DurationBuckets} {
			in[i], err = s.rangeQuery(ctx, a, tmpl, vars, r)
			if err != nil {
				return metrics.Seconds{}, fmt.Errorf("version %q: %w", ver, err)
			}
		}
		secs, last := s.version(in[0], in[1], in[2], after)
		if last > after {
			out.Through = min(out.Through, last)
		}
		out.By[ver] = secs
	}
	for ver, secs := range out.By {
		n := sort.Search(len(secs), func(i int) bool { return secs[i].Unix > out.Through })
		out.By[ver] = secs[:n]
	}
	return out, nil
}

func (s *SecondSource) rangeQuery(ctx context.Context, a v1.API, tmpl string, vars spec.QueryVars, r v1.Range) ([]series, error) {
	query, err := spec.ExpandQuery(tmpl, vars)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %q %w", s.cfg.Address, tmpl, err)
	}
	res, _, _, err := a.QueryRange(ctx, query, r)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %q: %w", s.cfg.Address, query, err)
	}
	m, ok := res.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus %s: query %q returned a %s, want series of counters", s.cfg.Address, query, res.Type())
	}
	out := make([]series, len(m))
	for i, ss := range m {
		out[i] = series{le: string(ss.Metric[model.BucketLabel]), points: make([]point, len(ss.Values))}
		for j, p := range ss.Values {
			out[i].points[j] = point{unix: p.Timestamp.Unix(), v: float64(p.Value)}
		}
	}
	return out, nil
}

// series is one counter's points, oldest first; le is its bucket bound
// (histogram buckets only).
type series struct {
	le     string
	points []point
}

type point struct {
	unix int64
	v    float64
}

// increments adds a counter's increments after the Unix second after to
// into, by the second of the point that shows them. A decrease is a reset
// (the process restarted): the new value is the increment. A missing point
// only moves the increment to the next one. A series whose first point is
// after after is a new counter (a new pod, the first request with a new
// response code): its first value is counted from zero.
func increments(pts []point, after int64, into map[int64]float64) {
	var prev float64
	have := false
	for _, p := range pts {
		if math.IsNaN(p.v) {
			continue
		}
		if p.unix <= after {
			prev, have = p.v, true
			continue
		}
		inc := p.v
		if have && p.v >= prev {
			inc = p.v - prev
		}
		prev, have = p.v, true
		if inc > 0 {
			into[p.unix] += inc
		}
	}
}

// version turns one version's counters into its seconds, oldest first,
// and returns the last second its series have a point for (0 without
// series).
func (s *SecondSource) version(requests, errs, buckets []series, after int64) ([]metrics.Second, int64) {
	var last int64
	sum := func(ss []series) map[int64]float64 {
		m := map[int64]float64{}
		for _, x := range ss {
			increments(x.points, after, m)
			if n := len(x.points); n > 0 {
				last = max(last, x.points[n-1].unix)
			}
		}
		return m
	}
	req, bad := sum(requests), sum(errs)
	byLE := map[float64][]series{}
	for _, b := range buckets {
		le, err := strconv.ParseFloat(b.le, 64)
		if err != nil {
			continue // not a bucket (no or a malformed le label)
		}
		byLE[le] = append(byLE[le], b)
	}
	bounds := make([]float64, 0, len(byLE))
	perLE := make([]map[int64]float64, 0, len(byLE))
	for le := range byLE {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	for _, le := range bounds {
		perLE = append(perLE, sum(byLE[le]))
	}
	unix := map[int64]bool{}
	for _, m := range append([]map[int64]float64{req, bad}, perLE...) {
		for t := range m {
			unix[t] = true
		}
	}
	secs := make([]metrics.Second, 0, len(unix))
	for t := range unix {
		sec := metrics.Second{Unix: t, Sample: metrics.Sample{
			Requests: int64(math.Round(req[t])),
			Errors:   int64(math.Round(bad[t])),
		}}
		sec.Latency = s.sketch(bounds, perLE, t)
		secs = append(secs, sec)
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].Unix < secs[j].Unix })
	return secs, last
}

// sketch builds second t's latency sketch from the cumulative bucket
// increments: the requests of bucket (bounds[i-1], bounds[i]] are placed
// at its upper bound (the +Inf bucket's at the largest finite one), the
// conservative reading of a histogram. Nil without requests.
func (s *SecondSource) sketch(bounds []float64, perLE []map[int64]float64, t int64) *ddsketch.DDSketch {
	unit := 1.0
	if s.cfg.DurationUnit == spec.DurationMilliseconds {
		unit = 1e-3
	}
	var sk *ddsketch.DDSketch
	var below float64
	var lastFinite float64
	for i, le := range bounds {
		cum := perLE[i][t]
		n := cum - below
		below = max(below, cum)
		if !math.IsInf(le, 1) {
			lastFinite = le
		}
		if n <= 0 {
			continue
		}
		if sk == nil {
			sk = s.buckets.NewSketch()
		}
		s.buckets.Add(sk, s.buckets.Bucket(lastFinite*unit), n)
	}
	return sk
}
