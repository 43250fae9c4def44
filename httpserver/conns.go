package httpserver

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
)

// connCounter counts the client connections the server holds open, so an
// operator can see how close the relay is to --max-connections: at the
// limit, new clients wait in the kernel's listen backlog and their SDKs
// time out, which looks like a slow relay rather than a refusing one.
type connCounter struct {
	open atomic.Int64
}

// newConnCounter registers pyrorelay_http_connections and
// pyrorelay_http_connections_limit with reg (if not nil).
func newConnCounter(reg prometheus.Registerer, limit int) *connCounter {
	c := &connCounter{}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pyrorelay_http_connections",
				Help: "Client connections open now; at pyrorelay_http_connections_limit new ones wait in the listen backlog.",
			}, func() float64 { return float64(c.open.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pyrorelay_http_connections_limit",
				Help: "Most client connections served at once (--max-connections).",
			}, func() float64 { return float64(limit) }),
		)
	}
	return c
}

// wrap counts the connections ln accepts until each is closed. It must sit
// under any TLS listener, not over it: http.Server recognises a TLS
// connection by its type, which a wrapper would hide.
func (c *connCounter) wrap(ln net.Listener) net.Listener {
	return &countingListener{Listener: ln, c: c}
}

type countingListener struct {
	net.Listener
	c *connCounter
}

// Accept implements net.Listener.
func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.open.Add(1)
	return &countedConn{Conn: conn, c: l.c}, nil
}

// countedConn gives its count back on the first Close; http.Server may
// close a connection more than once.
type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

// Close implements net.Conn.
func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.c.open.Add(-1) })
	return err
}

// admit lets a request in while fewer than MaxConnections are in progress,
// over every connection and HTTP/2 stream: one HTTP/2 connection may carry
// many requests, and each holds memory and a store commit like a
// connection of its own. A request that finds no slot within the budget's
// wait is answered 503 with Retry-After.
func (s *Server) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
		default:
			t := time.NewTimer(s.budget.wait)
			select {
			case s.inFlight <- struct{}{}:
				t.Stop()
			case <-t.C:
				s.refuse(w, r, &InputError{Status: http.StatusServiceUnavailable,
					Reason: fmt.Sprintf("%d requests in progress (--max-connections): retry later", cap(s.inFlight))})
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		defer func() { <-s.inFlight }()
		next.ServeHTTP(w, r)
	})
}

// errorWriter writes errors in the framing of a Push client's protocol.
var errorWriter = connect.NewErrorWriter()

// refuse answers r with err, in the client's RPC framing on the Push
// path and as the relay's JSON error elsewhere.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err *InputError) {
	if isRPCPath(r.URL.Path) && errorWriter.IsSupported(r) {
		if retriable(err.Status) {
			w.Header().Set("Retry-After", "10")
		}
		_ = errorWriter.Write(w, r, connect.NewError(rpcCode(err.Status), err))
		return
	}
	writeError(w, err)
}

// rpcCode is the Connect code for a refusal with HTTP status st. A body
// over a limit is invalid_argument: resource_exhausted would tell SDKs to
// retry a request that can never fit.
func rpcCode(st int) connect.Code {
	switch st {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return connect.CodeInvalidArgument
	case http.StatusRequestTimeout:
		return connect.CodeDeadlineExceeded
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	default:
		return connectCode(st)
	}
}
