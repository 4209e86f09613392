// Command backend is the benchmark's upstream: a small, fast HTTP/1.1 server
// with keep-alive that answers every request with the same short body, so
// that the benchmark measures the proxies rather than the application.
//
//	go run ./bench/backend -addr 127.0.0.1:9000
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// body is what every request gets.
var body = []byte("hello from the switchyard bench backend\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "backend: %v\n", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The harness reads the address from the first line.
	fmt.Println(ln.Addr().String())
	contentLength := fmt.Sprint(len(body))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			// Set directly: avoids content sniffing and chunking.
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{contentLength}
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
