package proxy

import (
	"bufio"
	"bytes"
	"io"
)

// fastStream is a streamed response body: fasthttp reads it while writing
// the response and closes it at the end, which finishes the request.
type fastStream fastReq

func (s *fastStream) Read(b []byte) (int, error) {
	f := (*fastReq)(s)
	if f.body == nil || f.eof {
		// fasthttp reads again after data that came with io.EOF.
		return 0, io.EOF
	}
	n, err := f.body.Read(b)
	if err == nil && f.body == &f.lim && f.lim.N == 0 {
		// fasthttp stops reading a known length once it has it all.
		err = io.EOF
	}
	if err == io.EOF {
		if f.chunked != nil {
			err = skipTrailers(f.chunked)
			if err == nil {
				err = io.EOF
			}
		}
		if err == io.EOF {
			f.eof = true
			return n, io.EOF
		}
	}
	if err != nil {
		// The target broke the response after its header, as when
		// ReverseProxy aborts the handler.
		f.code, f.failed = brokenOutcome(f.code, f.clientGone())
	}
	return n, err
}

// Close implements io.Closer; fasthttp calls it once the response is
// written or has failed.
func (s *fastStream) Close() error {
	f := (*fastReq)(s)
	if f.pc == nil {
		return nil
	}
	f.unwatch()
	pc := f.pc
	f.pc, f.body, f.chunked = nil, nil, nil
	if f.eof {
		f.p.releaseUp(f, pc, f.reuse)
	} else {
		if !f.failed && f.code != StatusClientClosedRequest {
			// The client stopped reading (it went away or the write failed).
			f.code = StatusClientClosedRequest
		}
		f.p.fast.drop(pc, nil)
	}
	f.finish()
	return nil
}

// skipTrailers reads the trailer section after a chunked body's last chunk.
func skipTrailers(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
