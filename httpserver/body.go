package httpserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// firstChunk is the buffer a body starts in: what a request holds before
// its bytes arrive, whatever length it declares.
const firstChunk = 32 << 10

// bodyReader reads request bodies into buffers held against a Budget, and
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

// read reads the whole body of r into memory held by h, refusing more than
// the limit (413), an empty body (400), a body slower than the minimum rate
// (408) and one that finds no room in the budget in time (503). A body of
// declared length ends in a buffer from alloc(length), grown to it as the
// bytes arrive; alloc may be nil.
func (br bodyReader) read(w http.ResponseWriter, r *http.Request, h *hold, alloc func(n int) []byte) (_ []byte, err error) {
	if r.ContentLength > br.limit {
		return nil, &InputError{Status: http.StatusRequestEntityTooLarge,
			Reason: fmt.Sprintf("body of %d bytes is over the limit of %d bytes", r.ContentLength, br.limit)}
	}
	if alloc == nil {
		alloc = func(n int) []byte { return make([]byte, n) }
	}
	start := time.Now()
	rc := http.NewResponseController(w)
	end := start.Add(br.readTimeout)
	deadline := func(received int) time.Time {
		d := start.Add(br.grace + time.Duration(float64(received)/float64(br.minRate)*float64(time.Second)))
		if br.readTimeout > 0 && d.After(end) {
			return end
		}
		return d
	}
	complete := false // the whole body is in
	defer func() {
		switch {
		case err != nil && !complete:
			// The request is refused: the server must not wait for the
			// rest of its body before answering.
			_ = rc.SetReadDeadline(time.Now())
		case br.minRate > 0:
			// The server's own read deadline applies again once the
			// body is in: a deadline that passed while the request is
			// stored would cancel it.
			_ = rc.SetReadDeadline(end)
		}
	}()
	body := http.MaxBytesReader(w, r.Body, br.limit)
	want := int(r.ContentLength) // -1 when unknown
	var b []byte
	for {
		if len(b) == cap(b) {
			if want >= 0 && len(b) == want {
				complete = true
				break
			}
			nb, err := br.grow(r, h, b, want, alloc)
			if err != nil {
				return nil, err
			}
			b = nb
		}
		if br.minRate > 0 {
			_ = rc.SetReadDeadline(deadline(len(b)))
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			complete = true
			if want > 0 && len(b) < want {
				return nil, &InputError{Status: http.StatusRequestTimeout,
					Reason: fmt.Sprintf("reading body: %v after %d of %d bytes", io.ErrUnexpectedEOF, len(b), want)}
			}
			break
		}
		if err != nil {
			return nil, br.readError(err, len(b))
		}
	}
	if len(b) == 0 {
		return nil, badRequest("empty body: send a profile")
	}
	if want < 0 {
		// A body of unknown length is moved into its own buffer of
		// the right size once it is all in.
		if err := h.grow(r.Context(), int64(len(b))); err != nil {
			return nil, budgetError(err)
		}
		out := alloc(len(b))
		copy(out, b)
		h.shrink(int64(cap(b)))
		b = out
	}
	return b, nil
}

// grow returns a buffer twice b's capacity (capped at want when known, at
// the limit otherwise) holding b's bytes, taking the room from h first and
// giving b's back after.
func (br bodyReader) grow(r *http.Request, h *hold, b []byte, want int, alloc func(int) []byte) ([]byte, error) {
	size := max(2*cap(b), firstChunk)
	if want >= 0 {
		size = min(size, want)
	} else {
		// One byte past the limit, so that MaxBytesReader can say the
		// body is over it.
		size = min(size, int(br.limit)+1)
	}
	if err := h.grow(r.Context(), int64(size)); err != nil {
		return nil, budgetError(err)
	}
	var nb []byte
	if want >= 0 && size == want {
		nb = alloc(size)[:len(b)]
	} else {
		nb = make([]byte, len(b), size)
	}
	copy(nb, b)
	h.shrink(int64(cap(b)))
	return nb, nil
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
	if errors.Is(err, ErrBusy) {
		return &InputError{Status: http.StatusServiceUnavailable, Reason: err.Error()}
	}
	return &InputError{Status: http.StatusRequestTimeout, Reason: "waiting for memory: " + err.Error()}
}
