// Package demo runs the small toy app that `switchyard demo` rolls out:
// versions that answer "hello from VERSION" and a /health endpoint, one of
// which can be made to fail its health checks, and a steady load generator.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// App is one running instance of a demo version.
type App struct {
	Version string
	Addr    string
	srv     *http.Server
	done    chan struct{}
}

// StartApp serves version on a free loopback port. An unhealthy app answers
// its pages but fails /health with 500.
func StartApp(version string, healthy bool) (*App, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy {
			http.Error(w, "not ready: missing DATABASE_URL", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-App-Version", version)
		fmt.Fprintf(w, "hello from %s\n", version)
	})
	a := &App{
		Version: version,
		Addr:    ln.Addr().String(),
		srv:     &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done:    make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		a.srv.Serve(ln)
	}()
	return a, nil
}

// Close stops the app and waits for it.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	<-a.done
	return err
}

// Load sends a steady stream of GET requests and counts answers by the
// version that served them (from the X-App-Version header).
type Load struct {
	mu     sync.Mutex
	counts map[string]int64
	failed atomic.Int64
	// totals since StartLoad, never reset
	totalOK, totalFailed atomic.Int64
	wg                   sync.WaitGroup
	cancel               context.CancelFunc
}

// StartLoad sends about rps requests a second to url until Stop.
func StartLoad(ctx context.Context, url string, rps int) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{counts: map[string]int64{}, cancel: cancel}
	client := &http.Client{Timeout: 5 * time.Second}
	l.wg.Go(func() {
		t := time.NewTicker(time.Second / time.Duration(max(rps, 1)))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.once(ctx, client, url)
		}
	})
	return l
}

func (l *Load) once(ctx context.Context, c *http.Client, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
			l.failed.Add(1)
			l.totalFailed.Add(1)
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		l.failed.Add(1)
		l.totalFailed.Add(1)
		return
	}
	l.totalOK.Add(1)
	l.mu.Lock()
	l.counts[resp.Header.Get("X-App-Version")]++
	l.mu.Unlock()
}

// Counts returns answers per version and the failed requests so far, and
// resets them.
func (l *Load) Counts() (map[string]int64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts
	l.counts = map[string]int64{}
	return c, l.failed.Swap(0)
}

// Totals returns the successful and failed requests since StartLoad.
func (l *Load) Totals() (ok, failed int64) { return l.totalOK.Load(), l.totalFailed.Load() }

// Stop ends the load and waits for it.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}
