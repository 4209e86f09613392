// Package store is Switchyard's embedded state store: one bbolt file holding
// the rollout State of every service and each service's history. Every Save
// is one fsynced transaction, so after a crash at any moment the store holds
// either the last state written or the one before it, never a torn one. A
// file that cannot be read stops the start with an error; the store never
// silently starts empty over existing data.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchyard/switchyard/internal/rollout"
)

// FileName is the store's file name inside a --state-dir.
const FileName = "state.db"

// FormatVersion is the layout version this code writes. A file with a higher
// version was written by a newer Switchyard and is refused.
//
// Version 1 stored bare JSON values. Version 2 seals every state and
// history value with a checksum (see seal), because bbolt checksums its meta
// pages only: a flipped digit in a weight or a version name decoded, passed
// validation and was served. Open migrates a version 1 file in one
// transaction, after verifying it read-only as version 1.
const FormatVersion = 2

// formatUnsealed is the last format whose values carry no checksum.
const formatUnsealed = 1

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = time.Second

// Errors callers can branch on with errors.Is.
var (
	// ErrCorrupt means the file is not a readable Switchyard store.
	ErrCorrupt = errors.New("store is unreadable")
	// ErrLocked means another process holds the file lock.
	ErrLocked = errors.New("store is locked")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store is closed")
)

// Bucket and key names. The layout:
//
//	meta/format          -> decimal FormatVersion
//	states/<service>     -> sealed JSON rollout.State
//	history/<service>/   -> one bucket per service;
//	    <uint64 BE seq>  -> sealed JSON rollout.HistoryEntry, in the order saved
//
// A sealed value is the CRC-32C of key and JSON (4 bytes, big-endian)
// followed by the JSON; see seal.
var (
	bucketMeta    = []byte("meta")
	bucketStates  = []byte("states")
	bucketHistory = []byte("history")
	keyFormat     = []byte("format")
)

// Options configure Open.
type Options struct {
	// Timeout is how long to wait for another process to release the file
	// lock; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives the few things worth logging (creation of a new
	// store); nil discards them.
	Logger *slog.Logger
}

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	path string
	db   *bolt.DB
	log  *slog.Logger

	mu     sync.RWMutex // guards closed against use during Close
	closed bool
}

// Open opens the store at path, creating it if it does not exist. It refuses
// a file it cannot fully read (garbage, truncated, a state that does not
// decode, a format version from the future) with an error wrapping
// ErrCorrupt that names the path and what to do; such a file is never
// written to. When another process holds the file it waits opts.Timeout and
// returns an error wrapping ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := create(path, opts.Timeout); err != nil {
			return nil, err
		}
		log.Info("state store created", "path", path)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	case info.IsDir():
		return nil, fmt.Errorf("open store %s: is a directory, not a state file", path)
	case info.Size() == 0:
		// New stores are created under a temporary name and renamed into
		// place complete, so an empty file here is damage, not a new store.
		return nil, corrupt(path, errors.New("the file is empty (0 bytes)"))
	}

	// Verify read-only first: bbolt's read-write Open may write to the file
	// (freelist sync), and a damaged file must be left exactly as it is for
	// whoever repairs it.
	if err := verify(path, opts.Timeout); err != nil {
		return nil, err
	}
	db, err := openBolt(path, false, opts.Timeout)
	if err != nil {
		return nil, err
	}
	// verify accepted a valid bbolt file with no buckets at all (nothing
	// to lose); give it the layout. A file of an older format that verify
	// accepted is migrated. On a current Switchyard store this is a no-op.
	var migrated int
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return initBuckets(tx)
		}
		version, err := formatOf(meta)
		if err != nil || version != formatUnsealed {
			return err
		}
		migrated, err = migrateUnsealed(tx)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: migrate to format %d: %w", path, FormatVersion, err)
	}
	if migrated > 0 {
		log.Info("state store migrated", "path", path, "from", formatUnsealed, "to", FormatVersion, "records", migrated)
	}
	return &Store{path: path, db: db, log: log}, nil
}

// migrateUnsealed seals every value of a format 1 store and records the
// current format, in the caller's transaction: a crash during it leaves the
// old file, which verifies and migrates again. It returns the number of
// records sealed.
func migrateUnsealed(tx *bolt.Tx) (int, error) {
	type record struct {
		b          *bolt.Bucket
		key, value []byte
	}
	var records []record
	// Collect first: bbolt forbids writing to a bucket while iterating it.
	collect := func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				records = append(records, record{b, bytes.Clone(k), seal(k, v)})
			}
			return nil
		})
	}
	if err := collect(tx.Bucket(bucketStates)); err != nil {
		return 0, err
	}
	history := tx.Bucket(bucketHistory)
	err := history.ForEach(func(k, v []byte) error {
		if v != nil {
			return nil
		}
		return collect(history.Bucket(k))
	})
	if err != nil {
		return 0, err
	}
	for _, r := range records {
		if err := r.b.Put(r.key, r.value); err != nil {
			return 0, err
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keyFormat, fmt.Appendf(nil, "%d", FormatVersion)); err != nil {
		return 0, err
	}
	return len(records), nil
}

// crcTable is CRC-32C (Castagnoli), which has hardware support on amd64
// and arm64, so sealing costs next to nothing beside the fsync.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// sealSize is the checksum's length in front of a sealed value.
const sealSize = 4

// seal returns the stored form of the record value data under key: the
// CRC-32C of key and data, big-endian, then data. The key is covered too,
// so a value that ends up under another key (another service's state, an
// earlier history entry) is detected as well as a damaged one.
func seal(key, data []byte) []byte {
	out := make([]byte, sealSize, sealSize+len(data))
	binary.BigEndian.PutUint32(out, checksum(key, data))
	return append(out, data...)
}

// unseal returns the JSON of a sealed value, or an error when its checksum
// does not match.
func unseal(key, v []byte) ([]byte, error) {
	if len(v) < sealSize {
		return nil, fmt.Errorf("the value is %d bytes, shorter than its checksum", len(v))
	}
	want := binary.BigEndian.Uint32(v)
	data := v[sealSize:]
	if got := checksum(key, data); got != want {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x): the value was changed after it was written", want, got)
	}
	return data, nil
}

func checksum(key, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, crcTable), crcTable, data)
}

// create makes a new, initialised store under a temporary name and renames
// it into place, so a crash during creation never leaves a half-made file
// at path.
func create(path string, timeout time.Duration) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	tmp := path + ".creating"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return initBuckets(tx)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("create store %s: %w", path, err)
	}
	return nil
}

func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, fmt.Appendf(nil, "%d", FormatVersion)); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketStates); err != nil {
		return err
	}
	_, err = tx.CreateBucketIfNotExists(bucketHistory)
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openBolt opens the file with bbolt, turning a memory fault (a page past
// the end of a truncated file) into an error instead of a crash, and lock
// timeouts into ErrLocked.
func openBolt(path string, readOnly bool, timeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	opts := &bolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	err = withFaultsAsErrors(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: store %s is locked: is another `switchyard serve` running with this --state-dir? (waited %s)",
			ErrLocked, path, timeout)
	case errors.Is(err, errFault):
		// bbolt did not get to close its file; release the lock ourselves.
		if file != nil {
			_ = file.Close()
		}
		return nil, corrupt(path, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return nil, corrupt(path, err)
	default:
		// bbolt reports some damage ("file size too small") as plain
		// errors; anything else from opening an existing regular file is
		// most likely damage too, but keep the OS errors (permissions)
		// recognisable as such.
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		return nil, corrupt(path, err)
	}
}

var errFault = errors.New("memory fault reading the file (it is probably truncated)")

// withFaultsAsErrors runs fn with memory faults turned into panics (a
// SIGBUS reading a mmapped page past the end of a truncated file would
// otherwise kill the process) and turns any panic into an error.
func withFaultsAsErrors(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errFault, r)
		}
	}()
	return fn()
}

// verify opens path read-only and checks everything Open promises: the
// bbolt structure, the format version and that every state decodes.
func verify(path string, timeout time.Duration) error {
	db, err := openBolt(path, true, timeout)
	if err != nil {
		return err
	}
	defer db.Close()
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	return withFaultsAsErrors(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if tx.Size() > info.Size() {
				return corrupt(path, fmt.Errorf("the file is truncated: %d bytes, its pages need %d", info.Size(), tx.Size()))
			}
			var problems []error
			for err := range tx.Check() {
				problems = append(problems, err)
				if len(problems) == 5 {
					break
				}
			}
			if len(problems) > 0 {
				// Drain the checker so its goroutine ends before the
				// transaction does.
				for range tx.Check() {
				}
				return corrupt(path, errors.Join(problems...))
			}
			return checkLayout(path, tx)
		})
	})
}

func checkLayout(path string, tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error {
			empty = false
			return nil
		})
		if empty {
			// A valid bbolt file with nothing in it holds no data to lose;
			// the read-write open initialises it.
			return nil
		}
		return corrupt(path, errors.New("it is a bbolt file but not a Switchyard store (no meta bucket)"))
	}
	version, err := formatOf(meta)
	if err != nil {
		return corrupt(path, err)
	}
	if version > FormatVersion {
		return fmt.Errorf("%w: store %s has format version %d, newer than this switchyard understands (%d): "+
			"run a newer switchyard, or restore a backup written by this version", ErrCorrupt, path, version, FormatVersion)
	}
	if version < 1 {
		return corrupt(path, fmt.Errorf("format version %d is not valid", version))
	}
	states, history := tx.Bucket(bucketStates), tx.Bucket(bucketHistory)
	if states == nil || history == nil {
		return corrupt(path, errors.New("the states or history bucket is missing"))
	}
	// Values of an older format carry no checksum; they are sealed by the
	// migration once the whole file has been checked.
	value := func(k, v []byte) ([]byte, error) {
		if version == formatUnsealed {
			return v, nil
		}
		return unseal(k, v)
	}
	err = states.ForEach(func(k, v []byte) error {
		if v == nil {
			return corrupt(path, fmt.Errorf("the states bucket holds a bucket %q, not a state", k))
		}
		data, err := value(k, v)
		if err != nil {
			return corrupt(path, fmt.Errorf("the state of service %q: %w", k, err))
		}
		var st rollout.State
		if err := json.Unmarshal(data, &st); err != nil {
			return corrupt(path, fmt.Errorf("the state of service %q does not decode: %w", k, err))
		}
		// The checksum proves the value is what was written, not that it
		// was right: a state the machine could not have made stops the
		// start too.
		if err := st.Validate(); err != nil {
			return corrupt(path, fmt.Errorf("the state of service %q is not valid: %w", k, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return history.ForEach(func(service, v []byte) error {
		if v != nil {
			return corrupt(path, fmt.Errorf("the history bucket holds a value %q, not a service's bucket", service))
		}
		return history.Bucket(service).ForEach(func(k, v []byte) error {
			data, err := value(k, v)
			if err != nil {
				return corrupt(path, fmt.Errorf("history entry %s of service %q: %w", seqName(k), service, err))
			}
			var e rollout.HistoryEntry
			if err := json.Unmarshal(data, &e); err != nil {
				return corrupt(path, fmt.Errorf("history entry %s of service %q does not decode: %w", seqName(k), service, err))
			}
			return nil
		})
	})
}

// formatOf reads the meta bucket's format version.
func formatOf(meta *bolt.Bucket) (int, error) {
	raw := meta.Get(keyFormat)
	var version int
	if _, err := fmt.Sscanf(string(raw), "%d", &version); err != nil {
		return 0, fmt.Errorf("format version %q is not a number", raw)
	}
	return version, nil
}

// seqName prints a history key: its sequence number, or the raw bytes of a
// key that is not one.
func seqName(k []byte) string {
	if len(k) == 8 {
		return fmt.Sprint(binary.BigEndian.Uint64(k))
	}
	return fmt.Sprintf("%q", k)
}

func corrupt(path string, cause error) error {
	return fmt.Errorf("%w: store %s cannot be read (%v); it is not a Switchyard state file or it is damaged. "+
		"Refusing to start with an empty store: restore the file from a backup, or move it away "+
		"to start afresh (the state and history of every service in it will be lost)", ErrCorrupt, path, cause)
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Save stores st as the service's state and appends history, in one fsynced
// transaction: after it returns, a crash cannot lose them, and a crash
// during it leaves the previous state and history intact.
func (s *Store) Save(ctx context.Context, service string, st rollout.State, history ...rollout.HistoryEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save state of %q: %w", service, err)
	}
	if service == "" {
		return errors.New("save state: empty service name")
	}
	// Encode outside the transaction, which holds the single writer lock.
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save state of %q: %w", service, err)
	}
	entries := make([][]byte, len(history))
	for i, h := range history {
		if entries[i], err = json.Marshal(h); err != nil {
			return fmt.Errorf("save history of %q: %w", service, err)
		}
	}
	err = s.update(func(tx *bolt.Tx) error {
		key := []byte(service)
		if err := tx.Bucket(bucketStates).Put(key, seal(key, state)); err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		hb, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(service))
		if err != nil {
			return err
		}
		for _, e := range entries {
			seq, err := hb.NextSequence()
			if err != nil {
				return err
			}
			key := seqKey(seq)
			if err := hb.Put(key, seal(key, e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state of %q: %w", service, err)
	}
	return nil
}

// Load returns the service's state, and false when none is stored.
func (s *Store) Load(ctx context.Context, service string) (rollout.State, bool, error) {
	if err := ctx.Err(); err != nil {
		return rollout.State{}, false, fmt.Errorf("load state of %q: %w", service, err)
	}
	var (
		st    rollout.State
		found bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		key := []byte(service)
		v := tx.Bucket(bucketStates).Get(key)
		if v == nil {
			return nil
		}
		found = true
		return decodeState(key, v, &st)
	})
	if err != nil {
		return rollout.State{}, false, fmt.Errorf("load state of %q from %s: %w", service, s.path, err)
	}
	return st, found, nil
}

// LoadAll returns the state of every service, by name.
func (s *Store) LoadAll(ctx context.Context) (map[string]rollout.State, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load states: %w", err)
	}
	out := make(map[string]rollout.State)
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStates).ForEach(func(k, v []byte) error {
			var st rollout.State
			if err := decodeState(k, v, &st); err != nil {
				return fmt.Errorf("state of %q: %w", k, err)
			}
			out[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load states from %s: %w", s.path, err)
	}
	return out, nil
}

// History returns the service's history, oldest first. limit > 0 returns
// only the newest limit entries (still oldest first); limit <= 0 returns
// all. A service with no history returns an empty slice.
func (s *Store) History(ctx context.Context, service string, limit int) ([]rollout.HistoryEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load history of %q: %w", service, err)
	}
	var out []rollout.HistoryEntry
	err := s.view(func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHistory).Bucket([]byte(service))
		if hb == nil {
			return nil
		}
		// Walk backwards from the newest so a small limit reads only
		// what it returns, then reverse.
		c := hb.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if limit > 0 && len(out) == limit {
				break
			}
			var e rollout.HistoryEntry
			data, err := unseal(k, v)
			if err == nil {
				err = json.Unmarshal(data, &e)
			}
			if err != nil {
				return fmt.Errorf("entry %s: %w", seqName(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load history of %q from %s: %w", service, s.path, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out == nil {
		out = []rollout.HistoryEntry{}
	}
	return out, nil
}

// Delete removes the service's state and history. Deleting a service that
// is not stored is not an error.
func (s *Store) Delete(ctx context.Context, service string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", service, err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketStates).Delete([]byte(service)); err != nil {
			return err
		}
		err := tx.Bucket(bucketHistory).DeleteBucket([]byte(service))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %q: %w", service, err)
	}
	return nil
}

// Close closes the file and releases its lock. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// decodeState checks, decodes and validates a stored state. Open checked
// every value already; this catches damage done to the file since.
func decodeState(key, v []byte, st *rollout.State) error {
	data, err := unseal(key, v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, st); err != nil {
		return err
	}
	return st.Validate()
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}
