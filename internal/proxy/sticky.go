package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// A sticky cookie is base64url(id[16] | expiry unix seconds[8] | mac[16]),
// where mac is HMAC-SHA256 over the service name, id and expiry, truncated to
// 128 bits. The id is random, so its first 8 bytes are already a uniform
// hash; the version is chosen by comparing that hash's bucket with the
// canary weight, so raising the weight only moves stable users to canary.
const (
	stickyIDLen  = 16
	stickyExpLen = 8
	stickyMACLen = 16
	stickyRawLen = stickyIDLen + stickyExpLen + stickyMACLen
	stickyBucket = 10000
)

var stickyEncoding = base64.RawURLEncoding.Strict()

// stickyConfig holds a service's sticky-session settings and a pool of HMAC
// states (hmac.New allocates several objects; pooling keeps the hot path lean).
type stickyConfig struct {
	cookie string
	ttl    time.Duration
	prefix []byte // service name and a NUL: a cookie is only valid for its service
	macs   sync.Pool
}

// macState is a pooled HMAC with scratch space, so signing and verifying
// allocate nothing (slices passed to hash.Hash methods escape).
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
	raw [stickyRawLen]byte
	src [64]byte
}

func newStickyConfig(cookie string, ttl time.Duration, service string, key []byte) *stickyConfig {
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	k := append([]byte(nil), key...)
	sc := &stickyConfig{cookie: cookie, ttl: ttl, prefix: append([]byte(service), 0)}
	sc.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k)} }
	return sc
}

// sign fills the MAC part of ms.raw from its id and expiry.
func (sc *stickyConfig) sign(ms *macState) {
	ms.h.Reset()
	ms.h.Write(sc.prefix)
	ms.h.Write(ms.raw[:stickyIDLen+stickyExpLen])
	ms.h.Sum(ms.sum[:0])
}

// encode signs an id and expiry into a cookie value.
func (sc *stickyConfig) encode(id [stickyIDLen]byte, exp int64) string {
	ms := sc.macs.Get().(*macState)
	defer sc.macs.Put(ms)
	copy(ms.raw[:], id[:])
	binary.BigEndian.PutUint64(ms.raw[stickyIDLen:], uint64(exp))
	sc.sign(ms)
	copy(ms.raw[stickyIDLen+stickyExpLen:], ms.sum[:stickyMACLen])
	return stickyEncoding.EncodeToString(ms.raw[:])
}

// decode verifies a cookie value. It returns ok=false for anything forged,
// tampered with, malformed or expired at now (unix seconds).
func (sc *stickyConfig) decode(v string, now int64) (id [stickyIDLen]byte, exp int64, ok bool) {
	if stickyEncoding.EncodedLen(stickyRawLen) != len(v) {
		return id, 0, false
	}
	ms := sc.macs.Get().(*macState)
	defer sc.macs.Put(ms)
	n := copy(ms.src[:], v)
	dn, err := stickyEncoding.Decode(ms.raw[:], ms.src[:n])
	if err != nil || dn != stickyRawLen {
		return id, 0, false
	}
	sc.sign(ms)
	if !hmac.Equal(ms.sum[:stickyMACLen], ms.raw[stickyIDLen+stickyExpLen:]) {
		return id, 0, false
	}
	exp = int64(binary.BigEndian.Uint64(ms.raw[stickyIDLen:]))
	if exp <= now {
		return id, 0, false
	}
	copy(id[:], ms.raw[:stickyIDLen])
	return id, exp, true
}

// newStickyID returns a random client id.
func newStickyID() [stickyIDLen]byte {
	var id [stickyIDLen]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on supported platforms
	return id
}

// bucketOf maps a client id to one of 10,000 buckets, stably.
func bucketOf(id [stickyIDLen]byte) int {
	return int(binary.BigEndian.Uint64(id[:8]) % stickyBucket)
}

// stickyCanary reports whether a client in bucket b goes to the canary at
// canaryWeight percent: the lowest canaryWeight% of buckets do, so a higher
// weight is a superset of a lower one.
func stickyCanary(b, canaryWeight int) bool {
	return b < canaryWeight*(stickyBucket/100)
}
