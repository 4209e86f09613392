package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/spec"
)

// LoadTarget is what the load generator needs from the data plane: a way
// to mark its requests for the canary, and where the service listens.
type LoadTarget interface {
	SetLoadToken(service, token string) error
	Addr(service string) net.Addr
}

// WithLoad lets the analyzer run spec.analysis.load through t.
func (c *Checks) WithLoad(t LoadTarget) *Checks {
	c.load = t
	return c
}

// generate sends l.Rate requests a second, at most l.Concurrency at a
// time, through the service's listener to its canary until ctx ends. A
// request that would exceed the concurrency is skipped, not queued: the
// generator never builds a backlog against a slow canary.
func (c *Checks) generate(ctx context.Context, service string, l *spec.Load) {
	if c.load == nil {
		return
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	if err := c.load.SetLoadToken(service, token); err != nil {
		return
	}
	defer c.load.SetLoadToken(service, "")
	a, ok := c.load.Addr(service).(*net.TCPAddr)
	if !ok {
		return
	}
	host := a.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1) // a wildcard listener answers on loopback
	}
	url := "http://" + net.JoinHostPort(host.String(), strconv.Itoa(a.Port)) + l.Path
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: l.Concurrency, Proxy: nil}}
	defer client.CloseIdleConnections()
	jobs := make(chan struct{})
	var workers sync.WaitGroup
	for range l.Concurrency {
		workers.Go(func() {
			for range jobs {
				c.sendLoad(ctx, client, url, token, l)
			}
		})
	}
	defer workers.Wait()
	defer close(jobs)
	tick := time.NewTicker(time.Second / time.Duration(l.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case jobs <- struct{}{}:
		default: // every worker busy: skip rather than queue
		}
	}
}

func (c *Checks) sendLoad(ctx context.Context, client *http.Client, url, token string, l *spec.Load) {
	req, err := http.NewRequestWithContext(ctx, l.Method, url, nil)
	if err != nil {
		return
	}
	for k, v := range l.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set(metrics.LoadHeader, token)
	res, err := client.Do(req)
	if err != nil {
		return // the proxy counted what the canary did; nothing to add here
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
}
