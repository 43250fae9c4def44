package replay

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"50": 50, "50/s": 50, "0.5": 0.5, " 2 /s ": 2, "": 0} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "-1", "fast"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestDestination(t *testing.T) {
	second, minute := time.Second, time.Minute
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	configured := []relay.Destination{{Name: "prod", URL: "https://profiles.example.com", BearerToken: "secret",
		Headers: map[string]string{"X-A": "1"}, Timeout: 5 * time.Second, MinBackoff: 2 * time.Minute, MaxBackoff: 5 * time.Minute}}
	for _, c := range []struct {
		name    string
		t       Target
		check   func(relay.Destination) bool
		wantErr string
	}{
		{"a URL, defaults", Target{To: "http://pyroscope:4040"}, func(d relay.Destination) bool {
			return d.Name == "replay" && d.URL == "http://pyroscope:4040" && d.Concurrency == 1 &&
				d.Timeout == relay.DefaultTimeout && d.MaxBackoff == DefaultMaxBackoff
		}, ""},
		{"a configured destination keeps its settings", Target{To: "prod", Concurrency: 8}, func(d relay.Destination) bool {
			return d.URL == "https://profiles.example.com" && d.BearerToken == "secret" && d.Headers["X-A"] == "1" &&
				d.Concurrency == 8 && d.Timeout == 5*time.Second && d.MaxBackoff == 5*time.Minute
		}, ""},
		{"flags win", Target{To: "prod", Headers: []string{"X-B = 2"}, BearerTokenFile: tok, Tenant: "t1", Timeout: &second, MaxBackoff: &minute},
			func(d relay.Destination) bool {
				return d.BearerToken == "" && d.BearerTokenFile == tok && d.TenantID == "t1" && d.Headers["X-B"] == " 2" &&
					d.Timeout == time.Second && d.MaxBackoff == time.Minute && d.MinBackoff == time.Minute
			}, ""},
		{"unknown name", Target{To: "staging"}, nil, `--to "staging": not a URL (http://host:port) nor a destination in --config`},
		{"no host", Target{To: "http://"}, nil, `--to "http://": not a URL: want http://host:port or https://host`},
		{"bad header", Target{To: "prod", Headers: []string{"novalue"}}, nil, `--header "novalue": want NAME=VALUE`},
	} {
		d, err := Destination(configured, c.t)
		if c.wantErr != "" {
			if err == nil || err.Error() != c.wantErr {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || !c.check(d) {
			t.Errorf("%s: %+v, %v", c.name, d, err)
		}
	}
}

func TestResultErr(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, c := range []struct {
		ctx      context.Context
		res      Result
		failed   int
		retrying string
		want     string
	}{
		{live, Result{}, 0, "", ""},
		{ended, Result{FeedErr: context.Canceled}, 0, "HTTP 503", "replay interrupted after 3 entries (HTTP 503): nothing was lost; run it again (with --since, or from the queue, which only holds what was not delivered)"},
		{ended, Result{}, 0, "", "replay interrupted after 3 entries: nothing was lost; run it again (with --since, or from the queue, which only holds what was not delivered)"},
		{live, Result{FeedErr: errors.New("bad line")}, 0, "", "replay stopped after 3 entries: bad line"},
		{live, Result{FirstFailure: "HTTP 400: no"}, 2, "", "2 entries were refused by http://***@p:4040 (first: HTTP 400: no): see the lines above; fix the cause and replay them again"},
	} {
		err := c.res.Err(c.ctx, 3, c.failed, "http://***@p:4040", c.retrying)
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("%+v: %v, want %q", c.res, err, c.want)
		}
	}
}

// TestNewSenderReportsRetries: the sender a replay uses tells w why it
// retries, and its RetryWatch keeps the reason for the progress line.
func TestNewSenderReportsRetries(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	d, err := Destination(nil, Target{To: down.URL})
	if err != nil {
		t.Fatal(err)
	}
	d.MinBackoff, d.MaxBackoff = time.Millisecond, 5*time.Millisecond
	var w syncbuf.Buffer
	s, retries, err := NewSender(d, &w)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Send(ctx, &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=app", Body: []byte("x")})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for retries.Last() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(retries.Last(), "503") || !strings.Contains(w.String(), "retrying: ") {
		t.Errorf("Last() = %q; reported:\n%s", retries.Last(), w.String())
	}
}
