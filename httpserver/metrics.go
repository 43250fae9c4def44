package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_requests_received_total",
			Help: "Requests received, by endpoint (ingest, push) and HTTP status code.",
		}, []string{"endpoint", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_received_bytes_total",
			Help: "Body bytes of accepted-for-storage requests, by endpoint.",
		}, []string{"endpoint"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pyrorelay_request_duration_seconds",
			Help:    "Time to answer a request, durable commit included, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.duration)
	}
	return m
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// trailers for gRPC).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrument(endpoint string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if st, ok := grpcStatus(w.Header()); ok {
			sw.status = st
		}
		s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
}

// grpcStatus reads the outcome of a gRPC call, which travels in the
// Grpc-Status trailer (or header, for trailers-only answers) under HTTP 200,
// and maps it to the HTTP status Connect would have used, so that metrics
// count gRPC failures as failures. gRPC-Web puts its trailers in the body
// and is counted by its HTTP status.
func grpcStatus(h http.Header) (int, bool) {
	v := h.Get("Grpc-Status")
	if v == "" {
		v = h.Get(http.TrailerPrefix + "Grpc-Status")
	}
	if v == "" {
		return 0, false
	}
	code, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	switch code {
	case 0:
		return http.StatusOK, true
	case 1: // canceled
		return 499, true
	case 3, 9, 11: // invalid_argument, failed_precondition, out_of_range
		return http.StatusBadRequest, true
	case 4: // deadline_exceeded
		return http.StatusGatewayTimeout, true
	case 5: // not_found
		return http.StatusNotFound, true
	case 6, 10: // already_exists, aborted
		return http.StatusConflict, true
	case 7: // permission_denied
		return http.StatusForbidden, true
	case 8: // resource_exhausted
		return http.StatusTooManyRequests, true
	case 12: // unimplemented
		return http.StatusNotImplemented, true
	case 14: // unavailable
		return http.StatusServiceUnavailable, true
	case 16: // unauthenticated
		return http.StatusUnauthorized, true
	default: // unknown, internal, data_loss
		return http.StatusInternalServerError, true
	}
}
