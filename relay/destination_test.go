package relay

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/testca"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSigned returns a PEM certificate and key for a throwaway client cert
// (issued by a throwaway CA).
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	c, k := testca.New(t, "pyrorelay-test").Issue(t, 1, true)
	return string(c), string(k)
}

func TestDestinationValidate(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "secret\n")
	certPEM, keyPEM := selfSigned(t)
	certFile := writeFile(t, dir, "cert.pem", certPEM)
	keyFile := writeFile(t, dir, "key.pem", keyPEM)
	notPEM := writeFile(t, dir, "not.pem", "hello")

	ok := Destination{Name: "pyro-1", URL: "http://pyroscope:4040"}
	tests := []struct {
		name  string
		edit  func(d *Destination)
		field string // "" means valid
	}{
		{"minimal", func(d *Destination) {}, ""},
		{"https with path", func(d *Destination) { d.URL = "https://example.com/pyroscope/" }, ""},
		{"name with dots and dashes", func(d *Destination) { d.Name = "eu.prod_2-a" }, ""},
		{"bearer token file", func(d *Destination) { d.BearerTokenFile = tokenFile }, ""},
		{"basic auth", func(d *Destination) { d.BasicAuth = &BasicAuth{Username: "u", Password: "p"} }, ""},
		{"client cert and CA", func(d *Destination) {
			d.TLS = TLSConfig{CAFile: certFile, CertFile: certFile, KeyFile: keyFile}
		}, ""},
		{"equal backoffs", func(d *Destination) { d.MinBackoff, d.MaxBackoff = time.Second, time.Second }, ""},

		{"empty name", func(d *Destination) { d.Name = "" }, "name"},
		{"name with slash", func(d *Destination) { d.Name = "a/b" }, "name"},
		{"reserved name", func(d *Destination) { d.Name = "_hold" }, "name"},
		{"name with space", func(d *Destination) { d.Name = "a b" }, "name"},
		{"empty url", func(d *Destination) { d.URL = "" }, "url"},
		{"ftp url", func(d *Destination) { d.URL = "ftp://example.com" }, "url"},
		{"url without scheme", func(d *Destination) { d.URL = "example.com:4040" }, "url"},
		{"url without host", func(d *Destination) { d.URL = "http://" }, "url"},
		{"url with query", func(d *Destination) { d.URL = "http://example.com/?tenant=a" }, "url"},
		{"url with fragment", func(d *Destination) { d.URL = "http://example.com/#x" }, "url"},
		{"bearer token and file", func(d *Destination) { d.BearerToken, d.BearerTokenFile = "t", tokenFile }, "bearer_token_file"},
		{"basic and bearer token", func(d *Destination) {
			d.BasicAuth, d.BearerToken = &BasicAuth{Username: "u"}, "t"
		}, "basic_auth"},
		{"basic and bearer file", func(d *Destination) {
			d.BasicAuth, d.BearerTokenFile = &BasicAuth{Username: "u"}, tokenFile
		}, "basic_auth"},
		{"missing bearer token file", func(d *Destination) { d.BearerTokenFile = filepath.Join(dir, "nope") }, "bearer_token_file"},
		{"min above max backoff", func(d *Destination) { d.MinBackoff, d.MaxBackoff = 2*time.Second, time.Second }, "min_backoff"},
		{"cert without key", func(d *Destination) { d.TLS.CertFile = certFile }, "tls"},
		{"key without cert", func(d *Destination) { d.TLS.KeyFile = keyFile }, "tls"},
		{"missing CA file", func(d *Destination) { d.TLS.CAFile = filepath.Join(dir, "missing-ca.pem") }, "tls"},
		{"CA file without PEM", func(d *Destination) { d.TLS.CAFile = notPEM }, "tls"},
		{"key does not match cert", func(d *Destination) { d.TLS.CertFile, d.TLS.KeyFile = certFile, notPEM }, "tls"},
		{"negative concurrency", func(d *Destination) { d.Concurrency = -1 }, "concurrency"},
		{"max concurrency below concurrency", func(d *Destination) { d.Concurrency, d.MaxConcurrency = 8, 4 }, "max_concurrency"},
		{"negative max attempts", func(d *Destination) { d.MaxAttempts = -1 }, "max_attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.edit(&d)
			err := d.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.field)
			}
			if !errors.Is(err, ErrInvalidDestination) {
				t.Errorf("error %v does not wrap ErrInvalidDestination", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name field %q", err, tt.field)
			}
		})
	}
}

func TestDestinationWithDefaults(t *testing.T) {
	t.Run("zero", func(t *testing.T) {
		d := Destination{Name: "a", URL: "http://x:4040/"}.WithDefaults()
		want := Destination{
			Name: "a", URL: "http://x:4040",
			Timeout: DefaultTimeout, MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff,
			Concurrency: DefaultConcurrency, MaxConcurrency: DefaultMaxConcurrency, MaxAttempts: DefaultMaxAttempts,
		}
		if d.Name != want.Name || d.URL != want.URL || d.Timeout != want.Timeout ||
			d.MinBackoff != want.MinBackoff || d.MaxBackoff != want.MaxBackoff ||
			d.Concurrency != want.Concurrency || d.MaxConcurrency != want.MaxConcurrency || d.MaxAttempts != want.MaxAttempts {
			t.Errorf("WithDefaults() = %+v, want %+v", d, want)
		}
	})
	t.Run("a concurrency above the default maximum is the maximum", func(t *testing.T) {
		d := Destination{Name: "a", URL: "http://x", Concurrency: 32}.WithDefaults()
		if d.MaxConcurrency != 32 {
			t.Errorf("MaxConcurrency = %d, want 32", d.MaxConcurrency)
		}
	})
	t.Run("set values kept", func(t *testing.T) {
		in := Destination{
			Name: "a", URL: "http://x/p//", Timeout: time.Second, MinBackoff: 5 * time.Millisecond,
			MaxBackoff: 50 * time.Millisecond, Concurrency: 7, MaxAttempts: 3,
		}
		d := in.WithDefaults()
		if d.URL != "http://x/p" {
			t.Errorf("URL = %q, want trailing slashes trimmed", d.URL)
		}
		if d.Timeout != in.Timeout || d.MinBackoff != in.MinBackoff || d.MaxBackoff != in.MaxBackoff ||
			d.Concurrency != in.Concurrency || d.MaxAttempts != in.MaxAttempts {
			t.Errorf("WithDefaults() = %+v, changed set values of %+v", d, in)
		}
	})
	// A config that sets only one backoff bound passes Validate (which
	// runs before defaults); the default for the other must then not make
	// the pair invalid when NewForwarder validates again.
	t.Run("only max backoff below default min", func(t *testing.T) {
		d := Destination{Name: "a", URL: "http://x", MaxBackoff: 100 * time.Millisecond}
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		d = d.WithDefaults()
		if d.MinBackoff != 100*time.Millisecond || d.MaxBackoff != 100*time.Millisecond {
			t.Errorf("backoff %v..%v, want 100ms..100ms", d.MinBackoff, d.MaxBackoff)
		}
		if err := d.Validate(); err != nil {
			t.Errorf("Validate() after defaults = %v", err)
		}
	})
	t.Run("only min backoff above default max", func(t *testing.T) {
		d := Destination{Name: "a", URL: "http://x", MinBackoff: 10 * time.Minute}
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		d = d.WithDefaults()
		if d.MinBackoff != 10*time.Minute || d.MaxBackoff != 10*time.Minute {
			t.Errorf("backoff %v..%v, want 10m..10m", d.MinBackoff, d.MaxBackoff)
		}
		if err := d.Validate(); err != nil {
			t.Errorf("Validate() after defaults = %v", err)
		}
	})
}

func TestNewForwarderRejectsInvalidDestination(t *testing.T) {
	_, err := NewForwarder(Destination{Name: "a", URL: "gopher://x"}, nil, nil, nil)
	if !errors.Is(err, ErrInvalidDestination) {
		t.Fatalf("NewForwarder() = %v, want ErrInvalidDestination", err)
	}
}

func TestAuthorize(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "  file-token \n")
	tests := []struct {
		name       string
		d          Destination
		tenant     string
		wantAuth   string
		wantTenant string
	}{
		{"nothing", Destination{}, "", "", ""},
		{"basic", Destination{BasicAuth: &BasicAuth{Username: "u", Password: "p"}}, "", "Basic dTpw", ""},
		{"bearer", Destination{BearerToken: "tok"}, "", "Bearer tok", ""},
		{"bearer file trimmed", Destination{BearerTokenFile: tokenFile}, "", "Bearer file-token", ""},
		{"passed-through tenant", Destination{}, "t-entry", "", "t-entry"},
		{"destination tenant wins", Destination{TenantID: "t-dest"}, "t-entry", "", "t-dest"},
		{"destination tenant alone", Destination{TenantID: "t-dest"}, "", "", "t-dest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if err := tt.d.authorize(h, tt.tenant); err != nil {
				t.Fatal(err)
			}
			if got := h.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
			}
			if got := h.Get("X-Scope-OrgID"); got != tt.wantTenant {
				t.Errorf("X-Scope-OrgID = %q, want %q", got, tt.wantTenant)
			}
		})
	}

	t.Run("rotated token file", func(t *testing.T) {
		p := writeFile(t, dir, "rotating", "one")
		d := Destination{BearerTokenFile: p}
		h := http.Header{}
		if err := d.authorize(h, ""); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "rotating", "two")
		if err := d.authorize(h, ""); err != nil {
			t.Fatal(err)
		}
		if got := h.Get("Authorization"); got != "Bearer two" {
			t.Errorf("Authorization = %q after rotation, want Bearer two", got)
		}
	})
	t.Run("token file gone", func(t *testing.T) {
		d := Destination{BearerTokenFile: filepath.Join(dir, "gone")}
		if err := d.authorize(http.Header{}, ""); err == nil {
			t.Error("authorize() = nil for a missing token file")
		}
	})
}
