package httpserver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"golang.org/x/crypto/bcrypt"
)

// authSecret is in every password and token of these tests, so a test can
// grep answers and errors for it.
const authSecret = "s3cr3t-MARKER-7f1c"

// authHash is a bcrypt hash of password at the lowest cost (tests only),
// with the version prefix set to prefix ($2a$, $2b$ or $2y$; the
// algorithm is the same).
func authHash(t testing.TB, password, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[4:])
}

// authFile writes content to a new file in a temp dir and returns its path.
func authFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// authFixture is an Authenticator with two users and two tokens.
type authFixture struct {
	a                   *Authenticator
	usersFile, tokFile  string
	alicePW, bobPW, tok string
}

func newAuthFixture(t testing.TB) *authFixture {
	t.Helper()
	f := &authFixture{alicePW: "alice-" + authSecret, bobPW: "bob-" + authSecret, tok: "tok-" + authSecret}
	f.usersFile = authFile(t, "htpasswd", "# users\nalice:"+authHash(t, f.alicePW, "$2y$")+"\n\n  bob:"+authHash(t, f.bobPW, "$2b$")+"  \r\n")
	f.tokFile = authFile(t, "tokens", "# ci token\n"+f.tok+"\n\nother-token-"+authSecret+"\n")
	a, err := NewAuthenticator(AuthConfig{BasicUsersFile: f.usersFile, BearerTokenFile: f.tokFile})
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	f.a = a
	return f
}

func TestAuthenticatorFileErrors(t *testing.T) {
	good := authHash(t, "pw", "$2a$")
	for _, tc := range []struct {
		name, users, tokens string
		want                string // in the error
	}{
		{"plain text password", "alice:" + authSecret + "\n", "", "only bcrypt hashes"},
		{"apr1 md5", "alice:$apr1$" + authSecret + "\n", "", "only bcrypt hashes"},
		{"sha1", "alice:{SHA}" + authSecret + "\n", "", "only bcrypt hashes"},
		{"2x prefix", "alice:$2x$" + good[4:] + "\n", "", "only bcrypt hashes"},
		{"malformed bcrypt", "alice:$2y$04$" + authSecret + "\n", "", "malformed bcrypt hash"},
		{"no colon", authSecret + "\n", "", "line 1: want user:bcrypt-hash"},
		{"empty user", ":" + good + "\n", "", "empty username"},
		{"user twice", "a:" + good + "\n# c\na:" + good + "\n", "", "line 3: user listed twice"},
		{"empty users file", "# nobody\n\n", "", "no user in the file"},
		{"token with space", "", "good\nbad " + authSecret + "\n", "line 2: a token has no spaces"},
		{"empty token file", "", "\n# none\n", "no token in the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg AuthConfig
			if tc.users != "" {
				cfg.BasicUsersFile = authFile(t, "htpasswd", tc.users)
			}
			if tc.tokens != "" {
				cfg.BearerTokenFile = authFile(t, "tokens", tc.tokens)
			}
			_, err := NewAuthenticator(cfg)
			if err == nil {
				t.Fatal("NewAuthenticator accepted the file")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), authSecret) || strings.Contains(err.Error(), good[7:]) {
				t.Errorf("error quotes the file's content: %q", err)
			}
		})
	}
	t.Run("no file", func(t *testing.T) {
		if _, err := NewAuthenticator(AuthConfig{}); err == nil {
			t.Fatal("accepted a config without files")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := NewAuthenticator(AuthConfig{BearerTokenFile: filepath.Join(t.TempDir(), "nope")})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want a not-exist error", err)
		}
	})
}

func TestAuthenticatorCheck(t *testing.T) {
	f := newAuthFixture(t)
	basic := func(u, p string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(u, p) }
	}
	header := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	for _, tc := range []struct {
		name string
		set  func(*http.Request)
		want error // nil, errNoCredentials or errBadCredentials
	}{
		{"none", func(*http.Request) {}, errNoCredentials},
		{"basic $2y$ user", basic("alice", f.alicePW), nil},
		{"basic $2b$ user", basic("bob", f.bobPW), nil},
		{"wrong password", basic("alice", f.bobPW), errBadCredentials},
		{"unknown user", basic("carol", f.alicePW), errBadCredentials},
		{"user name case matters", basic("Alice", f.alicePW), errBadCredentials},
		{"empty password", basic("alice", ""), errBadCredentials},
		{"bearer", header("Bearer " + f.tok), nil},
		{"bearer second token", header("Bearer other-token-" + authSecret), nil},
		{"bearer scheme in lower case", header("bearer " + f.tok), nil},
		{"bearer wrong token", header("Bearer " + f.tok + "x"), errBadCredentials},
		{"bearer prefix of a token", header("Bearer " + f.tok[:len(f.tok)-1]), errBadCredentials},
		{"bearer empty", header("Bearer "), errBadCredentials},
		{"token as basic password", basic("alice", f.tok), errBadCredentials},
		{"password as bearer token", header("Bearer " + f.alicePW), errBadCredentials},
		{"malformed basic", header("Basic !!!not-base64"), errBadCredentials},
		{"unknown scheme", header("Digest username=alice"), errBadCredentials},
		{"comment line is no token", header("Bearer # ci token"), errBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
			tc.set(r)
			err := f.a.Check(r)
			if !errors.Is(err, tc.want) && err != tc.want {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), authSecret) {
				t.Errorf("error echoes the credentials: %q", err)
			}
		})
	}
}

// TestAuthenticatorOnlyBearer checks that basic credentials are refused
// when only tokens are configured, and the other way round.
func TestAuthenticatorOneScheme(t *testing.T) {
	f := newAuthFixture(t)
	onlyTokens, err := NewAuthenticator(AuthConfig{BearerTokenFile: f.tokFile})
	if err != nil {
		t.Fatal(err)
	}
	onlyUsers, err := NewAuthenticator(AuthConfig{BasicUsersFile: f.usersFile})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
	r.SetBasicAuth("alice", f.alicePW)
	if err := onlyTokens.Check(r); !errors.Is(err, errBadCredentials) {
		t.Errorf("tokens only, basic credentials: %v", err)
	}
	if got := onlyTokens.challenge(); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ") {
		t.Errorf("tokens only: challenge %q", got)
	}
	r.Header.Set("Authorization", "Bearer "+f.tok)
	if err := onlyUsers.Check(r); !errors.Is(err, errBadCredentials) {
		t.Errorf("users only, bearer token: %v", err)
	}
	if got := onlyUsers.challenge(); len(got) != 1 || !strings.HasPrefix(got[0], "Basic ") {
		t.Errorf("users only: challenge %q", got)
	}
}

// TestAuthenticatorCache shows that a verified password is not hashed
// again while cached, that a wrong one is never cached, and that Reload
// forgets the cache.
func TestAuthenticatorCache(t *testing.T) {
	f := newAuthFixture(t)
	check := func(u, p string) error {
		r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
		r.SetBasicAuth(u, p)
		return f.a.Check(r)
	}
	if err := check("alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if n := f.a.cache.len(); n != 0 {
		t.Fatalf("a failed check was cached: %d entries", n)
	}
	if err := check("alice", f.alicePW); err != nil {
		t.Fatal(err)
	}
	if n := f.a.cache.len(); n != 1 {
		t.Fatalf("cache has %d entries after one success, want 1", n)
	}
	// Swap alice's hash for one of another password behind the cache's
	// back: the cached pair still passes, which proves bcrypt did not run.
	old := f.a.creds.Load()
	swapped := &credentials{dummy: old.dummy, tokens: old.tokens}
	for _, u := range old.users {
		swapped.users = append(swapped.users, basicUser{name: u.name, hash: []byte(authHash(t, "changed", "$2y$"))})
	}
	f.a.creds.Store(swapped)
	if err := check("alice", f.alicePW); err != nil {
		t.Fatalf("cached password refused: %v", err)
	}
	if err := check("bob", f.bobPW); err == nil {
		t.Fatal("uncached password checked against the old hash")
	}
	// The cache is keyed by user and password: the same password under
	// another name is not a hit.
	if err := check("bob", f.alicePW); err == nil {
		t.Fatal("alice's cached password let bob in")
	}
	if err := f.a.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := f.a.cache.len(); n != 0 {
		t.Fatalf("Reload kept %d cache entries", n)
	}

	t.Run("expired entries are not hits", func(t *testing.T) {
		a, err := NewAuthenticator(AuthConfig{BasicUsersFile: f.usersFile, CacheTTL: 1})
		if err != nil {
			t.Fatal(err)
		}
		k := a.cache.keyOf("alice", f.alicePW)
		a.cache.add(k)
		if a.cache.valid(k) {
			t.Fatal("an entry past its TTL counted as verified")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		var vc verifyCache
		vc.ttl = DefaultAuthCacheTTL
		for i := range maxAuthCacheEntries + 10 {
			vc.add(vc.keyOf("u", string(rune(i))))
		}
		if n := vc.len(); n > maxAuthCacheEntries {
			t.Fatalf("cache grew to %d entries, bound %d", n, maxAuthCacheEntries)
		}
	})
}

func TestAuthenticatorReload(t *testing.T) {
	f := newAuthFixture(t)
	withToken := func(tok string) error {
		r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return f.a.Check(r)
	}
	withBasic := func(u, p string) error {
		r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
		r.SetBasicAuth(u, p)
		return f.a.Check(r)
	}
	if err := withBasic("bob", f.bobPW); err != nil {
		t.Fatal(err) // cached now; the reload must forget it
	}
	// Rotate: a new token replaces the old one, bob is removed.
	if err := os.WriteFile(f.tokFile, []byte("rotated-"+authSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.usersFile, []byte("alice:"+authHash(t, f.alicePW, "$2a$")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := withToken(f.tok); err != nil {
		t.Fatalf("before Reload the old token must still work: %v", err)
	}
	if err := f.a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := withToken(f.tok); err == nil {
		t.Error("old token accepted after reload")
	}
	if err := withToken("rotated-" + authSecret); err != nil {
		t.Errorf("new token refused: %v", err)
	}
	if err := withBasic("bob", f.bobPW); err == nil {
		t.Error("removed user accepted after reload (stale cache?)")
	}
	if err := withBasic("alice", f.alicePW); err != nil {
		t.Errorf("alice refused: %v", err)
	}

	// A broken edit keeps what was loaded before.
	if err := os.WriteFile(f.usersFile, []byte("alice:plaintext-"+authSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := f.a.Reload()
	if err == nil {
		t.Fatal("Reload accepted a plain-text password")
	}
	if strings.Contains(err.Error(), authSecret) {
		t.Errorf("reload error quotes the file: %q", err)
	}
	if err := withBasic("alice", f.alicePW); err != nil {
		t.Errorf("after a failed reload, the previous users must stay in force: %v", err)
	}
	if err := withToken("rotated-" + authSecret); err != nil {
		t.Errorf("after a failed reload, the previous tokens must stay in force: %v", err)
	}
}

// authPushClient is a Push client for base; h2c selects HTTP/2 cleartext,
// which gRPC needs.
func authPushClient(base string, h2c bool, opts ...connect.ClientOption) pushv1connect.PusherServiceClient {
	c := http.DefaultClient
	if h2c {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		c = &http.Client{Transport: tr}
	}
	return pushv1connect.NewPusherServiceClient(c, base, opts...)
}

func authPushRequest(t *testing.T) *pushv1.PushRequest {
	return &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels: []*typesv1.LabelPair{
			{Name: "__name__", Value: "process_cpu"},
			{Name: "service_name", Value: "auth-test"},
		},
		Samples: []*pushv1.RawSample{{RawProfile: readFile(t, "cpu.pb.gz")}},
	}}}
}

// TestAuthEndpoints drives every route of a server with auth through HTTP
// and the three Push protocols.
func TestAuthEndpoints(t *testing.T) {
	f := newAuthFixture(t)
	for _, protect := range []bool{false, true} {
		name := "metrics open"
		if protect {
			name = "metrics protected"
		}
		t.Run(name, func(t *testing.T) {
			ts := newServer(t, Config{Queues: []string{"d"}, Auth: f.a, ProtectMetrics: protect})
			base := serve(t, ts.Server)

			for _, tc := range []struct {
				method, path string
				open         bool // served without credentials
				okStatus     int  // with credentials
			}{
				{http.MethodPost, "/ingest?name=app.cpu", false, 200},
				{http.MethodPost, "/pyroscope/ingest?name=app.cpu", false, 200},
				{http.MethodGet, "/api/v1/queues", false, 404},
				{http.MethodGet, "/no/such/path", false, 404},
				{http.MethodGet, "/metrics", !protect, 200},
				{http.MethodGet, "/-/healthy", !protect, 200},
				{http.MethodGet, "/-/ready", !protect, 200},
			} {
				for _, cred := range []string{"none", "wrong", "basic", "bearer"} {
					req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader("main;work 1\n"))
					switch cred {
					case "wrong":
						req.SetBasicAuth("alice", "nope-"+authSecret)
					case "basic":
						req.SetBasicAuth("alice", f.alicePW)
					case "bearer":
						req.Header.Set("Authorization", "Bearer "+f.tok)
					}
					resp, body := do(t, nil, req)
					authorized := cred == "basic" || cred == "bearer"
					want := tc.okStatus
					if !tc.open && !authorized {
						want = http.StatusUnauthorized
					}
					if resp.StatusCode != want {
						t.Errorf("%s %s with %s credentials: status %d, want %d (%s)", tc.method, tc.path, cred, resp.StatusCode, want, body)
						continue
					}
					if want == http.StatusUnauthorized {
						eb := checkErrorBody(t, resp, body)
						if eb.Code != "unauthenticated" {
							t.Errorf("%s %s: code %q, want unauthenticated", tc.method, tc.path, eb.Code)
						}
						if ch := resp.Header.Values("WWW-Authenticate"); len(ch) != 2 ||
							!strings.HasPrefix(ch[0], `Basic realm="pyrorelay"`) || !strings.HasPrefix(ch[1], `Bearer realm="pyrorelay"`) {
							t.Errorf("%s %s: WWW-Authenticate %q", tc.method, tc.path, ch)
						}
					}
					if strings.Contains(string(body), authSecret) {
						t.Errorf("%s %s answer quotes a secret: %s", tc.method, tc.path, body)
					}
				}
			}
			_, stored := ts.store.counts()
			if want := 4; stored != want { // two ingest paths x (basic, bearer)
				t.Errorf("stored %d entries, want %d: only authenticated requests may be stored", stored, want)
			}
			missing, invalid := authFailures(t, ts, "missing"), authFailures(t, ts, "invalid")
			if missing == 0 || invalid == 0 {
				t.Errorf("pyrorelay_auth_failures_total: missing %g, invalid %g; want both counted", missing, invalid)
			}
		})
	}
}

// authFailures reads pyrorelay_auth_failures_total{reason} from ts's
// registry.
func authFailures(t *testing.T, ts *testServer, reason string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pyrorelay_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no pyrorelay_auth_failures_total{reason=%q}", reason)
	return 0
}

func TestAuthPush(t *testing.T) {
	f := newAuthFixture(t)
	ts := newServer(t, Config{Queues: []string{"d"}, Auth: f.a})
	base := serve(t, ts.Server)
	for _, p := range []struct {
		name string
		h2c  bool
		opts []connect.ClientOption
	}{
		{"connect", false, nil},
		{"connect gzip", false, []connect.ClientOption{connect.WithSendGzip()}},
		{"grpc h2c", true, []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", false, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(p.name, func(t *testing.T) {
			c := authPushClient(base, p.h2c, p.opts...)
			for _, cred := range []string{"none", "wrong token", "basic", "bearer"} {
				req := connect.NewRequest(authPushRequest(t))
				switch cred {
				case "wrong token":
					req.Header().Set("Authorization", "Bearer nope-"+authSecret)
				case "basic":
					hr := http.Request{Header: req.Header()}
					hr.SetBasicAuth("bob", f.bobPW)
				case "bearer":
					req.Header().Set("Authorization", "Bearer "+f.tok)
				}
				_, before := ts.store.counts()
				_, err := c.Push(context.Background(), req)
				_, after := ts.store.counts()
				if cred == "basic" || cred == "bearer" {
					if err != nil {
						t.Errorf("%s: %v", cred, err)
					}
					if after != before+1 {
						t.Errorf("%s: stored %d entries, want 1", cred, after-before)
					}
					continue
				}
				if code := connect.CodeOf(err); code != connect.CodeUnauthenticated {
					t.Errorf("%s: code %v (%v), want unauthenticated", cred, code, err)
				}
				if after != before {
					t.Errorf("%s: an unauthenticated push was stored", cred)
				}
				var ce *connect.Error
				if errors.As(err, &ce) {
					if strings.Contains(ce.Message(), authSecret) {
						t.Errorf("%s: error quotes the credentials: %q", cred, ce.Message())
					}
					if p.name == "connect" && len(ce.Meta().Values("WWW-Authenticate")) == 0 {
						t.Errorf("%s: no WWW-Authenticate", cred)
					}
				}
			}
		})
	}
}

func TestIsRPCPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/push.v1.PusherService/Push": true,
		"/ingest":                     false,
		"/pyroscope/ingest":           false,
		"/api/v1/queues":              false,
		"/metrics":                    false,
		"/a.b/c/d":                    false,
		"/a.b/":                       false,
	} {
		if got := isRPCPath(p); got != want {
			t.Errorf("isRPCPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// BenchmarkAuthBasic shows what the verification cache saves: bcrypt at
// the default cost of `htpasswd -B -C 10` for every request, or a map
// lookup.
func BenchmarkAuthBasic(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{false, true} {
		name := "uncached"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			a, err := NewAuthenticator(AuthConfig{BasicUsersFile: authFile(b, "htpasswd", "u:"+string(h)+"\n")})
			if err != nil {
				b.Fatal(err)
			}
			r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
			r.SetBasicAuth("u", "pw")
			for b.Loop() {
				if !cached {
					a.cache.clear()
				}
				if err := a.Check(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
