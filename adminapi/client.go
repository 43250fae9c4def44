package adminapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/httpserver"
)

// Client asks a running relay's admin API. Its errors name the flags
// (--url, --bearer-token-file, --ca-file) its fields come from.
type Client struct {
	// URL is the relay's base URL (its --listen address); it may carry
	// credentials for basic auth.
	URL string
	// TokenFile, if set, holds a bearer token to send.
	TokenFile string
	// CAFile, if set, holds the CA certificates to trust for https.
	CAFile string
}

// statusTimeout bounds asking for the status document.
const statusTimeout = 30 * time.Second

// Status asks the relay for its queues' status (GET /api/v1/status).
func (c Client) Status(ctx context.Context) (httpserver.QueuesStatus, error) {
	var st httpserver.QueuesStatus
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := c.Get(ctx, httpserver.StatusPath)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("the relay at %s sent a status that does not decode: %w", RedactURL(c.URL), err)
	}
	return st, nil
}

// Get GETs path (with its query) from the relay and returns the answer if
// it is a 200; any other answer becomes an error saying what to do about
// it. The caller closes the body.
func (c Client) Get(ctx context.Context, path string) (*http.Response, error) {
	client, err := httpClient(c.CAFile)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", RedactURL(c.URL), err)
	}
	if c.TokenFile != "" {
		tok, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--bearer-token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the relay at %s: %w (is it running, and is --url its --listen address? For a stopped relay use --data-dir)", RedactURL(c.URL), err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	endpoint, _, _ := strings.Cut(path, "?")
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("the relay at %s wants credentials: put them in the URL (http://user:password@host:port) or use --bearer-token-file", RedactURL(c.URL))
	case http.StatusNotFound:
		if len(body) > 0 && strings.Contains(string(body), "no queue") {
			return nil, fmt.Errorf("the relay at %s: %s", RedactURL(c.URL), strings.TrimSpace(string(body)))
		}
		return nil, fmt.Errorf("the server at %s has no %s: is it a pyrorelay with the admin API (this version or later)?", RedactURL(c.URL), endpoint)
	default:
		return nil, fmt.Errorf("the relay at %s answered %d: %s", RedactURL(c.URL), resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate found", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr}, nil
}

// ErrIncomplete is what the errors of ExportComplete wrap: the relay's
// export answer ended before all it sent arrived.
var ErrIncomplete = errors.New("incomplete export")

// incomplete is an error of ExportComplete, saying what to do.
type incomplete string

func (e incomplete) Error() string      { return string(e) }
func (incomplete) Is(target error) bool { return target == ErrIncomplete }

// ExportComplete checks that the relay finished the export answer it
// started, of which n entries arrived: the trailer carries the count of
// entries it sent. Call it after reading the whole body. Its errors wrap
// ErrIncomplete.
func ExportComplete(resp *http.Response, n int) error {
	sent := resp.Trailer.Get(ExportCompleteTrailer)
	if sent == "" {
		return incomplete("the relay's answer ended early: the export is incomplete; run it again")
	}
	if m, err := strconv.Atoi(sent); err != nil || m != n {
		return incomplete(fmt.Sprintf("the relay sent %s entries, %d arrived: run it again", sent, n))
	}
	return nil
}

// RedactURL drops credentials from a URL for messages.
func RedactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndexByte(u[i+3:], '@'); j >= 0 {
			return u[:i+3] + "***@" + u[i+3+j+1:]
		}
	}
	return u
}
