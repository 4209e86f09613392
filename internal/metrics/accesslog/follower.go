package accesslog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/spec"
)

// Defaults of Options.
const (
	DefaultPoll         = 200 * time.Millisecond
	DefaultGrace        = 500 * time.Millisecond
	DefaultStaleAfter   = 5 * time.Second
	DefaultDrainIdle    = 30 * time.Second
	DefaultResolveEvery = 30 * time.Second
	DefaultMaxLine      = 16 << 10
)

const (
	// readChunk is what one read asks for.
	readChunk = 64 << 10
	// maxReadPerPoll bounds one poll's reading of a file, so that a huge
	// backlog is read over several polls (each advancing nothing until the
	// end is reached) instead of one that never ends under heavy writing.
	maxReadPerPoll = 64 << 20
	// tailLen is how many bytes before the read offset are compared with
	// what was read there, to see a file truncated and written again past
	// the offset between two polls.
	tailLen = 256
	// resolveTimeout bounds one host name lookup.
	resolveTimeout = 2 * time.Second
	// warnEvery spaces the warnings about malformed lines.
	warnEvery = time.Minute
)

// ErrStale is returned (wrapped) by Window and Seconds when the log has not
// been read to its end for Options.StaleAfter: no evidence either way.
var ErrStale = errors.New("access log is not being read")

// errFuture is a line whose time is ahead of the clock.
var errFuture = errors.New("$msec is ahead of the clock")

// Options configure a Follower; a zero field takes its default.
type Options struct {
	Logger *slog.Logger
	// Poll is how often the file is read (DefaultPoll).
	Poll time.Duration
	// Grace is how long after a second ends its lines may still arrive
	// (DefaultGrace); a line later than that is dropped as late.
	Grace time.Duration
	// StaleAfter is how long without reading the file to its end makes
	// Window and Seconds fail with ErrStale (DefaultStaleAfter). Keep it
	// at a few seconds: the ring holds 8 s of seconds beyond the 120 it
	// hands out, for those being filled meanwhile.
	StaleAfter time.Duration
	// DrainIdle is how long a rotated file is still read after it last
	// grew (DefaultDrainIdle): nginx writes to it until it reopens.
	DrainIdle time.Duration
	// ResolveEvery is how often targets named by host name are looked up
	// again (DefaultResolveEvery).
	ResolveEvery time.Duration
	// MaxLine bounds a line (DefaultMaxLine bytes); a longer one is
	// malformed.
	MaxLine int
	// Resolver looks host names up (net.DefaultResolver).
	Resolver *net.Resolver
	// Now is the clock (time.Now); tests set it.
	Now func() time.Time
}

// Stats are a Follower's counters since New.
type Stats struct {
	// Lines is every complete line read, malformed ones included.
	Lines int64
	// Counted is the lines charged to at least one version.
	Counted int64
	// Malformed is the lines that did not parse, were longer than
	// MaxLine, had a time ahead of the clock, or were cut short (a file
	// closed or truncated after a partial line).
	Malformed int64
	// Late is the lines of a second already completed.
	Late int64
	// Unknown is the lines of a followed service with an attempt at an
	// address no version of it has.
	Unknown int64
	// Ignored is the lines that are no version's request: no upstream
	// attempt, only the group's name (no live upstreams), or a $proxy_host
	// no followed service has.
	Ignored int64
	// Reopens is how many times a file at the path was opened after the
	// first: rotations, and a file appearing after it was missing.
	Reopens int64
	// Truncations is how many times the file was truncated in place.
	Truncations int64
	// Through is the last completed second (Unix), 0 before the first.
	Through int64
	// CaughtUp is when the last poll that read every file to its end
	// began; zero before the first.
	CaughtUp time.Time
	// Err is why the last poll did not read to the end, or "".
	Err string
}

// Follower follows one nginx access log in LogFormat and keeps every
// followed version's one-second windows. Create it with New, feed it the
// versions' targets with SetVersion and RemoveVersion, and run it with Run.
// Its methods are safe for concurrent use.
type Follower struct {
	path string
	opt  Options
	log  *slog.Logger
	lb   *metrics.LatencyBuckets
	prom *collector

	mu         sync.Mutex
	services   map[string]*service
	byUpstream map[string]*service
	seq        int64
	through    int64
	caughtUp   time.Time
	lastErr    error
	st         Stats
	resolveNow bool
	warnedAt   time.Time
	unwarned   int64 // malformed lines since the last warning
	ln         line
	charges    []charge

	// The reader's state, owned by the goroutine in Run.
	cur, old    *file
	started     bool
	buf         []byte
	nextResolve time.Time
	loggedErr   string

	runMu     sync.Mutex         // held by Run; Close takes it to wait for Run
	cancelRun context.CancelFunc // Run's context's, under mu
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ metrics.Source       = (*Follower)(nil)
	_ metrics.SecondSource = (*Follower)(nil)
)

// service is one followed service.
type service struct {
	name      string
	upstreams []string // $proxy_host values set by SetUpstreams; none: the name
	versions  map[string]*ver
	byAddr    map[string]*ver
}

// ver is one version of a service, with its targets.
type ver struct {
	name     string
	seq      int64      // SetVersion order: a later version wins a shared address
	addrs    []string   // IP:port as nginx logs them
	names    []hostPort // targets named by host name
	resolved []string   // what names resolved to, as IP:port
	ring     *ring
}

type hostPort struct{ host, port string }

// charge is what one line charges to one version.
type charge struct {
	ver    *ver
	time   float64 // seconds of its attempts
	failed bool    // one of its attempts had a 5xx status
	final  bool    // it had the last attempt
}

// New returns a Follower of the access log at path, which need not exist
// yet.
func New(path string, opt Options) *Follower {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	if opt.Grace <= 0 {
		opt.Grace = DefaultGrace
	}
	if opt.StaleAfter <= 0 {
		opt.StaleAfter = DefaultStaleAfter
	}
	if opt.DrainIdle <= 0 {
		opt.DrainIdle = DefaultDrainIdle
	}
	if opt.ResolveEvery <= 0 {
		opt.ResolveEvery = DefaultResolveEvery
	}
	if opt.MaxLine <= 0 {
		opt.MaxLine = DefaultMaxLine
	}
	if opt.Resolver == nil {
		opt.Resolver = net.DefaultResolver
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	f := &Follower{
		path: path, opt: opt, log: opt.Logger.With("path", path),
		lb:         metrics.NewLatencyBuckets(),
		services:   make(map[string]*service),
		byUpstream: make(map[string]*service),
		buf:        make([]byte, readChunk),
		done:       make(chan struct{}),
	}
	f.prom = newCollector(f)
	return f
}

// Path is the file followed.
func (f *Follower) Path() string { return f.path }

// SetVersion sets the targets of a version of service (host:port, with an
// optional scheme, as spec.ParseTarget reads them), replacing any it had:
// a line's attempts at them are the version's. A version's windows are
// kept across calls. It has runner.Targets' signature, so the daemon can
// call it beside the router's.
func (f *Follower) SetVersion(service, version string, targets []string) error {
	var addrs []string
	var names []hostPort
	for _, t := range targets {
		pt, err := spec.ParseTarget(t)
		if err != nil {
			return fmt.Errorf("access log: version %q of %q: %w", version, service, err)
		}
		host, port, err := net.SplitHostPort(pt.Host)
		if err != nil {
			return fmt.Errorf("access log: version %q of %q: target %q: %w", version, service, t, err)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			p, _ := strconv.ParseUint(port, 10, 16) // ParseTarget checked it
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(p)).String())
			continue
		}
		names = append(names, hostPort{host, port})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.serviceLocked(service)
	v := s.versions[version]
	if v == nil {
		v = &ver{name: version, ring: newRing(f.lb)}
		s.versions[version] = v
	}
	f.seq++
	v.seq, v.addrs, v.names, v.resolved = f.seq, addrs, names, nil
	if len(names) > 0 {
		f.resolveNow = true
	}
	s.rebuild()
	return nil
}

// RemoveVersion forgets a version of service: its targets and its windows.
// Removing an unknown one is not an error.
func (f *Follower) RemoveVersion(service, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.services[service]; s != nil {
		delete(s.versions, version)
		s.rebuild()
	}
	return nil
}

// SetUpstreams names the nginx upstream groups ($proxy_host) whose lines
// are service's; without names, the service's own name (the default). A
// name may belong to one service only.
func (f *Follower) SetUpstreams(service string, names ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		if o := f.byUpstream[n]; o != nil && o.name != service && slices.Contains(o.upstreams, n) {
			return fmt.Errorf("access log: upstream %q is already service %q's", n, o.name)
		}
	}
	f.serviceLocked(service).upstreams = slices.Clone(names)
	f.rebuildUpstreamsLocked()
	return nil
}

func (f *Follower) serviceLocked(name string) *service {
	s := f.services[name]
	if s == nil {
		s = &service{name: name, versions: make(map[string]*ver), byAddr: map[string]*ver{}}
		f.services[name] = s
		f.rebuildUpstreamsLocked()
	}
	return s
}

// rebuildUpstreamsLocked maps $proxy_host values to services: services'
// own names first, then the names set by SetUpstreams, which win.
func (f *Follower) rebuildUpstreamsLocked() {
	clear(f.byUpstream)
	for _, s := range f.services {
		if len(s.upstreams) == 0 {
			f.byUpstream[s.name] = s
		}
	}
	for _, s := range f.services {
		for _, n := range s.upstreams {
			f.byUpstream[n] = s
		}
	}
}

// rebuild maps the service's target addresses to versions; an address of
// two versions is the one set last.
func (s *service) rebuild() {
	vs := make([]*ver, 0, len(s.versions))
	for _, v := range s.versions {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b *ver) int { return cmp.Compare(a.seq, b.seq) })
	clear(s.byAddr)
	for _, v := range vs {
		for _, a := range v.addrs {
			s.byAddr[a] = v
		}
		for _, a := range v.resolved {
			s.byAddr[a] = v
		}
	}
}

// Run follows the file until ctx ends or Close is called: every Poll it
// reads what was written, follows rotations and completes seconds. Only
// one Run runs at a time.
func (f *Follower) Run(ctx context.Context) {
	f.runMu.Lock()
	defer f.runMu.Unlock()
	select {
	case <-f.done:
		return
	default:
	}
	// Close cancels what a poll waits for (host name lookups).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.cancelRun = cancel
	f.mu.Unlock()
	defer f.closeFiles()
	t := time.NewTicker(f.opt.Poll)
	defer t.Stop()
	for {
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-f.done:
			return
		case <-t.C:
		}
	}
}

// Close stops Run, waits for it to return and closes the files. It is
// idempotent.
func (f *Follower) Close() error {
	f.closeOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	if f.cancelRun != nil {
		f.cancelRun()
	}
	f.mu.Unlock()
	f.runMu.Lock()
	defer f.runMu.Unlock()
	f.closeFiles() // in case a test polled without Run
	return nil
}

// poll reads what was written since the last poll and, when every file was
// read to its end, completes the seconds that ended Grace before it began.
func (f *Follower) poll(ctx context.Context) {
	start := f.opt.Now()
	f.maybeResolve(ctx, start)
	err := f.follow(start)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if err != nil {
		if msg := err.Error(); msg != f.loggedErr {
			f.log.Warn("access log not read; retrying", "err", err)
			f.loggedErr = msg
		}
		return
	}
	if f.loggedErr != "" {
		f.log.Info("access log read again")
		f.loggedErr = ""
	}
	f.caughtUp = start
	// time.Time.Unix floors, so this is the last second that ended at
	// least Grace before start.
	f.through = max(f.through, start.Add(-f.opt.Grace).Unix()-1)
}

// follow opens a new file at the path when there is one and reads every
// open file; it returns nil when all were read to their end.
func (f *Follower) follow(start time.Time) error {
	first := !f.started
	f.started = true
	fi, statErr := os.Stat(f.path)
	switch {
	case statErr != nil:
		// Missing or unreadable: an open file (renamed or deleted, which
		// nginx still writes to until it reopens) is still read.
		if f.cur == nil {
			return fmt.Errorf("open access log: %w", statErr)
		}
	case f.cur == nil:
		if err := f.open(first); err != nil {
			return err
		}
	case !os.SameFile(f.cur.info, fi):
		// Rotated: read the old file to its end now, so that lines arrive
		// roughly in order, and keep reading it while nginx may write to it.
		if err := f.read(f.cur, start); err != nil {
			f.log.Warn("rotated access log not read to its end", "err", err)
		}
		if f.old != nil {
			_ = f.read(f.old, start)
			f.closeFile(f.old)
		}
		f.old, f.cur = f.cur, nil
		f.old.grew = start
		if err := f.open(false); err != nil {
			return err
		}
	}
	var err error
	if f.old != nil {
		err = f.read(f.old, start)
		if err == nil && start.Sub(f.old.grew) >= f.opt.DrainIdle {
			f.closeFile(f.old)
			f.old = nil
		}
	}
	if f.cur != nil {
		err = errors.Join(err, f.read(f.cur, start))
	}
	return err
}

// file is an open access log file and where its reading is.
type file struct {
	fd      *os.File
	info    os.FileInfo // identity, from the descriptor
	off     int64       // next byte to read
	pending []byte      // a line read without its newline yet
	skip    bool        // discarding up to the next newline (an overlong line)
	tail    [tailLen]byte
	ntail   int       // bytes of tail in use: the last ones before off
	grew    time.Time // when a poll last read something from it
}

// open opens the file at the path, at its end (its last complete line)
// when atEnd, else at its start.
func (f *Follower) open(atEnd bool) error {
	fd, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("open access log: %w", err)
	}
	info, err := fd.Stat()
	if err != nil {
		fd.Close()
		return fmt.Errorf("open access log: %w", err)
	}
	fl := &file{fd: fd, info: info}
	if atEnd {
		if err := f.seekEnd(fl); err != nil {
			fd.Close()
			return err
		}
	} else {
		f.mu.Lock()
		f.st.Reopens++
		f.mu.Unlock()
	}
	f.cur = fl
	f.log.Info("following access log", "offset", fl.off, "size", info.Size())
	return nil
}

// seekEnd starts reading fl after its last newline: a line being written
// is read whole once it ends.
func (f *Follower) seekEnd(fl *file) error {
	size := fl.info.Size()
	n := min(size, int64(f.opt.MaxLine)+1)
	b := make([]byte, n)
	if _, err := fl.fd.ReadAt(b, size-n); err != nil && err != io.EOF {
		return fmt.Errorf("read access log: %w", err)
	}
	switch i := bytes.LastIndexByte(b, '\n'); {
	case i >= 0:
		fl.off = size - n + int64(i) + 1
		fl.setTail(b[:i+1])
	case size <= int64(f.opt.MaxLine):
		fl.off = 0 // one line, still being written
	default:
		fl.off, fl.skip = size, true // in an overlong line
	}
	return nil
}

// setTail records b as the bytes before the read offset.
func (fl *file) setTail(b []byte) {
	if len(b) >= tailLen {
		copy(fl.tail[:], b[len(b)-tailLen:])
		fl.ntail = tailLen
		return
	}
	keep := min(fl.ntail, tailLen-len(b))
	copy(fl.tail[:], fl.tail[fl.ntail-keep:fl.ntail])
	copy(fl.tail[keep:], b)
	fl.ntail = keep + len(b)
}

// read reads fl from its offset to its end (at most maxReadPerPoll),
// accounting every complete line; it returns nil when it reached the end.
func (f *Follower) read(fl *file, start time.Time) error {
	info, err := fl.fd.Stat()
	if err != nil {
		return fmt.Errorf("read access log: %w", err)
	}
	switch size := info.Size(); {
	case size < fl.off:
		f.restart(fl)
	case size > fl.off && fl.ntail > 0:
		// Truncated and written past the offset again since the last poll:
		// the bytes before the offset are not those read there.
		var was [tailLen]byte
		n, err := fl.fd.ReadAt(was[:fl.ntail], fl.off-int64(fl.ntail))
		if err != nil && err != io.EOF {
			return fmt.Errorf("read access log: %w", err)
		}
		if n != fl.ntail || !bytes.Equal(was[:n], fl.tail[:fl.ntail]) {
			f.restart(fl)
		}
	}
	for total := 0; total < maxReadPerPoll; {
		n, err := fl.fd.ReadAt(f.buf, fl.off)
		if n > 0 {
			fl.off += int64(n)
			fl.setTail(f.buf[:n])
			fl.grew = start
			f.consume(fl, f.buf[:n])
			total += n
		}
		switch {
		case err == io.EOF || (err == nil && n == 0):
			return nil
		case err != nil:
			return fmt.Errorf("read access log: %w", err)
		}
	}
	return errors.New("read access log: more to read than one poll reads")
}

// restart reads fl again from its start: it was truncated in place.
func (f *Follower) restart(fl *file) {
	f.mu.Lock()
	f.st.Truncations++
	if len(fl.pending) > 0 && !fl.skip {
		f.st.Malformed++ // cut short
	}
	f.mu.Unlock()
	fl.off, fl.ntail, fl.pending, fl.skip = 0, 0, fl.pending[:0], false
	f.log.Info("access log truncated; reading it from its start")
}

// consume splits data into lines, keeping a partial last line, and
// accounts the complete ones.
func (f *Follower) consume(fl *file, data []byte) {
	now := f.opt.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			switch {
			case fl.skip:
			case len(fl.pending)+len(data) > f.opt.MaxLine:
				f.st.Lines++
				f.malformedLocked(fl.pending, errOverlong, now)
				fl.pending, fl.skip = fl.pending[:0], true
			default:
				fl.pending = append(fl.pending, data...)
			}
			return
		}
		b := data[:i]
		data = data[i+1:]
		if fl.skip { // the end of an overlong line, already counted
			fl.skip = false
			continue
		}
		if len(fl.pending) > 0 {
			fl.pending = append(fl.pending, b...)
			b = fl.pending
		}
		f.lineLocked(b, now)
		fl.pending = fl.pending[:0]
	}
}

// errOverlong is a line longer than MaxLine.
var errOverlong = errors.New("longer than the maximum line")

// lineLocked counts and accounts one complete line.
func (f *Follower) lineLocked(b []byte, now time.Time) {
	f.st.Lines++
	if len(b) > f.opt.MaxLine {
		f.malformedLocked(b, errOverlong, now)
		return
	}
	f.accountLocked(b, now)
}

// accountLocked charges one line to the versions it belongs to
// (the package documentation, "What counts").
func (f *Follower) accountLocked(b []byte, now time.Time) {
	l := &f.ln
	if err := parseLine(b, l); err != nil {
		f.malformedLocked(b, err, now)
		return
	}
	sec := l.msec / 1000
	if sec > now.Unix()+1 {
		f.malformedLocked(b, errFuture, now)
		return
	}
	s := f.byUpstream[string(l.upstream)]
	if s == nil || len(l.attempts) == 0 {
		f.st.Ignored++
		return
	}
	if sec <= f.through {
		f.st.Late++
		return
	}
	f.charges = f.charges[:0]
	unknown := false
	last := len(l.attempts) - 1
	for i, a := range l.attempts {
		v := s.byAddr[string(a.addr)]
		if v == nil {
			// An address (host:port, [v6]:port, unix:path) that is no
			// target of the service; the group's name is no address.
			if bytes.IndexByte(a.addr, ':') >= 0 {
				unknown = true
			}
			continue
		}
		c := f.chargeLocked(v)
		c.time += a.time
		c.failed = c.failed || a.status >= 500
		c.final = c.final || i == last
	}
	if unknown {
		f.st.Unknown++
	}
	if len(f.charges) == 0 {
		if !unknown {
			f.st.Ignored++
		}
		return
	}
	var others float64
	for _, c := range f.charges {
		if !c.final {
			others += c.time
		}
	}
	recorded := true
	for _, c := range f.charges {
		if c.final {
			recorded = c.ver.ring.record(sec, max(l.reqTime-others, 0), finalFailed(l)) && recorded
		} else {
			recorded = c.ver.ring.record(sec, c.time, c.failed) && recorded
		}
	}
	if !recorded { // older than the ring: a backlog read after a stall
		f.st.Late++
		return
	}
	f.st.Counted++
}

// finalFailed reports whether the final response of l is its version's
// failure: a 5xx from the target, or nginx's 502/504 for a target that
// failed; never when the client left (499).
func finalFailed(l *line) bool {
	if l.status == 499 {
		return false
	}
	code := l.attempts[len(l.attempts)-1].status
	if code == 0 {
		code = l.status
	}
	return code >= 500 || l.status == 502 || l.status == 504
}

func (f *Follower) chargeLocked(v *ver) *charge {
	for i := range f.charges {
		if f.charges[i].ver == v {
			return &f.charges[i]
		}
	}
	f.charges = append(f.charges, charge{ver: v})
	return &f.charges[len(f.charges)-1]
}

// malformedLocked counts a malformed line and warns about it, at most once
// every warnEvery.
func (f *Follower) malformedLocked(b []byte, why error, now time.Time) {
	f.st.Malformed++
	f.unwarned++
	if !f.warnedAt.IsZero() && now.Sub(f.warnedAt) < warnEvery {
		return
	}
	const show = 200
	if len(b) > show {
		b = b[:show]
	}
	f.log.Warn("malformed access log line skipped; is its log_format "+FormatName+"?",
		"why", why.Error(), "line", string(b), "malformed_since_last_warning", f.unwarned)
	f.warnedAt, f.unwarned = now, 0
}

// closeFile closes fl; a partial line left in it was cut short.
func (f *Follower) closeFile(fl *file) {
	if len(fl.pending) > 0 && !fl.skip {
		f.mu.Lock()
		f.st.Malformed++
		f.mu.Unlock()
	}
	_ = fl.fd.Close()
}

// closeFiles closes every open file; a later Run starts again at the end
// of the file.
func (f *Follower) closeFiles() {
	for _, fl := range []*file{f.old, f.cur} {
		if fl != nil {
			f.closeFile(fl)
		}
	}
	f.old, f.cur, f.started = nil, nil, false
}

// maybeResolve looks up the targets named by host name, when one was set
// since the last lookup or ResolveEvery passed.
func (f *Follower) maybeResolve(ctx context.Context, now time.Time) {
	type job struct {
		s   *service
		v   *ver
		seq int64
		hp  []hostPort
	}
	f.mu.Lock()
	var jobs []job
	if f.resolveNow || !now.Before(f.nextResolve) {
		for _, s := range f.services {
			for _, v := range s.versions {
				if len(v.names) > 0 {
					jobs = append(jobs, job{s, v, v.seq, v.names})
				}
			}
		}
		f.resolveNow = false
		f.nextResolve = now.Add(f.opt.ResolveEvery)
	}
	f.mu.Unlock()
	for _, j := range jobs {
		var addrs []string
		failed := false
		for _, hp := range j.hp {
			lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			ips, err := f.opt.Resolver.LookupNetIP(lctx, "ip", hp.host)
			cancel()
			if err != nil {
				f.log.Warn("target's host name not resolved; keeping what it resolved to before", "host", hp.host, "err", err)
				failed = true
				continue
			}
			p, _ := strconv.ParseUint(hp.port, 10, 16)
			for _, ip := range ips {
				addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(p)).String())
			}
		}
		f.mu.Lock()
		// Not set again meanwhile; a failed lookup keeps the last answer.
		if j.s.versions[j.v.name] == j.v && j.v.seq == j.seq && !(failed && len(j.v.resolved) > 0) {
			j.v.resolved = addrs
			j.s.rebuild()
		}
		f.mu.Unlock()
	}
}

// Stats returns the counters.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Through, st.CaughtUp = f.through, f.caughtUp
	if f.lastErr != nil {
		st.Err = f.lastErr.Error()
	}
	return st
}

// staleLocked returns an error wrapping ErrStale when the file has not
// been read to its end for StaleAfter.
func (f *Follower) staleLocked() error {
	why := ""
	if f.lastErr != nil {
		why = ": " + f.lastErr.Error()
	}
	if f.caughtUp.IsZero() {
		return fmt.Errorf("%s: %w: not read to its end yet%s", f.path, ErrStale, why)
	}
	if age := f.opt.Now().Sub(f.caughtUp); age > f.opt.StaleAfter {
		return fmt.Errorf("%s: %w: last read to its end %s ago%s", f.path, ErrStale, age.Round(time.Millisecond), why)
	}
	return nil
}

// Window implements metrics.Source: one version's requests, errors and
// latency over the last d of completed seconds (whole seconds, rounded up,
// at most 120 s), like the proxy's CompletedWindow. An unknown service or
// version has an empty sample. It fails, wrapping ErrStale, when the file
// is not being read.
func (f *Follower) Window(_ context.Context, service, version string, d time.Duration) (metrics.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.staleLocked(); err != nil {
		return metrics.Sample{}, err
	}
	out := metrics.Sample{Latency: f.lb.NewSketch()}
	if d <= 0 {
		return out, nil
	}
	n := min(int64((d+time.Second-1)/time.Second), keptSeconds)
	out.Since = time.Unix(f.through-n+1, 0)
	var r *ring
	if s := f.services[service]; s != nil {
		if v := s.versions[version]; v != nil {
			r = v.ring
		}
	}
	if r == nil {
		return out, nil
	}
	for sec := f.through - n + 1; sec <= f.through; sec++ {
		r.add(&out, sec)
	}
	return out, nil
}

// Seconds implements metrics.SecondSource: the completed seconds of each
// version after the Unix second after (at most the last 120), with one cut
// across the versions. Unknown services and versions have none. It fails,
// wrapping ErrStale, when the file is not being read.
func (f *Follower) Seconds(_ context.Context, service string, versions []string, after int64) (metrics.Seconds, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.staleLocked(); err != nil {
		return metrics.Seconds{}, err
	}
	out := metrics.Seconds{Through: f.through, By: make(map[string][]metrics.Second, len(versions))}
	s := f.services[service]
	if s == nil {
		return out, nil
	}
	from := max(after+1, f.through-keptSeconds+1)
	for _, name := range versions {
		v := s.versions[name]
		if v == nil {
			continue
		}
		for sec := from; sec <= f.through; sec++ {
			if w, ok := v.ring.second(sec); ok {
				out.By[name] = append(out.By[name], metrics.Second{Unix: sec, Sample: w})
			}
		}
	}
	return out, nil
}
