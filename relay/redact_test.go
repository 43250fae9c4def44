package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pyrorelay/pyrorelay/store"
)

// leakMarker is in every secret these tests configure.
const leakMarker = "LEAK-9d2e"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://host:4040":                                                    "https://host:4040",
		"https://user:pw" + leakMarker + "@host/p?q=1":                         "https://<redacted>@host/p?q=1",
		"https://" + leakMarker + "@host":                                      "https://<redacted>@host",
		"ftp://u:" + leakMarker + "@host":                                      "ftp://<redacted>@host",
		"prod=https://u:" + leakMarker + "@h":                                  "prod=https://<redacted>@h",
		"no url at all":                                                        "no url at all",
		"user:" + leakMarker + "@host:4040":                                    "<redacted>@host:4040",
		"url \"u:" + leakMarker + "@h\" is bad":                                "url \"<redacted>@h\" is bad",
		"mail me: a@b.c":                                                       "mail me: a@b.c",
		"Post \"https://u:" + leakMarker + "@h/ingest\": refused; https://a@b": "Post \"https://<redacted>@h/ingest\": refused; https://<redacted>@b",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// secretDest is a destination with a secret in every field that can hold
// one.
func secretDest() Destination {
	return Destination{
		Name:      "prod",
		URL:       "https://inst:url" + leakMarker + "@profiles.example.com",
		Headers:   map[string]string{"X-Api-Key": "hdr" + leakMarker},
		BasicAuth: &BasicAuth{Username: "123456", Password: "pw" + leakMarker},
		TenantID:  "team-a",
	}
}

// TestDestinationPrintsNoSecret formats and logs destinations every way
// code might, and looks for the secrets.
func TestDestinationPrintsNoSecret(t *testing.T) {
	bearer := secretDest()
	bearer.BasicAuth = nil
	bearer.BearerToken = "tok" + leakMarker
	for name, d := range map[string]Destination{"basic": secretDest(), "bearer": bearer} {
		t.Run(name, func(t *testing.T) {
			var out []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				out = append(out, fmt.Sprintf(verb, d), fmt.Sprintf(verb, &d))
				if d.BasicAuth != nil {
					out = append(out, fmt.Sprintf(verb, d.BasicAuth), fmt.Sprintf(verb, *d.BasicAuth))
				}
			}
			var logs bytes.Buffer
			for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
				l := slog.New(h)
				l.Info("destination", "dest", d, "ptr", &d, "auth", d.BasicAuth, "list", []Destination{d})
			}
			out = append(out, logs.String())
			for _, s := range out {
				if strings.Contains(s, leakMarker) {
					t.Errorf("secret printed: %s", s)
				}
			}
			// Still useful: the name, the host and what kind of auth.
			if s := d.String(); !strings.Contains(s, "prod") || !strings.Contains(s, "profiles.example.com") || !strings.Contains(s, "auth=") {
				t.Errorf("String() = %q lacks name, host or auth kind", s)
			}
		})
	}
}

func TestValidateQuotesNoSecret(t *testing.T) {
	for _, u := range []string{
		"ftp://u:" + leakMarker + "@host",
		"https://u:" + leakMarker + "@",
		"u:" + leakMarker + "@host:4040",
	} {
		err := Destination{Name: "a", URL: u}.Validate()
		if err == nil {
			t.Errorf("Validate accepted %q", u)
			continue
		}
		if strings.Contains(err.Error(), leakMarker) {
			t.Errorf("Validate error quotes the password: %v", err)
		}
	}
	d := secretDest()
	d.BearerToken = "tok" + leakMarker
	if err := d.Validate(); err == nil || strings.Contains(err.Error(), leakMarker) {
		t.Errorf("basic_auth and bearer_token together: %v", err)
	}
}

func TestBasicAuthYAML(t *testing.T) {
	var ok struct {
		BasicAuth *BasicAuth `yaml:"basic_auth"`
	}
	if err := yaml.Unmarshal([]byte("basic_auth: {username: u, password: p}\n"), &ok); err != nil {
		t.Fatal(err)
	}
	if ok.BasicAuth == nil || ok.BasicAuth.Username != "u" || ok.BasicAuth.Password != "p" {
		t.Fatalf("decoded %+v", ok.BasicAuth)
	}
	for _, doc := range []string{
		"basic_auth: u:" + leakMarker + "\n",
		"basic_auth: [u, " + leakMarker + "]\n",
		"basic_auth: {username: u, pasword: " + leakMarker + "}\n",
		"basic_auth: {username: u, password: [" + leakMarker + "]}\n",
	} {
		var v struct {
			BasicAuth *BasicAuth `yaml:"basic_auth"`
		}
		err := yaml.Unmarshal([]byte(doc), &v)
		if err == nil {
			t.Errorf("%q decoded", doc)
			continue
		}
		if strings.Contains(err.Error(), leakMarker[:4]) {
			t.Errorf("%q: error quotes the value: %v", doc, err)
		}
		if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %q has no line", doc, err)
		}
	}
}

// TestReasonsAreScrubbed sends to a destination that echoes the request's
// headers in its error answers (as some proxies do): the reason the relay
// keeps, logs and puts in dead-letter must not carry the credentials.
func TestReasonsAreScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		for k, v := range r.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(v, ","))
		}
		if strings.HasPrefix(r.URL.Path, "/push.v1.") {
			// A Connect error whose message echoes the headers.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "unauthenticated", "message": b.String()})
			return
		}
		http.Error(w, "unauthorized; you sent:\n"+b.String(), http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("file"+leakMarker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basic := Destination{Name: "basic", URL: srv.URL, BasicAuth: &BasicAuth{Username: "u", Password: "pw" + leakMarker},
		Headers: map[string]string{"X-Api-Key": "hdr" + leakMarker}}
	bearer := Destination{Name: "bearer", URL: srv.URL, BearerToken: "tok" + leakMarker}
	tokenFile := Destination{Name: "file", URL: srv.URL, BearerTokenFile: tokFile}
	// Credentials in the URL are sent as basic auth by the HTTP client,
	// and come back base64-encoded in an echoed Authorization header.
	userinfo := Destination{Name: "userinfo", URL: "http://user:p%40ss" + leakMarker + "@" + strings.TrimPrefix(srv.URL, "http://")}
	// Forms of the secrets that do not contain the marker as such.
	encoded := []string{
		base64.StdEncoding.EncodeToString([]byte("u:pw" + leakMarker)),
		base64.StdEncoding.EncodeToString([]byte("user:p@ss" + leakMarker)),
	}
	for _, d := range []Destination{basic, bearer, tokenFile, userinfo} {
		for _, kind := range []store.Kind{store.KindIngest, store.KindPush} {
			t.Run(d.Name+"/"+kind.String(), func(t *testing.T) {
				var logs bytes.Buffer
				d := d
				d.MinBackoff, d.MaxBackoff, d.Timeout = time.Millisecond, time.Millisecond, 10*time.Second
				s, err := NewSender(d, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
				if err != nil {
					t.Fatal(err)
				}
				e := &store.Entry{Kind: kind, ReceivedAt: time.Now(), Query: "name=app.cpu", Body: []byte("main 1\n")}
				if kind == store.KindPush {
					e.Body = nil // an empty PushRequest encodes to nothing; the server refuses it anyway
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res := s.Send(ctx, e)
				if res.Fate != FatePermanent {
					t.Fatalf("fate %v (%s), want permanent", res.Fate, res.Outcome.Reason)
				}
				if !strings.Contains(res.Outcome.Reason, Redacted) {
					t.Errorf("reason %q: the echo was not found and masked (does the test server echo?)", res.Outcome.Reason)
				}
				for _, s := range []string{res.Outcome.Reason, logs.String()} {
					if strings.Contains(s, leakMarker) {
						t.Errorf("secret in reason or log: %s", s)
					}
					for _, enc := range encoded {
						if strings.Contains(s, enc) {
							t.Errorf("base64 credentials in reason or log: %s", s)
						}
					}
				}
			})
		}
	}
}

// TestRedactForms: every form a destination's secret takes on the wire is
// masked, and so is any echoed Authorization header.
func TestRedactForms(t *testing.T) {
	d := Destination{Name: "d", URL: "https://svc:s%2Fcret" + leakMarker + "@pyroscope.example",
		Headers: map[string]string{"Authorization": "Bearer hdr" + leakMarker}}
	for _, in := range []string{
		"password s/cret" + leakMarker,
		"as written s%2Fcret" + leakMarker,
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("svc:s/cret"+leakMarker)),
		"unpadded " + base64.RawStdEncoding.EncodeToString([]byte("svc:s/cret"+leakMarker)),
		"token alone hdr" + leakMarker,
		`{"authorization":"Basic cHJveHk6cHJveHlzZWNyZXQ` + leakMarker + `"}`,
		"authorization=bearer opaque" + leakMarker,
	} {
		got := d.redact(in)
		if strings.Contains(got, leakMarker) || strings.Contains(got, base64.StdEncoding.EncodeToString([]byte("svc:s/cret" + leakMarker))[:20]) {
			t.Errorf("redact(%q) = %q: secret left", in, got)
		}
		if !strings.Contains(got, Redacted) {
			t.Errorf("redact(%q) = %q: nothing masked", in, got)
		}
	}
}
