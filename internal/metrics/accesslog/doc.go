// Package accesslog is the metric source of services behind nginx: it
// follows nginx's access log, charges each request to the version whose
// target served it and keeps the same per-version one-second windows as the
// built-in proxy (internal/proxy/window.go), so the threshold checks and
// the sequential judge work without Prometheus. A Follower implements
// metrics.Source and metrics.SecondSource.
//
// # Configuring nginx
//
// LogFormat (this directive) must be defined in the http block, and the
// proxied locations of a followed service must log with it:
//
//	log_format switchyard '$msec\t$proxy_host\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time';
//	access_log /var/log/nginx/switchyard.log switchyard;
//
// without buffer= (a buffered log hands lines over late, and they are then
// dropped as late; see below). Fields are separated by tabs, which nginx's
// default escaping never lets through inside a value (it writes \x09), so
// a line splits unambiguously whatever the request was. The fields:
//
//	$msec                    when the request ended (Unix seconds, ms): the window it counts in
//	$proxy_host              the upstream group of proxy_pass http://NAME: which service
//	$status                  the status the client got
//	$request_time            the request's duration at nginx: its latency
//	$upstream_addr           each attempt's target, "10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80"
//	$upstream_status         each attempt's status, "502, 200"
//	$upstream_response_time  each attempt's duration, "0.001, 0.004"
//
// A service's lines are those whose $proxy_host is the service's name, or
// one of the names given with SetUpstreams (a router that renders one
// upstream group per version names them all). Its versions' targets come
// from SetVersion, with the targets of the spec (host:port, as
// spec.ParseTarget reads them); nginx logs the address it connected to, so
// a target named by host name is matched by the addresses the name
// resolves to (looked up by Run, again every ResolveEvery).
//
// # What counts
//
// The rule is the built-in proxy's (internal/proxy/outcome.go,
// docs/standalone.md "What counts against a version"), as far as an access
// log can tell:
//
//   - A request is charged to the version whose target produced the final
//     response (the last attempt of $upstream_addr), with the final
//     attempt's status (or $status when nginx logged none). It is an error
//     when that status is 5xx, or when nginx answered 502 or 504 itself (a
//     target that refused, reset or timed out). A client that left (499)
//     makes it a request of the version, with its latency, never an error.
//   - Its latency is $request_time, less the time its attempts at other
//     versions' targets took ($upstream_response_time): a canary that
//     times out before nginx retries on stable makes the canary slow, not
//     stable.
//   - nginx retries a failed attempt on another server of the group
//     (proxy_next_upstream), which may be another version's. Every other
//     version that had an attempt is charged one request too, an error
//     when one of its attempts had a 5xx status (502 for a refused or
//     reset connection, 504 for a timeout), with the time its attempts
//     took. Attempts at targets of one version count once, as in the
//     proxy, whose retries stay within the version.
//   - A line without an upstream attempt ("-": nginx answered itself, or
//     the client left before a target was chosen), an attempt that names
//     the upstream group instead of a target ("no live upstreams", the
//     proxy's 503 for want of a target) and a line of a service nobody
//     follows are nobody's request: counted as ignored.
//   - An attempt at an address that is no target of the service's versions
//     (a stale registration, a server nginx still has after a version was
//     removed) counts the line as unknown; the line's attempts at known
//     targets are still charged.
//
// An access log cannot tell a response the target broke after its header
// (the proxy counts it as an error): nginx logs the status it had sent.
//
// # Lag
//
// A second is complete, and handed out by Window and Seconds, once a poll
// that began at least Grace after the second ended has read every open
// file to its end: lines of workers that computed $msec a moment before
// writing still make it. A second is therefore handed out Grace to
// Grace + Poll after it ended (0.5-0.7 s with the defaults), where the
// proxy's CompletedWindow takes it at once: Window's newest second ended
// up to 1.7 s ago instead of up to 1 s. A line of a second already handed
// out is counted as late and dropped, so no second changes after it was
// read; a line more than a second ahead of the clock is malformed. A
// follower that has not read the file to its end for StaleAfter (file
// missing, unreadable, Run not running) answers Window and Seconds with an
// error wrapping ErrStale: the analysis waits rather than see silence.
// About 120 s of seconds are kept per version, whatever the traffic.
//
// # Rotation
//
// The file is polled (every Poll), which sees every kind of rotation the
// same way and needs no watcher; at one second's granularity, the few
// hundred milliseconds fsnotify would save do not matter.
//
//   - Renamed (logrotate's default, then nginx -s reopen or USR1): the old
//     file is read to its end, and kept open and read while nginx may still
//     write to it (until it has not grown for DrainIdle); the new file at
//     the path is read from its start.
//   - Truncated in place (copytruncate): a size below the read offset, or
//     bytes before the offset that changed, restart the read at 0. Lines
//     nginx wrote between logrotate's copy and its truncation are lost:
//     that is copytruncate's nature; prefer rename and reopen.
//   - Missing (not created yet, deleted): retried every poll, never fatal;
//     a file that appears is read from its start. A deleted file nginx
//     still writes to is read to its end through the open descriptor.
//
// When Run starts, an existing file is read from its end (its last
// complete line): the past is not in the windows. A line being written is
// kept until its newline; a line without one when its file is closed, a
// line longer than MaxLine and a line that does not parse are counted as
// malformed and skipped, never fatal.
package accesslog

// FormatName is the name of the log_format LogFormat defines.
const FormatName = "switchyard"

// LogFormat is the nginx directive defining the access log format the
// Follower reads (nginx turns \t into a tab inside a quoted string). The
// nginx router renders it in the http block and validates the rest of
// the configuration against it.
const LogFormat = `log_format ` + FormatName + ` '$msec\t$proxy_host\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time';`
