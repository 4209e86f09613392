package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/internal/rollout"
)

// crashChildEnv, when set to a path, turns the test binary into the crash
// test's child: it saves states to that store in a loop until killed.
const crashChildEnv = "SWITCHYARD_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// crashState is the n-th state the crash child writes. Its fields are tied
// to n so that a torn state is detectable.
func crashState(n int) rollout.State {
	canary := n % 101
	return rollout.State{
		Service:     "web",
		Phase:       rollout.PhaseProgressing,
		Stable:      "blue",
		Weights:     rollout.Weights{"blue": 100 - canary, "green": canary},
		Versions:    map[string][]string{"blue": {"127.0.0.1:9001"}, "green": {"127.0.0.1:9101"}},
		NextRollout: uint64(n),
		// Padding makes a Save touch several pages, so a torn write
		// would have room to show.
		RouterError: strings.Repeat(strconv.Itoa(n), 400),
	}
}

func checkCrashState(st rollout.State) (int, error) {
	n := int(st.NextRollout)
	want := crashState(n)
	if st.Weights["blue"] != want.Weights["blue"] || st.Weights["green"] != want.Weights["green"] ||
		st.RouterError != want.RouterError || st.Phase != want.Phase {
		return n, fmt.Errorf("state %d is torn: weights %v", n, st.Weights)
	}
	return n, nil
}

func crashChild(path string) int {
	s, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	st, _, err := s.Load(ctx, "web")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	w := bufio.NewWriter(os.Stdout)
	for n := int(st.NextRollout) + 1; ; n++ {
		h := rollout.HistoryEntry{Rollout: uint64(n), Kind: "step", Step: n}
		if err := s.Save(ctx, "web", crashState(n), h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		// Report only after Save returned: from here, n must survive.
		fmt.Fprintf(w, "saved %d\n", n)
		w.Flush()
	}
}

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestRoundTrip(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := rollout.State{
		Service:  "web",
		Phase:    rollout.PhasePaused,
		Stable:   "blue",
		Weights:  rollout.Weights{"blue": 75, "green": 25},
		Versions: map[string][]string{"blue": {"127.0.0.1:9001"}, "green": {"127.0.0.1:9101"}},
		Rollout: &rollout.Run{
			ID: 3, Version: "green", From: "blue", Strategy: rollout.StrategyCanary,
			Steps:     []rollout.Step{{Kind: rollout.StepSetWeight, Weight: 25}, {Kind: rollout.StepPause, Duration: time.Minute}},
			StepIndex: 1, StartedAt: now, StepStartedAt: now.Add(time.Second), Paused: true, PausedAt: now,
		},
		NextRollout: 4,
	}
	if _, found, err := s.Load(ctx, "web"); err != nil || found {
		t.Fatalf("Load before Save = found %v, %v; want not found", found, err)
	}
	if err := s.Save(ctx, "web", st); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "api", rollout.State{Service: "api", Stable: "v1", Weights: rollout.Weights{"v1": 100}, Versions: map[string][]string{"v1": {"127.0.0.1:9201"}}}); err != nil {
		t.Fatal(err)
	}
	// Reopen: the data must come from the file, not from memory.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if err := s.Save(ctx, "web", st); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close = %v, want ErrClosed", err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, found, err := s2.Load(ctx, "web")
	if err != nil || !found {
		t.Fatalf("Load = found %v, %v", found, err)
	}
	if got.Rollout == nil || got.Rollout.StepIndex != 1 || got.Weights["green"] != 25 ||
		!got.Rollout.StartedAt.Equal(now) || got.Rollout.Steps[1].Duration != time.Minute ||
		got.Versions["green"][0] != "127.0.0.1:9101" || got.NextRollout != 4 {
		t.Errorf("Load = %+v, want %+v", got, st)
	}
	all, err := s2.LoadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["api"].Stable != "v1" || all["web"].Stable != "blue" {
		t.Errorf("LoadAll = %v, want web and api", all)
	}
	if err := s2.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s2.Load(ctx, "web"); found {
		t.Error("Load after Delete found the state")
	}
	if err := s2.Delete(ctx, "never-stored"); err != nil {
		t.Errorf("Delete(never-stored) = %v, want nil", err)
	}
}

func TestHistory(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	st := rollout.State{Service: "web"}
	// 1 entry, then 3 in one Save, then 0, then 1: 5 in order.
	batches := [][]int{{1}, {2, 3, 4}, {}, {5}}
	for _, b := range batches {
		var hs []rollout.HistoryEntry
		for _, n := range b {
			hs = append(hs, rollout.HistoryEntry{Rollout: uint64(n), Kind: "step"})
		}
		if err := s.Save(ctx, "web", st, hs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(ctx, "other", st, rollout.HistoryEntry{Rollout: 99}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		service string
		limit   int
		want    []uint64
	}{
		{"all", "web", 0, []uint64{1, 2, 3, 4, 5}},
		{"negative limit is all", "web", -1, []uint64{1, 2, 3, 4, 5}},
		{"newest two, oldest first", "web", 2, []uint64{4, 5}},
		{"limit above count", "web", 10, []uint64{1, 2, 3, 4, 5}},
		{"other service", "other", 0, []uint64{99}},
		{"unknown service", "nope", 0, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := s.History(ctx, tt.service, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []uint64{}
			for _, h := range hs {
				got = append(got, h.Rollout)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("History(%q, %d) = %v, want %v", tt.service, tt.limit, got, tt.want)
			}
		})
	}
	if err := s.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if hs, _ := s.History(ctx, "web", 0); len(hs) != 0 {
		t.Errorf("History after Delete = %d entries, want 0", len(hs))
	}
}

func TestCanceledContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Save(ctx, "web", rollout.State{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Save(canceled) = %v, want context.Canceled", err)
	}
}

// validStore writes a store with some data and returns its bytes.
func validStore(t *testing.T) []byte {
	t.Helper()
	s, path := openTemp(t)
	for i := range 50 {
		st := crashState(i)
		st.Service = fmt.Sprintf("svc-%d", i)
		h := rollout.HistoryEntry{Rollout: uint64(i), Kind: "weights", Weights: rollout.Weights{"blue": 90, "green": 10}}
		if err := s.Save(t.Context(), st.Service, st, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRefusesDamagedFiles(t *testing.T) {
	valid := validStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 64*1024)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// A bbolt file whose bytes are fine but whose content is not ours,
	// or whose content is ours but unreadable.
	withBolt := func(fn func(tx *bolt.Tx) error) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, valid, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(fn); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// damage changes bytes of one stored value in place, as a bad disk
	// would: the checksum in front of it is left as it was.
	damage := func(bucket func(tx *bolt.Tx) *bolt.Bucket, key []byte, old, new string) func(t *testing.T, path string) {
		return withBolt(func(tx *bolt.Tx) error {
			b := bucket(tx)
			v := b.Get(key)
			if bytes.Count(v, []byte(old)) != 1 {
				return fmt.Errorf("value of %q holds %q %d times, want once: %s", key, old, bytes.Count(v, []byte(old)), v)
			}
			return b.Put(key, bytes.Replace(v, []byte(old), []byte(new), 1))
		})
	}
	states := func(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketStates) }
	historyOf := func(service string) func(tx *bolt.Tx) *bolt.Bucket {
		return func(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketHistory).Bucket([]byte(service)) }
	}
	// putState stores a value with a valid checksum: damage the checksum
	// cannot see (a bug that wrote it) is still refused by validation.
	putState := func(service, json string) func(t *testing.T, path string) {
		return withBolt(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketStates).Put([]byte(service), seal([]byte(service), []byte(json)))
		})
	}
	writeBytes := func(b []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string // in the message, besides the path
	}{
		{"empty file", writeBytes(nil), "empty"},
		{"garbage", writeBytes(garbage), "cannot be read"},
		{"text file", writeBytes([]byte("services:\n  web: {}\n")), "cannot be read"},
		{"truncated to half", writeBytes(valid[:len(valid)/2]), "cannot be read"},
		{"truncated to one page", writeBytes(valid[:4096]), "cannot be read"},
		{"truncated to 100 bytes", writeBytes(valid[:100]), "cannot be read"},
		{"meta pages zeroed", writeBytes(append(make([]byte, 8192), valid[8192:]...)), "cannot be read"},
		{"state that does not decode", putState("web", `{"weights": "not a map"`), `state of service "web" does not decode`},
		{"weights that add up to 198", putState("web", `{"service":"web","phase":"Stable","stable":"blue",`+
			`"weights":{"blue":99,"green":99},"versions":{"blue":["a:1"],"green":["b:1"]}}`), "add up to 198"},
		{"a step kind from a newer version", putState("web", `{"service":"web","phase":"Progressing","stable":"blue",`+
			`"weights":{"blue":100},"versions":{"blue":["a:1"],"green":["b:1"]},`+
			`"rollout":{"id":1,"version":"green","steps":[{"kind":"HealthGate"},{"kind":"Teleport"}],"stepIndex":1}}`),
			`kind "Teleport", unknown to this version`},
		// Damage that still decodes and validates: only the checksum sees it.
		{"a digit of a state changed", damage(states, []byte("svc-7"), `"nextRollout":7`, `"nextRollout":8`),
			`state of service "svc-7": checksum mismatch`},
		{"weights of a state changed, still adding up to 100", damage(states, []byte("svc-7"),
			`{"blue":93,"green":7}`, `{"blue":97,"green":3}`), `state of service "svc-7": checksum mismatch`},
		{"a version name in history changed", damage(historyOf("svc-3"), seqKey(1), `"green"`, `"greem"`),
			`history entry 1 of service "svc-3": checksum mismatch`},
		{"a state moved under another service", withBolt(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketStates)
			return b.Put([]byte("svc-4"), bytes.Clone(b.Get([]byte("svc-3"))))
		}), `state of service "svc-4": checksum mismatch`},
		{"a value shorter than its checksum", withBolt(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketStates).Put([]byte("svc-1"), []byte("{}"))
		}), "shorter than its checksum"},
		{"a history entry that does not decode", withBolt(func(tx *bolt.Tx) error {
			k := seqKey(1)
			return tx.Bucket(bucketHistory).Bucket([]byte("svc-2")).Put(k, seal(k, []byte(`{"rollout":`)))
		}), `history entry 1 of service "svc-2" does not decode`},
		{"old format, weights that add up to 198", withBolt(func(tx *bolt.Tx) error {
			// A whole format 1 file: bare JSON values only.
			if err := tx.Bucket(bucketMeta).Put(keyFormat, []byte("1")); err != nil {
				return err
			}
			for _, b := range [][]byte{bucketStates, bucketHistory} {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketStates).Put([]byte("web"), []byte(`{"service":"web","phase":"Stable","stable":"blue",`+
				`"weights":{"blue":99,"green":99},"versions":{"blue":["a:1"],"green":["b:1"]}}`))
		}), "add up to 198"},
		{"future format version", withBolt(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyFormat, []byte("7"))
		}), "format version 7, newer than this switchyard understands"},
		{"not a switchyard bbolt file", withBolt(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketMeta); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("something-else"))
			return err
		}), "not a Switchyard store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			tt.setup(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatalf("Open accepted a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open error %q does not wrap ErrCorrupt", err)
			}
			for _, want := range []string{path, tt.want, "move it away"} {
				if tt.name == "future format version" && want == "move it away" {
					want = "newer switchyard"
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not contain %q", err, want)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("Open changed the refused file (%d bytes before, %d after)", len(before), len(after))
			}
		})
	}
}

// TestOpenMigratesFormat1 opens a file as Switchyard wrote it before values
// were checksummed: it opens, every value is sealed, the format is current,
// and what was stored reads back.
func TestOpenMigratesFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	web := `{"service":"web","phase":"Stable","stable":"blue","weights":{"blue":100},` +
		`"versions":{"blue":["127.0.0.1:9001"]},"nextRollout":3}`
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		states, _ := tx.CreateBucket(bucketStates)
		history, _ := tx.CreateBucket(bucketHistory)
		hb, _ := history.CreateBucket([]byte("web"))
		if err := meta.Put(keyFormat, []byte("1")); err != nil {
			return err
		}
		if err := states.Put([]byte("web"), []byte(web)); err != nil {
			return err
		}
		for i := range 3 {
			seq, _ := hb.NextSequence()
			if err := hb.Put(seqKey(seq), fmt.Appendf(nil, `{"rollout":%d,"kind":"step","message":"green"}`, i+1)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	s, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open(format 1 file) = %v", err)
	}
	if !strings.Contains(logs.String(), "state store migrated") || !strings.Contains(logs.String(), "records=4") {
		t.Errorf("log = %q, want one line saying 4 records were migrated", logs.String())
	}
	check := func(s *Store) {
		t.Helper()
		st, found, err := s.Load(t.Context(), "web")
		if err != nil || !found || st.NextRollout != 3 || st.Weights["blue"] != 100 {
			t.Errorf("Load after migration = %+v, %v, %v; want the stored state", st, found, err)
		}
		hs, err := s.History(t.Context(), "web", 0)
		if err != nil || len(hs) != 3 || hs[2].Rollout != 3 || hs[2].Message != "green" {
			t.Errorf("History after migration = %+v, %v; want 3 entries", hs, err)
		}
	}
	check(s)
	// New writes go on the migrated history.
	if err := s.Save(t.Context(), "web", rollout.State{Service: "web"}, rollout.HistoryEntry{Rollout: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket(bucketMeta).Get(keyFormat)); got != strconv.Itoa(FormatVersion) {
			t.Errorf("format after migration = %q, want %d", got, FormatVersion)
		}
		return tx.Bucket(bucketHistory).Bucket([]byte("web")).ForEach(func(k, v []byte) error {
			if _, err := unseal(k, v); err != nil {
				t.Errorf("history entry %s after migration: %v", seqName(k), err)
			}
			return nil
		})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after migration: %v", err)
	}
	defer s.Close()
	if hs, err := s.History(t.Context(), "web", 0); err != nil || len(hs) != 4 {
		t.Errorf("History after reopening = %d entries, %v; want 4", len(hs), err)
	}
}

func TestOpenCreatesOnlyWhatIsMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "state")
	path := filepath.Join(dir, FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(new file in missing dir) = %v", err)
	}
	s.Close()
	if _, err := os.Stat(path + ".creating"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("store mode = %v, want 0600", info.Mode().Perm())
	}
	// A valid bbolt file with no buckets holds nothing to lose: accepted.
	emptyBolt := filepath.Join(t.TempDir(), FileName)
	db, err := bolt.Open(emptyBolt, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = Open(emptyBolt, Options{})
	if err != nil {
		t.Fatalf("Open(empty bbolt file) = %v", err)
	}
	defer s.Close()
	if err := s.Save(t.Context(), "web", rollout.State{Service: "web"}); err != nil {
		t.Errorf("Save after initialising an empty bbolt file = %v", err)
	}
}

func TestOpenLocked(t *testing.T) {
	s, path := openTemp(t)
	_ = s
	start := time.Now()
	s2, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held store succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	for _, want := range []string{path, "is locked", "another `switchyard serve`", "--state-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lock error %q does not contain %q", err, want)
		}
	}
	if d := time.Since(start); d < 100*time.Millisecond { // bbolt polls every 50ms and may stop one poll early
		t.Errorf("second Open gave up after %v, before its timeout", d)
	}
	// Once released, it opens.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	s3.Close()
}

// TestCrash kills a process that saves in a loop at random moments and
// checks that the store always reopens with the last or the second-to-last
// state written, never a torn one, and with history from the same
// transactions.
func TestCrash(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	last := 0
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of reported saves plus a random
		// fraction of a save, so the kill lands anywhere in the loop.
		killAfter := 5 + rng.IntN(60)
		sc := bufio.NewScanner(out)
		reported := last
		seen := 0
		for sc.Scan() {
			fmt.Sscanf(sc.Text(), "saved %d", &reported)
			seen++
			if seen == killAfter {
				delay := time.Duration(rng.IntN(3000)) * time.Microsecond
				time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
			}
		}
		err = cmd.Wait()
		if seen < killAfter {
			t.Fatalf("round %d: child stopped after %d saves: %v\n%s", round, seen, err, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child was not killed: %v\n%s", round, err, stderr.String())
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: Open after kill -9: %v", round, err)
		}
		st, found, err := s.Load(t.Context(), "web")
		if err != nil || !found {
			t.Fatalf("round %d: Load after kill -9 = found %v, %v", round, found, err)
		}
		n, err := checkCrashState(st)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// The child reports n after Save(n) returned, so n is durable;
		// Save(n+1) may or may not have committed when it died.
		if n != reported && n != reported+1 {
			t.Fatalf("round %d: state %d after kill, want %d (last reported) or %d", round, n, reported, reported+1)
		}
		hs, err := s.History(t.Context(), "web", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != n || hs[len(hs)-1].Rollout != uint64(n) {
			t.Fatalf("round %d: %d history entries ending with %v, want %d ending with %d (same transactions as the state)",
				round, len(hs), hs[len(hs)-1].Rollout, n, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d saves, reopened at state %d", round, seen, n)
		last = n
	}
}

// BenchmarkSave measures fsynced Saves (state plus one history entry).
func BenchmarkSave(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		n++
		if err := s.Save(ctx, "web", crashState(n), rollout.HistoryEntry{Rollout: uint64(n), Kind: "step"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "saves/s")
}
