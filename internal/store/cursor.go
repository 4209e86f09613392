package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/internal/rollout"
)

// bucketCursors holds how far each reader of the history (a notification
// channel) has got: the history is the outbox. Entries are persisted with
// the state before any action runs, so a reader that advances its cursor
// only after delivering loses none across a crash and delivers each at most
// twice (the one in flight when it died).
var bucketCursors = []byte("cursors")

// Record is a history entry with its sequence number.
type Record struct {
	Seq   uint64
	Entry rollout.HistoryEntry
}

// HistoryAfter returns up to max entries of a service's history after
// sequence number after, oldest first.
func (s *Store) HistoryAfter(ctx context.Context, service string, after uint64, max int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load history of %q: %w", service, err)
	}
	var out []Record
	err := s.view(func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHistory).Bucket([]byte(service))
		if hb == nil {
			return nil
		}
		c := hb.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			data, err := unseal(k, v)
			var e rollout.HistoryEntry
			if err == nil {
				err = json.Unmarshal(data, &e)
			}
			if err != nil {
				return fmt.Errorf("entry %s: %w", seqName(k), err)
			}
			out = append(out, Record{Seq: binary.BigEndian.Uint64(k), Entry: e})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load history of %q from %s: %w", service, s.path, err)
	}
	return out, nil
}

// LastSeq returns the sequence number of a service's newest history entry
// (0 when it has none).
func (s *Store) LastSeq(ctx context.Context, service string) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if hb := tx.Bucket(bucketHistory).Bucket([]byte(service)); hb != nil {
			if k, _ := hb.Cursor().Last(); k != nil {
				seq = binary.BigEndian.Uint64(k)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("last history entry of %q: %w", service, err)
	}
	return seq, ctx.Err()
}

// Cursor returns a reader's position, and false when it has none yet.
func (s *Store) Cursor(ctx context.Context, name string) (uint64, bool, error) {
	var (
		seq   uint64
		found bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(name))
		if v == nil {
			return nil
		}
		data, err := unseal([]byte(name), v)
		if err != nil {
			return err
		}
		if len(data) != 8 {
			return fmt.Errorf("cursor %q is %d bytes, want 8", name, len(data))
		}
		seq, found = binary.BigEndian.Uint64(data), true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("cursor %q in %s: %w", name, s.path, err)
	}
	return seq, found, ctx.Err()
}

// SetCursor records a reader's position, fsynced.
func (s *Store) SetCursor(ctx context.Context, name string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCursors)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), seal([]byte(name), seqKey(seq)))
	})
	if err != nil {
		return fmt.Errorf("set cursor %q: %w", name, err)
	}
	return nil
}
