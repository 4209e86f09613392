package accesslog

import (
	"bytes"
	"errors"
)

// line is one access log line in LogFormat, parsed. Its byte slices alias
// the line's bytes.
type line struct {
	msec     int64  // $msec in milliseconds
	upstream []byte // $proxy_host
	status   int    // $status
	reqTime  float64
	attempts []attempt // none when $upstream_addr is "-"
}

// attempt is one entry of nginx's upstream lists.
type attempt struct {
	addr   []byte  // "10.0.0.1:80", the group's name, or empty
	status int     // 0 for "-"
	time   float64 // seconds; 0 for "-"
}

// fields is the number of tab-separated fields of LogFormat.
const fields = 7

// maxAttempts bounds the attempts a line may list: nginx's retries are
// bounded by the group's servers and proxy_next_upstream_tries; a longer
// list is not a line nginx wrote in LogFormat.
const maxAttempts = 64

var (
	errFields   = errors.New("not 7 tab-separated fields")
	errMsec     = errors.New("$msec is not a time")
	errUpstream = errors.New("$proxy_host is empty")
	errStatus   = errors.New("$status is not a status")
	errReqTime  = errors.New("$request_time is not a duration")
	errLists    = errors.New("upstream lists do not match")
	errAttempt  = errors.New("upstream attempt is not status and duration")
)

// parseLine parses b (without its newline) into l, reusing l's attempts.
func parseLine(b []byte, l *line) error {
	var f [fields][]byte
	for i := range fields - 1 {
		j := bytes.IndexByte(b, '\t')
		if j < 0 {
			return errFields
		}
		f[i], b = b[:j], b[j+1:]
	}
	if bytes.IndexByte(b, '\t') >= 0 {
		return errFields
	}
	f[fields-1] = bytes.TrimSuffix(b, []byte{'\r'})

	secs, ok := decimal(f[0])
	if !ok || secs < 1 || secs > 1e11 {
		return errMsec
	}
	l.msec = int64(secs*1000 + 0.5)
	if len(f[1]) == 0 {
		return errUpstream
	}
	l.upstream = f[1]
	st, ok := status(f[2])
	if !ok {
		return errStatus
	}
	l.status = st
	if l.reqTime, ok = decimal(f[3]); !ok {
		return errReqTime
	}

	l.attempts = l.attempts[:0]
	addrs, statuses, times := f[4], f[5], f[6]
	if string(addrs) == "-" {
		return nil // no upstream reached; the other two are "-" too
	}
	for {
		a, restA, moreA := nextItem(addrs)
		s, restS, moreS := nextItem(statuses)
		t, restT, moreT := nextItem(times)
		if moreA != moreS || moreA != moreT {
			return errLists
		}
		var at attempt
		at.addr = a
		if string(s) != "-" {
			if at.status, ok = status(s); !ok {
				return errAttempt
			}
		}
		if string(t) != "-" {
			if at.time, ok = decimal(t); !ok {
				return errAttempt
			}
		}
		if len(l.attempts) == maxAttempts {
			return errLists
		}
		l.attempts = append(l.attempts, at)
		if !moreA {
			return nil
		}
		addrs, statuses, times = restA, restS, restT
	}
}

// nextItem splits the first item off one of nginx's upstream lists: items
// of one group are separated by ", ", groups (internal redirects) by " : ".
// more reports whether another item follows.
func nextItem(b []byte) (item, rest []byte, more bool) {
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == ',' && i+1 < len(b) && b[i+1] == ' ':
			return b[:i], b[i+2:], true
		case b[i] == ' ' && i+2 < len(b) && b[i+1] == ':' && b[i+2] == ' ':
			return b[:i], b[i+3:], true
		}
	}
	return b, nil, false
}

// decimal parses digits with an optional fraction ("1700000000.123",
// "0.004"), nothing else: no sign, exponent, NaN or Inf.
func decimal(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 32 {
		return 0, false
	}
	var v float64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + float64(b[i]-'0')
	}
	if i == 0 {
		return 0, false
	}
	if i == len(b) {
		return v, true
	}
	if b[i] != '.' || i == len(b)-1 {
		return 0, false
	}
	scale := 0.1
	for i++; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return 0, false
		}
		v += float64(b[i]-'0') * scale
		scale /= 10
	}
	return v, true
}

// status parses a three-digit status code.
func status(b []byte) (int, bool) {
	if len(b) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
