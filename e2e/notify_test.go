package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestNotificationsSurviveKill9: events that could not be delivered before
// serve was killed with SIGKILL (the receiver was down) are delivered after
// the restart, in order: the store's history is the outbox.
func TestNotificationsSurviveKill9(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	var (
		mu    sync.Mutex
		kinds []string
		down  atomic.Bool
	)
	down.Store(true)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var ev struct{ Kind string }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("notification %q: %v", b, err)
		}
		mu.Lock()
		kinds = append(kinds, ev.Kind)
		mu.Unlock()
	}))
	defer recv.Close()
	urlFile := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(urlFile, []byte(recv.URL+"/events"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {blue.addr}, "green": {green.addr}}, "blue", `  strategy:
    canary:
      steps: [{setWeight: 25}, {pause: {}}]
  notifications:
    - {name: audit, type: webhook, urlFile: "`+urlFile+`"}
`))
	d.args = []string{"--egress-allow", "127.0.0.0/8"}
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	d.mustRun(0, "deploy", "web", "--version", "green")
	d.waitStatus("web", 20*time.Second, "the pause at 25%", func(st admin.ServiceStatus) bool { return st.Weights["green"] == 25 })

	d.kill(syscall.SIGKILL)
	down.Store(false)
	d.start()
	d.mustRun(0, "promote", "web")
	want := []string{"deploy", "step", "step", "switched", "promoted"}
	ok := testenv.Poll(30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		i := 0
		for _, k := range kinds {
			if i < len(want) && k == want[i] {
				i++
			}
		}
		return i == len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		t.Fatalf("after kill -9 and restart the receiver got %v, want %v in order", kinds, want)
	}
	count := map[string]int{}
	for _, k := range kinds {
		count[k]++
	}
	if count["deploy"] > 2 || count["promoted"] > 2 {
		t.Errorf("receiver got %v; want each event at most twice", kinds)
	}
}
