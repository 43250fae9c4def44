package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestPasswordChecksBounded: wrong passwords, each new so that no cache
// helps, run bcrypt at most maxPasswordChecks at once; bearer tokens and
// cached passwords pass meanwhile without waiting; a wrong password sent
// again costs no bcrypt; and one that finds no slot in time is refused busy
// (503), not let in.
func TestPasswordChecksBounded(t *testing.T) {
	f := newAuthFixture(t)
	a := f.a
	basic := func(u, p string) error {
		r, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
		r.SetBasicAuth(u, p)
		return a.Check(r)
	}
	if err := basic("alice", f.alicePW); err != nil { // cached from now on
		t.Fatal(err)
	}

	var inside, peak, calls atomic.Int64
	gate := make(chan struct{})
	a.compare = func(hash, pw []byte) error {
		calls.Add(1)
		n := inside.Add(1)
		defer inside.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	bound := int64(maxPasswordChecks())
	const attackers = 12
	errs := make(chan error, attackers)
	var wg sync.WaitGroup
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- basic(fmt.Sprintf("mallory%d", i), "guess")
		}()
	}
	waitFor(t, "the password checks to fill their slots", func() bool { return inside.Load() == bound })

	tok, _ := http.NewRequest(http.MethodPost, "http://relay/ingest", nil)
	tok.Header.Set("Authorization", "Bearer "+f.tok)
	if err := a.Check(tok); err != nil {
		t.Errorf("bearer token while passwords are checked: %v", err)
	}
	if err := basic("alice", f.alicePW); err != nil {
		t.Errorf("cached password while passwords are checked: %v", err)
	}
	close(gate)
	wg.Wait()
	close(errs)
	busy := 0
	for err := range errs {
		switch {
		case errors.Is(err, errAuthBusy):
			busy++
		case !errors.Is(err, errBadCredentials):
			t.Errorf("wrong password: %v, want invalid credentials or busy", err)
		}
	}
	if p := peak.Load(); p > bound {
		t.Errorf("%d bcrypt checks ran at once, bound %d", p, bound)
	}
	t.Logf("%d of %d wrong passwords refused busy", busy, attackers)

	before := calls.Load()
	if err := basic("mallory0", "guess"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := basic("mallory0", "guess"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if n := calls.Load() - before; n > 1 {
		t.Errorf("the same wrong password sent twice ran bcrypt %d times, want at most once", n)
	}
}

// TestPasswordCheckBusyAnswers503: a request that waits too long for a
// password check is answered 503 with Retry-After, not 401.
func TestPasswordCheckBusyAnswers503(t *testing.T) {
	f := newAuthFixture(t)
	for range cap(f.a.hashing) {
		f.a.hashing <- struct{}{}
	}
	ts := newTestServer(t, Config{Auth: f.a})
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/ingest?name=app.cpu", nil)
	req.SetBasicAuth("alice", "new-"+f.alicePW)
	start := time.Now()
	resp, b := do(t, nil, req)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q): %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if waited := time.Since(start); waited < passwordCheckWait {
		t.Errorf("answered after %v, before the wait of %v", waited, passwordCheckWait)
	}
}
