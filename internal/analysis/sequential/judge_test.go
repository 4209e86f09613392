package sequential

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// traffic draws one second of n requests with error rate p and log-normal
// latency (median 100 ms, p99 about 400 ms).
func traffic(rng *rand.Rand, n int, p float64) Window {
	w := Window{Requests: int64(n)}
	counts := map[int32]int64{}
	for range n {
		if rng.Float64() < p {
			w.Errors++
		}
		d := time.Duration(0.1 * math.Exp(0.596*rng.NormFloat64()) * float64(time.Second))
		counts[BucketOf(d)]++
	}
	var b []Bucket
	for i, c := range counts {
		b = append(b, Bucket{Index: i, Count: c})
	}
	var out Window
	for _, x := range b {
		out.Add(Window{Latency: []Bucket{x}})
	}
	w.Latency = out.Latency
	return w
}

func baseline(rng *rand.Rand) Window {
	var b Window
	for range 60 {
		b.Add(traffic(rng, 1000, 0.001))
	}
	return b
}

// split routes n requests: canary share w.
func split(rng *rand.Rand, n int, w float64) (c, s int) {
	for range n {
		if rng.Float64() < w {
			c++
		}
	}
	return c, n - c
}

// TestCheckpointResumes: a judge checkpointed (through JSON) and restored
// in the middle decides exactly as one that ran through.
func TestCheckpointResumes(t *testing.T) {
	run := func(restoreAt int) (Decision, int) {
		rng := rand.New(rand.NewPCG(11, 12))
		j, err := New(Defaults(), baseline(rng))
		if err != nil {
			t.Fatal(err)
		}
		for s := 1; s <= 600; s++ {
			if s == restoreAt {
				b, err := json.Marshal(j.Checkpoint())
				if err != nil {
					t.Fatal(err)
				}
				var st State
				if err := json.Unmarshal(b, &st); err != nil {
					t.Fatal(err)
				}
				if j, err = Restore(Defaults(), st); err != nil {
					t.Fatal(err)
				}
			}
			nc, ns := split(rng, 100, 0.1)
			if d, ok := j.Observe(int64(1000+s), traffic(rng, nc, 0.02), traffic(rng, ns, 0.001)); ok {
				return d, s
			}
		}
		return Decision{}, 0
	}
	want, at := run(0)
	if want.Kind != Rollback {
		t.Fatalf("a 2%%-error canary was not rolled back in 10 minutes: %+v", want)
	}
	got, gotAt := run(at / 2)
	if got != want || gotAt != at {
		t.Fatalf("restored at second %d: %+v at %d, want %+v at %d", at/2, got, gotAt, want, at)
	}
}

// TestThinTrafficHolds: a few requests a minute never promote (no
// evidence) and never roll back (noise, even with an error or two); after
// maxDuration the judge holds and says why.
func TestThinTrafficHolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	j, err := New(Defaults(), baseline(rng))
	if err != nil {
		t.Fatal(err)
	}
	var held Decision
	for s := 1; s <= 3600; s++ {
		var c, st Window
		if s%15 == 0 { // 4 requests a minute, 1 in 4 to the canary
			if s%60 == 0 {
				c = traffic(rng, 1, 0.01)
			} else {
				st = traffic(rng, 1, 0.01)
			}
		}
		if s == 1800 {
			c.Errors, c.Requests = 1, max(c.Requests, 1)
		}
		d, ok := j.Observe(int64(5000+s), c, st)
		switch {
		case ok && d.Kind == Hold && held.Kind == "":
			held = d
		case ok && d.Kind != Hold:
			t.Fatalf("thin traffic decided %s at second %d: %s", d.Kind, s, d.Reason)
		}
	}
	if held.Kind != Hold || !strings.Contains(held.Reason, "no decision after 30m0s") {
		t.Fatalf("after an hour of thin traffic: %+v, want a hold after maxDuration", held)
	}
	if s := j.Status(); !strings.Contains(s.Summary, "promotion needs") {
		t.Errorf("status summary %q does not say what promotion needs", s.Summary)
	}
}

// TestObserveOnce: a second fed twice counts once.
func TestObserveOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	j, _ := New(Defaults(), baseline(rng))
	c, s := traffic(rng, 10, 0), traffic(rng, 90, 0)
	j.Observe(100, c, s)
	j.Observe(100, c, s)
	j.Observe(99, c, s)
	if st := j.Status(); st.CanaryRequests != 10 || st.StableRequests != 90 {
		t.Fatalf("after the same second three times: %+v", st)
	}
}

// TestFromSketch: a sketch in the proxy's mapping lists by the buckets
// BucketOf gives, with every count.
func TestFromSketch(t *testing.T) {
	sk, err := ddsketch.NewDefaultDDSketch(0.015)
	if err != nil {
		t.Fatal(err)
	}
	var want Window
	for _, ms := range []int{1, 5, 5, 100, 400, 400, 400} {
		d := time.Duration(ms) * time.Millisecond
		_ = sk.Add(d.Seconds())
		want.Add(Window{Latency: []Bucket{{Index: BucketOf(d), Count: 1}}})
	}
	got := FromSketch(sk)
	if len(got) != len(want.Latency) {
		t.Fatalf("FromSketch = %v, want %v", got, want.Latency)
	}
	for i := range got {
		if got[i] != want.Latency[i] {
			t.Fatalf("FromSketch = %v, want %v", got, want.Latency)
		}
	}
}
