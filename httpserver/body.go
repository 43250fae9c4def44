package httpserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// chunkSize is the unit a body of more than one chunk is read in, as it
// arrives; it is also what a request holds before its bytes arrive,
// whatever length it declares.
const chunkSize = 32 << 10

// chunks are reused: a body read in chunks is copied into one buffer of
// its size once it is all in, and its chunks go back here, so that reading
// a body leaves no garbage but the body itself.
var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// bodyReader reads request bodies into memory held against a Budget, and
// cuts off a client whose body arrives slower than a minimum rate.
type bodyReader struct {
	limit int64
	// minRate is the slowest body accepted, in bytes per second after
	// grace; 0 disables the check.
	minRate int64
	grace   time.Duration
	// readTimeout is the server's bound on a whole request, which a body
	// deadline never extends.
	readTimeout time.Duration
}

// bodyRead is the state of one body being read.
type bodyRead struct {
	br       bodyReader
	body     io.Reader
	rc       *http.ResponseController
	start    time.Time
	received int
}

// read reads the whole body of r into memory held by h, refusing more than
// the limit (413), an empty body (400), a body slower than the minimum rate
// (408) and one that finds no room in the budget in time (503). The body
// ends in a buffer from alloc(length) (make when alloc is nil); until it is
// all in, it is held in chunks as it arrives, so a request never holds
// more than a chunk beyond what it has sent.
func (br bodyReader) read(w http.ResponseWriter, r *http.Request, h *hold, alloc func(n int) []byte) (_ []byte, err error) {
	if r.ContentLength > br.limit {
		return nil, &InputError{Status: http.StatusRequestEntityTooLarge,
			Reason: fmt.Sprintf("body of %d bytes is over the limit of %d bytes", r.ContentLength, br.limit)}
	}
	if alloc == nil {
		alloc = func(n int) []byte { return make([]byte, n) }
	}
	rd := &bodyRead{br: br, body: http.MaxBytesReader(w, r.Body, br.limit), rc: http.NewResponseController(w), start: time.Now()}
	complete := false // the whole body is in
	defer func() {
		switch {
		case err != nil && !complete:
			// The request is refused: the server must not wait for the
			// rest of its body before answering.
			_ = rd.rc.SetReadDeadline(time.Now())
		case br.minRate > 0:
			// The server's own read deadline applies again once the
			// body is in: a deadline that passed while the request is
			// stored would cancel it.
			_ = rd.rc.SetReadDeadline(rd.start.Add(br.readTimeout))
		}
	}()

	want := int(r.ContentLength) // -1 when unknown
	if want >= 0 && want <= chunkSize {
		// A small body of known length is read straight into its buffer.
		if err := h.grow(r.Context(), int64(want)); err != nil {
			return nil, budgetError(err)
		}
		b := alloc(want)
		n, _, err := rd.fill(b)
		if err != nil {
			return nil, err
		}
		complete = true
		if n < want {
			return nil, &InputError{Status: http.StatusRequestTimeout,
				Reason: fmt.Sprintf("reading body: %v after %d of %d bytes", io.ErrUnexpectedEOF, n, want)}
		}
		if n == 0 {
			return nil, badRequest("empty body: send a profile")
		}
		return b, nil
	}

	var held []*[chunkSize]byte
	defer func() {
		for _, c := range held {
			chunks.Put(c)
		}
		h.shrink(int64(len(held)) * chunkSize)
	}()
	last := 0 // bytes in the last chunk
	for {
		if err := h.grow(r.Context(), chunkSize); err != nil {
			return nil, budgetError(err)
		}
		c := chunks.Get().(*[chunkSize]byte)
		held = append(held, c)
		n, eof, err := rd.fill(c[:])
		if err != nil {
			return nil, err
		}
		last = n
		if eof || (want >= 0 && rd.received == want) {
			break
		}
	}
	complete = true
	switch {
	case rd.received == 0:
		return nil, badRequest("empty body: send a profile")
	case want > 0 && rd.received < want:
		return nil, &InputError{Status: http.StatusRequestTimeout,
			Reason: fmt.Sprintf("reading body: %v after %d of %d bytes", io.ErrUnexpectedEOF, rd.received, want)}
	}
	if err := h.grow(r.Context(), int64(rd.received)); err != nil {
		return nil, budgetError(err)
	}
	b := alloc(rd.received)
	off := 0
	for i, c := range held {
		n := chunkSize
		if i == len(held)-1 {
			n = last
		}
		off += copy(b[off:], c[:n])
	}
	return b, nil
}

// fill reads into b until it is full or the body ends (eof), with a read
// deadline that moves with the bytes received when a minimum rate is set.
func (rd *bodyRead) fill(b []byte) (n int, eof bool, err error) {
	for n < len(b) {
		if rd.br.minRate > 0 {
			_ = rd.rc.SetReadDeadline(rd.deadline())
		}
		m, err := rd.body.Read(b[n:])
		n += m
		rd.received += m
		if errors.Is(err, io.EOF) {
			return n, true, nil
		}
		if err != nil {
			return n, false, rd.br.readError(err, rd.received)
		}
	}
	return n, false, nil
}

// deadline is when the next byte must have arrived: the grace, plus the
// time the bytes received so far allow at the minimum rate, and never past
// the server's read timeout.
func (rd *bodyRead) deadline() time.Time {
	d := rd.start.Add(rd.br.grace + time.Duration(float64(rd.received)/float64(rd.br.minRate)*float64(time.Second)))
	if end := rd.start.Add(rd.br.readTimeout); rd.br.readTimeout > 0 && d.After(end) {
		return end
	}
	return d
}

func (br bodyReader) readError(err error, received int) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return &InputError{Status: http.StatusRequestEntityTooLarge,
			Reason: fmt.Sprintf("body is over the limit of %d bytes", br.limit)}
	case br.minRate > 0 && (errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())):
		return &InputError{Status: http.StatusRequestTimeout,
			Reason: fmt.Sprintf("body arrived slower than %d bytes/s (--min-body-rate) after %d bytes", br.minRate, received)}
	default:
		return &InputError{Status: http.StatusRequestTimeout, Reason: "reading body: " + err.Error()}
	}
}

// budgetError is the answer to a request the budget had no room for.
func budgetError(err error) error {
	switch {
	case errors.Is(err, ErrBusy):
		return &InputError{Status: http.StatusServiceUnavailable, Reason: err.Error()}
	case errors.Is(err, ErrOverBudget):
		return &InputError{Status: http.StatusRequestEntityTooLarge, Reason: err.Error()}
	}
	return &InputError{Status: http.StatusRequestTimeout, Reason: "waiting for memory: " + err.Error()}
}
