package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// AuthConfig names the files inbound credentials come from. At least one
// file must be set.
type AuthConfig struct {
	// BasicUsersFile is an htpasswd file of bcrypt hashes (htpasswd -B):
	// `user:$2y$...`, one per line; blank lines and lines starting with #
	// are skipped.
	BasicUsersFile string
	// BearerTokenFile holds accepted bearer tokens, one per line; blank
	// lines and lines starting with # are skipped.
	BearerTokenFile string
	// CacheTTL is how long a verified username and password are trusted
	// without running bcrypt again; 0 means DefaultAuthCacheTTL.
	CacheTTL time.Duration
}

// DefaultAuthCacheTTL bounds how long a verified password is remembered.
// bcrypt costs 50-100 ms of CPU by design and SDKs push every 10 s, so
// without a cache a few hundred clients keep a core busy hashing; a minute
// still lets a removed user fall out soon (a reload clears it at once).
const DefaultAuthCacheTTL = time.Minute

// maxAuthCacheEntries bounds the cache: one entry per distinct valid
// username and password, so only clients that authenticated fill it.
const maxAuthCacheEntries = 4096

// realm is announced in WWW-Authenticate.
const realm = "pyrorelay"

// Authenticator checks the credentials of inbound requests against an
// htpasswd file and/or a bearer token file. Reload re-reads both; it is safe
// for concurrent use.
type Authenticator struct {
	cfg   AuthConfig
	creds atomic.Pointer[credentials]
	cache verifyCache
	// failed remembers refused username and password pairs, so that a
	// client retrying wrong credentials costs no bcrypt either.
	failed verifyCache
	// hashing holds a token per bcrypt comparison in progress: wrong
	// passwords, which no cache helps with when each is new, take at
	// most these cores, and bearer tokens and cached passwords none.
	hashing chan struct{}
	// compare is bcrypt.CompareHashAndPassword, replaced in tests.
	compare func(hash, password []byte) error
	// reloadMu serialises Reload so two SIGHUPs cannot interleave.
	reloadMu sync.Mutex
}

// credentials is one loaded generation of both files.
type credentials struct {
	users  []basicUser
	tokens [][sha256.Size]byte
	// dummy is a bcrypt hash checked when the username is unknown, so
	// that an unknown user costs as much time as a wrong password and
	// timing does not tell which usernames exist.
	dummy []byte
}

type basicUser struct {
	name [sha256.Size]byte // sha256 of the name: fixed size for constant-time comparison
	hash []byte
}

// errNoCredentials and errBadCredentials are the reasons a request is
// refused; neither carries anything the client sent.
var (
	errNoCredentials  = errors.New("credentials required: send HTTP basic auth or a bearer token")
	errBadCredentials = errors.New("invalid credentials")
)

// NewAuthenticator loads cfg's files. Errors name the file and line, never
// the content of a line.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.BasicUsersFile == "" && cfg.BearerTokenFile == "" {
		return nil, errors.New("auth: set a basic users file, a bearer token file or both")
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultAuthCacheTTL
	}
	a := &Authenticator{cfg: cfg, hashing: make(chan struct{}, maxPasswordChecks()), compare: bcrypt.CompareHashAndPassword}
	a.cache.ttl = cfg.CacheTTL
	a.failed.ttl = cfg.CacheTTL
	if _, err := rand.Read(a.cache.key[:]); err != nil {
		return nil, fmt.Errorf("auth: cache key: %w", err)
	}
	a.failed.key = a.cache.key
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the files. On error the credentials loaded before stay
// in force, so a broken edit never locks every client out; on success the
// verification cache is cleared, so a removed user or token stops working
// at once.
func (a *Authenticator) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	c := &credentials{}
	if a.cfg.BasicUsersFile != "" {
		users, maxCost, err := loadHtpasswd(a.cfg.BasicUsersFile)
		if err != nil {
			return err
		}
		c.users = users
		// The dummy costs what the real hashes cost; its password is
		// random and thrown away.
		var pw [16]byte
		_, _ = rand.Read(pw[:])
		if c.dummy, err = bcrypt.GenerateFromPassword(pw[:], maxCost); err != nil {
			return fmt.Errorf("auth: dummy hash: %w", err)
		}
	}
	if a.cfg.BearerTokenFile != "" {
		tokens, err := loadTokens(a.cfg.BearerTokenFile)
		if err != nil {
			return err
		}
		c.tokens = tokens
	}
	a.creds.Store(c)
	a.cache.clear()
	a.failed.clear()
	return nil
}

// Files are the files credentials are read from, for log lines.
func (a *Authenticator) Files() []string {
	var f []string
	for _, p := range []string{a.cfg.BasicUsersFile, a.cfg.BearerTokenFile} {
		if p != "" {
			f = append(f, p)
		}
	}
	return f
}

// Check reports whether r carries valid credentials: nil if it does,
// otherwise an error to show the client, which never echoes what it sent.
func (a *Authenticator) Check(r *http.Request) error {
	c := a.creds.Load()
	h := r.Header.Get("Authorization")
	if h == "" {
		return errNoCredentials
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if len(c.users) == 0 {
			return errBadCredentials
		}
		ok, err := a.checkBasic(r.Context(), c, user, pass)
		if err != nil {
			return err
		}
		if !ok {
			return errBadCredentials
		}
		return nil
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if strings.EqualFold(scheme, "Bearer") {
		if len(c.tokens) == 0 || !checkToken(c, strings.TrimSpace(tok)) {
			return errBadCredentials
		}
		return nil
	}
	return errBadCredentials
}

func (a *Authenticator) checkBasic(ctx context.Context, c *credentials, user, pass string) (bool, error) {
	key := a.cache.keyOf(user, pass)
	if a.cache.valid(key) {
		return true, nil
	}
	if a.failed.valid(key) {
		return false, nil
	}
	if err := a.acquireHashing(ctx); err != nil {
		return false, err
	}
	defer func() { <-a.hashing }()
	// Compare the name with every user, without stopping at a match, so
	// that the time taken does not depend on where (or whether) it is.
	name := sha256.Sum256([]byte(user))
	hash := c.dummy
	found := 0
	for i := range c.users {
		eq := subtle.ConstantTimeCompare(name[:], c.users[i].name[:])
		if eq == 1 && found == 0 {
			hash = c.users[i].hash
		}
		found |= eq
	}
	ok := a.compare(hash, []byte(pass)) == nil && found == 1
	if ok {
		a.cache.add(key)
	} else {
		a.failed.add(key)
	}
	return ok, nil
}

// errAuthBusy refuses a request whose password could not be checked in
// time because others were being checked: 503, retry later.
var errAuthBusy = errors.New("too many password checks in progress: retry later")

// passwordCheckWait is how long a request waits for a bcrypt slot.
const passwordCheckWait = 2 * time.Second

// maxPasswordChecks is how many bcrypt comparisons run at once: half the
// cores, so that a flood of wrong passwords leaves the rest to the relay.
func maxPasswordChecks() int { return max(1, runtime.GOMAXPROCS(0)/2) }

func (a *Authenticator) acquireHashing(ctx context.Context) error {
	select {
	case a.hashing <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(passwordCheckWait)
	defer t.Stop()
	select {
	case a.hashing <- struct{}{}:
		return nil
	case <-t.C:
		return errAuthBusy
	case <-ctx.Done():
		return errAuthBusy
	}
}

// checkToken compares tok with every accepted token in constant time:
// comparing sha256 sums keeps the length of the tokens out of the timing.
func checkToken(c *credentials, tok string) bool {
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range c.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], c.tokens[i][:])
	}
	return ok == 1
}

// challenge is the WWW-Authenticate values: one per scheme accepted.
func (a *Authenticator) challenge() []string {
	c := a.creds.Load()
	var v []string
	if len(c.users) > 0 {
		v = append(v, `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	if len(c.tokens) > 0 {
		v = append(v, `Bearer realm="`+realm+`"`)
	}
	return v
}

// loadHtpasswd reads user:bcrypt-hash lines. It returns the highest cost
// found, for the dummy hash.
func loadHtpasswd(path string) ([]basicUser, int, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, 0, fmt.Errorf("auth basic users: %w", err)
	}
	var users []basicUser
	seen := map[[sha256.Size]byte]bool{}
	maxCost := bcrypt.MinCost
	for _, l := range lines {
		bad := func(format string, args ...any) error {
			// The line itself is never quoted: it holds a hash, and a
			// mistyped line may hold a password.
			return fmt.Errorf("auth basic users %s line %d: %s", path, l.n, fmt.Sprintf(format, args...))
		}
		user, hash, ok := strings.Cut(l.text, ":")
		if !ok {
			return nil, 0, bad("want user:bcrypt-hash (create it with htpasswd -B)")
		}
		if user == "" {
			return nil, 0, bad("empty username")
		}
		if !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") {
			return nil, 0, bad("only bcrypt hashes ($2y$, $2a$, $2b$) are supported: create the file with htpasswd -B")
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, 0, bad("malformed bcrypt hash")
		}
		name := sha256.Sum256([]byte(user))
		if seen[name] {
			return nil, 0, bad("user listed twice")
		}
		seen[name] = true
		maxCost = max(maxCost, cost)
		users = append(users, basicUser{name: name, hash: []byte(hash)})
	}
	if len(users) == 0 {
		return nil, 0, fmt.Errorf("auth basic users %s: no user in the file", path)
	}
	return users, maxCost, nil
}

func loadTokens(path string) ([][sha256.Size]byte, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, fmt.Errorf("auth bearer tokens: %w", err)
	}
	var tokens [][sha256.Size]byte
	for _, l := range lines {
		if strings.ContainsAny(l.text, " \t") {
			return nil, fmt.Errorf("auth bearer tokens %s line %d: a token has no spaces: one token per line", path, l.n)
		}
		tokens = append(tokens, sha256.Sum256([]byte(l.text)))
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("auth bearer tokens %s: no token in the file", path)
	}
	return tokens, nil
}

type line struct {
	n    int
	text string
}

// readLines returns the trimmed lines of path that are neither blank nor
// comments.
func readLines(path string) ([]line, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError: names the file, not its content
	}
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, line{n: n, text: t})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// openPaths are served without credentials unless ProtectMetrics is set:
// scrapers and probes rarely carry them, and they reveal no profile.
var openPaths = map[string]bool{"/metrics": true, "/-/healthy": true, "/-/ready": true}

// authFailLogEvery rate-limits the warning about refused requests: a
// misconfigured fleet retrying every 10 s must not flood the log.
const authFailLogEvery = time.Minute

// requireAuth wraps next so that every request but the open paths needs
// valid credentials. It answers before reading the body, so a stranger
// cannot make the relay read or store anything.
func (s *Server) requireAuth(next http.Handler, reg prometheus.Registerer) http.Handler {
	a := s.cfg.Auth
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pyrorelay_auth_failures_total",
		Help: "Requests refused with 401, by reason (missing: no credentials; invalid: wrong ones).",
	}, []string{"reason"})
	for _, r := range []string{"missing", "invalid"} {
		failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(failures)
	}
	ew := connect.NewErrorWriter()
	var (
		logMu    sync.Mutex
		lastLog  time.Time
		unlogged int
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] && !s.cfg.ProtectMetrics {
			next.ServeHTTP(w, r)
			return
		}
		err := a.Check(r)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		if errors.Is(err, errAuthBusy) {
			s.refuse(w, r, &InputError{Status: http.StatusServiceUnavailable, Reason: err.Error()})
			return
		}
		reason := "invalid"
		if errors.Is(err, errNoCredentials) {
			reason = "missing"
		}
		failures.WithLabelValues(reason).Inc()
		logMu.Lock()
		unlogged++
		if time.Since(lastLog) >= authFailLogEvery {
			// Neither the username nor anything else the client sent is
			// logged: a password typed into the wrong field would land in
			// the log.
			s.log.Warn("refused requests without valid credentials (401)", "count", unlogged,
				"last_remote", r.RemoteAddr, "last_path", r.URL.Path, "last_reason", reason)
			lastLog, unlogged = time.Now(), 0
		}
		logMu.Unlock()

		for _, c := range a.challenge() {
			w.Header().Add("WWW-Authenticate", c)
		}
		if isRPCPath(r.URL.Path) && ew.IsSupported(r) {
			// Push clients (Connect, gRPC, gRPC-Web) read the code in their
			// own framing: unauthenticated, which is 401 for Connect.
			_ = ew.Write(w, r, connect.NewError(connect.CodeUnauthenticated, err))
			return
		}
		writeError(w, &InputError{Status: http.StatusUnauthorized, Reason: err.Error()})
	})
}

// isRPCPath reports whether p is a Connect or gRPC procedure,
// /package.Service/Method; everything else gets the relay's own JSON error.
func isRPCPath(p string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return ok && strings.Contains(svc, ".") && method != "" && !strings.Contains(method, "/")
}

// String describes the authenticator for log lines: which files, never
// what they hold.
func (a *Authenticator) String() string {
	c := a.creds.Load()
	var parts []string
	if a.cfg.BasicUsersFile != "" {
		parts = append(parts, fmt.Sprintf("basic (%d users from %s)", len(c.users), a.cfg.BasicUsersFile))
	}
	if a.cfg.BearerTokenFile != "" {
		parts = append(parts, fmt.Sprintf("bearer (%d tokens from %s)", len(c.tokens), a.cfg.BearerTokenFile))
	}
	return strings.Join(parts, ", ")
}

// LogValue keeps an Authenticator in a log line to its String.
func (a *Authenticator) LogValue() slog.Value { return slog.StringValue(a.String()) }
