// Package httpserver is pyrorelay's front door: the Pyroscope /ingest and
// Connect Push endpoints, health and metrics, with the limits a server
// facing many clients needs. It validates a request, turns it into a store
// entry, waits until the entry is durable for every destination, and only
// then answers. It never talks to a destination.
package httpserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/net/netutil"

	"github.com/pyrorelay/pyrorelay/logthrottle"
	"github.com/pyrorelay/pyrorelay/store"
)

const (
	tenantHeader   = "X-Scope-OrgID"
	endpointIngest = "ingest"
	endpointPush   = "push"
)

// Store is where accepted requests go: Put returns once e is durable in
// every named queue.
type Store interface {
	Put(ctx context.Context, e *store.Entry, queues []string) error
}

// healthReporter is a Store that can tell why it refuses writes (a file
// at its size cap, a full disk, a damaged page); /-/ready reports it.
type healthReporter interface {
	Health() error
}

// Config sets the server's limits and behaviour. Zero values take the
// defaults below.
type Config struct {
	// Name is the receiver's name: every metric the server registers
	// carries it as the label "receiver", and every log line as an
	// attribute, so that one registry can hold several servers. Empty
	// leaves both out (a lone server).
	Name string
	// Queues are the destination queues every accepted request goes to,
	// unless Router is set.
	Queues []string
	// Router, when set, chooses the queues of each request (or, for a
	// Push, of each series) by its labels and tenant, instead of Queues
	// (see route.go).
	Router            Router
	MaxBodySize       int64
	MaxConnections    int
	ReadTimeout       time.Duration
	ReadHeaderTimeout time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// TenantPassthrough stores the client's X-Scope-OrgID with the entry.
	TenantPassthrough bool
	// Auth, when set, requires valid credentials on every path but
	// /metrics and the health checks (see auth.go).
	Auth *Authenticator
	// ProtectMetrics requires credentials on /metrics and the health
	// checks too (with Auth).
	ProtectMetrics bool
	// TLS, when set, makes Serve speak TLS with this config (see package
	// tlsreload for one that reloads its certificate).
	TLS *tls.Config
	// MinBodyRate is the slowest a body may arrive, in bytes per second,
	// once BodyRateGrace has passed: a client trickling its body slower is
	// answered 408 and its connection closed, so it cannot hold a
	// connection slot for the whole ReadTimeout. Negative disables it.
	MinBodyRate int64
	// BodyRateGrace is how long a body may take before MinBodyRate
	// applies.
	BodyRateGrace time.Duration
	// MaxConcurrentStreams bounds the requests one HTTP/2 (h2c or TLS)
	// connection carries at once. Requests in progress over all
	// connections and streams are bounded by MaxConnections too.
	MaxConcurrentStreams int
}

// Defaults for Config fields left at zero.
const (
	// DefaultMaxBodySize is the Pyroscope server's default profile size
	// limit (-validation.max-profile-size-bytes).
	DefaultMaxBodySize       = 4 << 20
	DefaultMaxConnections    = 100
	DefaultReadTimeout       = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 1 << 20
	// LogRepeatInterval is how often a line of one kind is logged at
	// most; the repeats in between are counted on the next one.
	LogRepeatInterval = 10 * time.Second
	// DefaultMinBodyRate is slow enough for any client that can send a
	// profile within ReadTimeout.
	DefaultMinBodyRate          = 1 << 10
	DefaultBodyRateGrace        = 5 * time.Second
	DefaultMaxConcurrentStreams = 16
	// h2ReceiveBuffer bounds the request bytes an HTTP/2 connection
	// buffers before the handler reads them, outside the Budget: the flow
	// control window a client may fill without being read.
	h2ReceiveBuffer = 1 << 20
)

func (c Config) withDefaults() Config {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.MaxConcurrentStreams <= 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	setDur(&c.BodyRateGrace, DefaultBodyRateGrace)
	setDur(&c.ReadTimeout, DefaultReadTimeout)
	setDur(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	return c
}

// Server serves the relay's HTTP API.
type Server struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	metrics *metrics
	ready   func() bool
	feeds   func() map[string][]string
	handler http.Handler
	srv     *http.Server
	conns   *connCounter
	budget  *Budget
	// inFlight holds a token per request being read or stored, at most
	// MaxConnections, whichever connection or HTTP/2 stream it came on.
	inFlight chan struct{}
	bodies   bodyReader
}

// Options are a Server's collaborators; all but Store may be nil.
type Options struct {
	Store    Store
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// Ready reports whether the relay is ready to serve (store open,
	// forwarders running); nil means always.
	Ready func() bool
	// Status, if set, serves the admin API's GET /api/v1/queues.
	Status StatusSource
	// Feeds, if set, tells the admin API every destination of the relay
	// and the receivers that forward to it (destination -> receivers);
	// nil means this server's Queues are all there is. It is called per
	// request, so a config reload shows at once.
	Feeds func() map[string][]string
	// Reload, if set, serves POST /-/reload (admin.go).
	Reload func(context.Context) error
	// Export, if set, serves GET /api/v1/export (admin.go).
	Export http.Handler
	// Budget bounds the request bytes held in memory; servers of one
	// relay share one. Nil gives the server a budget of its own of
	// DefaultMaxRequestMemory, registered with Registry.
	Budget *Budget
}

// New returns a server for cfg.
func New(cfg Config, o Options) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, store: o.Store, log: o.Logger, ready: o.Ready, feeds: o.Feeds}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Clients can make every request fail the same way (a full disk, a
	// broken TLS handshake): one line per kind per interval, counted.
	s.log = slog.New(logthrottle.New(s.log.Handler(), LogRepeatInterval))
	if cfg.Name != "" {
		s.log = s.log.With("receiver", cfg.Name)
		if o.Registry != nil {
			o.Registry = prometheus.WrapRegistererWith(prometheus.Labels{"receiver": cfg.Name}, o.Registry)
		}
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	s.metrics = newMetrics(o.Registry)
	s.budget = o.Budget
	if s.budget == nil {
		s.budget = NewBudget(0, 0)
		if o.Registry != nil {
			s.budget.Register(o.Registry)
		}
	}
	s.inFlight = make(chan struct{}, cfg.MaxConnections)
	s.bodies = bodyReader{limit: cfg.MaxBodySize, minRate: max(cfg.MinBodyRate, 0),
		grace: cfg.BodyRateGrace, readTimeout: cfg.ReadTimeout}
	s.conns = newConnCounter(o.Registry, cfg.MaxConnections)
	gatherer := o.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}

	mux := http.NewServeMux()
	ingest := s.instrument(endpointIngest, s.admit(http.HandlerFunc(s.handleIngest)))
	mux.Handle("/ingest", ingest)
	mux.Handle("/pyroscope/ingest", ingest)
	path, push := pushv1connect.NewPusherServiceHandler(pushService{s},
		// The Push body reaches Connect decompressed already, within
		// the decoded-size limit (see pushbody.go).
		connect.WithReadMaxBytes(int(decodedLimit(cfg.MaxBodySize))),
		// The answer is an empty message: gzipping it for a client that
		// accepts gzip costs a fresh compressor state per request to send
		// more bytes.
		connect.WithCompressMinBytes(1024))
	mux.Handle(path, s.instrument(endpointPush, s.admit(s.decodePush(push))))
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.routeAdmin(mux, o)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if h, ok := s.store.(healthReporter); ok {
			if err := h.Health(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "OK\n")
	})
	s.handler = mux
	if cfg.Auth != nil {
		s.handler = s.requireAuth(mux, o.Registry)
	}

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	// gRPC clients speak HTTP/2 without TLS (h2c) to a plain listener.
	protocols.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:           s.handler,
		TLSConfig:         cfg.TLS,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         protocols,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          cfg.MaxConcurrentStreams,
			MaxReceiveBufferPerConnection: h2ReceiveBuffer,
			MaxReceiveBufferPerStream:     h2ReceiveBuffer,
		},
	}
	return s
}

// Handler is the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts connections on ln, at most MaxConnections at once, until
// Shutdown, speaking TLS when Config.TLS is set. It returns
// http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	// Counted under the TLS listener ServeTLS adds, so the count is of
	// TCP connections and http.Server still sees *tls.Conn.
	ln = s.conns.wrap(netutil.LimitListener(ln, s.cfg.MaxConnections))
	if s.cfg.TLS != nil {
		// The certificate comes from the config (GetCertificate or
		// GetConfigForClient), so no file names here; ServeTLS offers h2
		// by ALPN, which gRPC clients need.
		return s.srv.ServeTLS(ln, "", "")
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting, then waits for requests in progress (and so for
// their commits) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &InputError{Status: http.StatusMethodNotAllowed, Reason: r.Method + " is not allowed: POST a profile"})
		return
	}
	contentType := r.Header.Get("Content-Type")
	query := r.URL.Query()
	if err := ValidateIngest(query, contentType); err != nil {
		writeError(w, err)
		return
	}
	e := &store.Entry{
		Kind:            store.KindIngest,
		ReceivedAt:      time.Now(),
		Query:           r.URL.RawQuery,
		ContentType:     contentType,
		ContentEncoding: r.Header.Get("Content-Encoding"),
	}
	if s.cfg.TenantPassthrough {
		e.Tenant = r.Header.Get(tenantHeader)
		if e.Tenant != "" {
			if err := ValidateTenant(e.Tenant); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	// The entry is complete but for its body, so the body can be read
	// straight into the record the store will write.
	h := s.budget.newHold()
	defer h.release()
	body, err := s.bodies.read(w, r, h, e.NewBody)
	if err != nil {
		writeError(w, err)
		return
	}
	e.Body = body
	s.metrics.bytes.WithLabelValues(endpointIngest).Add(float64(len(body)))
	queues := s.ingestQueues(query.Get("name"), r.Header.Get(tenantHeader))
	if err := s.put(r.Context(), e, queues); err != nil {
		writeError(w, &InputError{Status: errStatusStore(err), Reason: err.Error()})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// put stores e in queues and logs what went wrong.
func (s *Server) put(ctx context.Context, e *store.Entry, queues []string) error {
	if err := s.store.Put(ctx, e, queues); err != nil {
		s.log.Error("store request", "kind", e.Kind, "bytes", len(e.Body), "err", err)
		return fmt.Errorf("not stored: %w", err)
	}
	return nil
}

// errStatusStore is the status for a request the store could not keep: the
// client should retry it later, here or elsewhere.
func errStatusStore(err error) int {
	switch {
	case errors.Is(err, store.ErrFull):
		return http.StatusTooManyRequests
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, berrors.ErrMaxSizeReached):
		return http.StatusInsufficientStorage
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusRequestTimeout
	default:
		return http.StatusServiceUnavailable
	}
}

// writeError answers with the status and a one-line JSON reason, in the
// shape the Pyroscope server uses.
func writeError(w http.ResponseWriter, err error) {
	status := errStatus(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if retriable(status) {
		w.Header().Set("Retry-After", "10")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{codeName(status), err.Error()})
}

// retriable reports whether a client should retry a request answered with
// status later; such answers carry Retry-After.
func retriable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusInsufficientStorage
}

func codeName(status int) string {
	switch status {
	case 400:
		return "invalid_argument"
	case 401:
		return "unauthenticated"
	case 405:
		return "method_not_allowed"
	case 408:
		return "deadline_exceeded"
	case 413:
		return "payload_too_large"
	case 429:
		return "resource_exhausted"
	case 503, 507:
		return "unavailable"
	default:
		return strconv.Itoa(status)
	}
}
