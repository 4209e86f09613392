package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Clients counts what one kind of client saw during a switch run.
type Clients struct {
	Requests int64
	Failed   int64
	// Errors counts failures by a short description ("EOF", "status 502").
	Errors map[string]int64
	// Served counts successful responses by body (the version that answered).
	Served map[string]int64
}

// SwitchResult is what SwitchUnderLoad measured.
type SwitchResult struct {
	Switches int
	Elapsed  time.Duration
	// Retrying clients send GETs, which Go's transport sends again on a new
	// connection when a kept-alive one turns out to be closed before any
	// response byte arrived (what browsers and most HTTP libraries do).
	Retrying Clients
	// NonRetrying clients send POSTs, which no transport replays: a request
	// written on a connection the server is closing fails.
	NonRetrying Clients
}

// SwitchLoad configures SwitchUnderLoad.
type SwitchLoad struct {
	// URL is where the clients send their requests.
	URL string
	// Clients is how many clients of each kind run at once, each on its own
	// keep-alive connection.
	Clients int
	// Switches is how many times Switch is called.
	Switches int
	// Switch makes switch number i (0-based); an error ends the run.
	Switch func(ctx context.Context, i int) error
	// Gap is the pause between two switches, so that each switch happens
	// under load on connections that were kept alive across the last one.
	Gap time.Duration
	// Think is each client's pause between two requests (0: back to back,
	// which saturates the machine).
	Think time.Duration
}

// SwitchUnderLoad runs the clients, makes the switches and stops the
// clients; failures are counted, never retried by hand.
func SwitchUnderLoad(ctx context.Context, l SwitchLoad) (SwitchResult, error) {
	var res SwitchResult
	var mu sync.Mutex
	counts := map[bool]*Clients{
		true:  {Errors: map[string]int64{}, Served: map[string]int64{}},
		false: {Errors: map[string]int64{}, Served: map[string]int64{}},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var total atomic.Int64
	for _, retrying := range []bool{true, false} {
		for range l.Clients {
			tr := &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 1,
				IdleConnTimeout:     time.Minute,
			}
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			wg.Go(func() {
				defer tr.CloseIdleConnections()
				for {
					if l.Think > 0 {
						select {
						case <-stop:
							return
						case <-time.After(l.Think):
						}
					}
					select {
					case <-stop:
						return
					default:
					}
					method, body := http.MethodGet, io.Reader(nil)
					if !retrying {
						method, body = http.MethodPost, strings.NewReader("x")
					}
					req, _ := http.NewRequestWithContext(ctx, method, l.URL, body)
					if !retrying {
						req.GetBody = nil // never replayable
					}
					why, served := "", ""
					resp, err := client.Do(req)
					if err != nil {
						why = shortError(err)
					} else {
						b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
						served = string(b)
						resp.Body.Close()
						if resp.StatusCode >= 500 {
							why = fmt.Sprintf("status %d", resp.StatusCode)
						}
					}
					total.Add(1)
					mu.Lock()
					c := counts[retrying]
					c.Requests++
					if why != "" {
						c.Failed++
						c.Errors[why]++
					} else {
						c.Served[served]++
					}
					mu.Unlock()
				}
			})
		}
	}
	// Let every client open its connection and make requests first.
	for total.Load() < int64(4*l.Clients) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	var err error
	for i := range l.Switches {
		if err = l.Switch(ctx, i); err != nil {
			err = fmt.Errorf("switch %d: %w", i, err)
			break
		}
		res.Switches++
		select {
		case <-time.After(l.Gap):
		case <-ctx.Done():
		}
	}
	res.Elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	res.Retrying, res.NonRetrying = *counts[true], *counts[false]
	return res, err
}

// shortError names a client error without addresses and ports.
func shortError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case strings.Contains(err.Error(), "server closed idle connection"):
		return "server closed idle connection"
	case strings.Contains(err.Error(), "broken pipe"):
		return "broken pipe"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// String reads like "12000 requests, 3 failed (EOF 2, connection reset 1)".
func (c Clients) String() string {
	s := fmt.Sprintf("%d requests, %d failed", c.Requests, c.Failed)
	if len(c.Errors) > 0 {
		var parts []string
		for k, v := range c.Errors {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
