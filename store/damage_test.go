package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damageFixture builds a closed store with big and small records on two
// queues, acks, dead letters and an archive, and returns its file's bytes.
// Its records are in bbolt's pages, as schema 2 kept them (toSchema2), so
// that the file alone holds everything and damage to it reaches records.
func damageFixture(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{ArchiveRetention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		size := []int{300, 6 << 10, 12 << 10}[i%3]
		e := &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=app{i=%04d}", i),
			Body: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
		queues := []string{"a", "b"}
		if i%4 == 0 {
			queues = queues[:1]
		}
		if err := s.Put(ctx, e, queues); err != nil {
			t.Fatal(err)
		}
	}
	items, _, err := s.ReadBatch(ctx, "a", 0, 40, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := s.Ack(ctx, "a", it.Seq); err != nil {
			t.Fatal(err)
		}
	}
	items, _, err = s.ReadBatch(ctx, "b", 0, 5, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := s.MoveToDeadLetter(ctx, "b", it.Seq, DeadLetter{Reason: "400"}); err != nil {
			t.Fatal(err)
		}
	}
	toSchema2(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pagesOf lists the file's pages of each type ("branch", "leaf", "freelist").
func pagesOf(t *testing.T, file []byte) map[string][]int {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil) // a copy: the free-page list loads
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]int{}
	_ = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			out[p.Type] = append(out[p.Type], id)
			id += p.OverflowCount
		}
	})
	return out
}

type damage struct {
	name  string
	apply func(b []byte) []byte
}

func truncateTo(n int) damage {
	return damage{fmt.Sprintf("truncate to %d", n), func(b []byte) []byte { return b[:min(n, len(b))] }}
}

func zeroPage(id, ps int) damage {
	return damage{fmt.Sprintf("zero page %d", id), func(b []byte) []byte {
		clear(b[id*ps : min((id+1)*ps, len(b))])
		return b
	}}
}

func flipByte(off int, what string) damage {
	return damage{fmt.Sprintf("flip byte %d (%s)", off, what), func(b []byte) []byte {
		if off < len(b) {
			b[off] ^= 0xff
		}
		return b
	}}
}

// TestDamagedFileNeverCrashes damages a real store in many places (bytes
// flipped, pages zeroed, the file truncated) and opens each copy: it is
// either refused with the recovery hint and left as it was, or opened,
// and then every read and write either works, quarantines what fails its
// checksum, or returns an error naming the file and the way out. A panic
// or a fault would end the test binary.
func TestDamagedFileNeverCrashes(t *testing.T) {
	orig := damageFixture(t)
	ps := os.Getpagesize()
	pages := pagesOf(t, orig)
	if len(pages["branch"]) == 0 || len(pages["leaf"]) < 4 {
		t.Fatalf("fixture has too few pages to damage: %v", pages)
	}
	size := len(orig)
	var cases []damage
	for _, n := range []int{size / 2, 12288, size - ps, size - 1, 2*ps + 100, ps + 1} {
		cases = append(cases, truncateTo(n))
	}
	branch, leaves := pages["branch"][0], pages["leaf"]
	cases = append(cases,
		flipByte(branch*ps+10, "branch count"),
		flipByte(branch*ps+8, "branch flags"),
		flipByte(branch*ps+16+8, "branch element pgid"),
		zeroPage(branch, ps),
	)
	for i, leaf := range []int{leaves[0], leaves[len(leaves)/3], leaves[2*len(leaves)/3], leaves[len(leaves)-1]} {
		cases = append(cases,
			flipByte(leaf*ps+10, fmt.Sprintf("leaf %d count", i)),
			flipByte(leaf*ps+16+4, fmt.Sprintf("leaf %d element pos", i)),
			flipByte(leaf*ps+16+12, fmt.Sprintf("leaf %d element ksize", i)),
			zeroPage(leaf, ps),
		)
	}
	if fl := pages["freelist"]; len(fl) > 0 {
		cases = append(cases, flipByte(fl[0]*ps+10, "freelist count"), zeroPage(fl[0], ps))
	}
	for _, off := range []int{16 + 40, ps + 16 + 40} { // a meta page's high-water mark
		cases = append(cases, flipByte(off, "meta pgid"))
	}
	for i := 1; i <= 6; i++ { // bytes spread over the file, wherever they land
		cases = append(cases, flipByte(i*size/7+123, "anywhere"))
	}

	outcomes := map[string]int{}
	for _, dc := range cases {
		t.Run(dc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			damaged := dc.apply(bytes.Clone(orig))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			_ = os.WriteFile("/tmp/lastcase.db", damaged, 0o600)
			sum := sha256.Sum256(damaged)
			outcome := openDamaged(t, dir)
			if outcome == "refused" {
				now, err := os.ReadFile(path)
				if err != nil || sha256.Sum256(now) != sum {
					t.Errorf("refused file was changed (%v)", err)
				}
			}
			// The next start meets the same damage the same way: no panic.
			// (Unless bbolt was left unable to write: this process then
			// holds the file until it exits, as a relay would until
			// restarted.)
			if !strings.HasSuffix(outcome, "stuck") {
				_ = openDamaged(t, dir)
			}
			outcomes[outcome]++
			t.Logf("%s: %s", dc.name, outcome)
		})
	}
	t.Logf("%d cases: %v", len(cases), outcomes)
}

// openDamaged opens the store in dir and uses all of it, and says how it
// went: "refused", "damage reported", "damage reported, writer stuck"
// (bbolt's own rollback panicked and left its writer lock held),
// "quarantined" or "clean".
func openDamaged(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	s, err := Open(dir, Options{ArchiveRetention: 24 * time.Hour})
	if err != nil {
		for _, want := range []string{"pyrorelay salvage", "mv ", "left as it is"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal without %q: %v", want, err)
			}
		}
		return "refused"
	}
	reported, quarantined := 0, 0
	check := func(what string, err error) bool {
		if err == nil {
			return true
		}
		if errors.Is(err, ErrDamaged) && strings.Contains(err.Error(), "pyrorelay salvage") {
			reported++
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want an error naming the damage and the way out", what, err)
		}
		return false
	}
	for _, q := range []string{"a", "b"} {
		after := uint64(0)
		for range 100 {
			items, n, err := s.ReadBatch(ctx, q, after, 32, 1<<20)
			quarantined += n
			if !check("read "+q, err) || len(items) == 0 {
				break
			}
			seqs := make([]uint64, len(items))
			for i, it := range items {
				seqs[i] = it.Seq
			}
			after = seqs[len(seqs)-1]
			check("ack "+q, s.Ack(ctx, q, seqs...))
		}
	}
	_, err = s.Stats()
	check("stats", err)
	_, err = s.Summary()
	check("summary", err)
	_, err = s.Scan(ctx, ArchiveSource(), Filter{}, func(Record) error { return nil })
	check("scan archive", err)
	_, err = s.Scan(ctx, DeadLetterSource("b"), Filter{}, func(Record) error { return nil })
	check("scan dead letters", err)
	e := &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Body: bytes.Repeat([]byte("z"), 5000)}
	check("put", s.Put(ctx, e, []string{"a", "b"}))
	if reported > 0 {
		if h := s.Health(); h == nil || !errors.Is(h, ErrDamaged) {
			t.Errorf("Health after damage was met: %v", h)
		}
	}
	if err := s.Close(); err != nil && strings.Contains(err.Error(), "no more writes") {
		if h := s.Health(); h == nil || !strings.Contains(h.Error(), "no more writes") {
			t.Errorf("Health of a store left unable to write: %v", h)
		}
		return "damage reported, writer stuck"
	}
	switch {
	case reported > 0:
		return "damage reported"
	case quarantined > 0:
		return "quarantined"
	default:
		return "clean"
	}
}
