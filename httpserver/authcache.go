package httpserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"time"
)

// verifyCache remembers recently checked username and password pairs (an
// Authenticator keeps one for the pairs it accepted and one for those it
// refused) by an HMAC under a key that lives only in this process, so the
// cache holds nothing a memory dump could turn back into a password
// cheaply.
type verifyCache struct {
	key [32]byte
	ttl time.Duration

	mu sync.Mutex
	m  map[[sha256.Size]byte]time.Time // key -> expiry
}

func (vc *verifyCache) keyOf(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, vc.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (vc *verifyCache) valid(k [sha256.Size]byte) bool {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	exp, ok := vc.m[k]
	if ok && time.Now().After(exp) {
		delete(vc.m, k)
		return false
	}
	return ok
}

func (vc *verifyCache) add(k [sha256.Size]byte) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	now := time.Now()
	if vc.m == nil {
		vc.m = make(map[[sha256.Size]byte]time.Time)
	}
	if len(vc.m) >= maxAuthCacheEntries {
		for k, exp := range vc.m {
			if now.After(exp) {
				delete(vc.m, k)
			}
		}
		if len(vc.m) >= maxAuthCacheEntries {
			// Still full of live entries: start over rather than grow;
			// the cost is one bcrypt per client.
			clear(vc.m)
		}
	}
	vc.m[k] = now.Add(vc.ttl)
}

func (vc *verifyCache) clear() {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	clear(vc.m)
}

func (vc *verifyCache) len() int {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return len(vc.m)
}
