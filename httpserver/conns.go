package httpserver

import (
	"net"
	"sync"
	"sync/atomic"

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
