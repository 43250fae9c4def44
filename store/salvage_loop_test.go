package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A page number that points back up its own tree (a cycle): bbolt's
// cursors would descend forever, until the process runs out of memory.
// Open refuses the file; Salvage leaves that queue alone, says so, copies
// the rest, and keeps the queue's records in the salvage queue.
func TestLoopingPageTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var many, few []*Entry
	for i := range 400 {
		many = append(many, &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=c{i=%d}", i), Body: []byte("main 1\n")})
	}
	for i := range 20 {
		few = append(few, &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=a{i=%d}", i), Body: []byte("main 1\n")})
	}
	if err := s.Import(ctx, "c", many); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, "a", few); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	root := queueRoot(t, file, "c")
	ps := os.Getpagesize()
	if file[root*ps+8]&branchPageFlag == 0 {
		t.Fatalf("queue c's root page %d is not a branch", root)
	}
	// The branch's first child becomes the branch itself.
	binary.NativeEndian.PutUint64(file[root*ps+pageHeaderLen+8:], uint64(root))
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(dir, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open of a file whose page tree loops: %v, want ErrDamaged", err)
	}
	rep, err := Salvage(ctx, path, filepath.Join(t.TempDir(), "new"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]SalvageList{}
	for _, l := range rep.Lists {
		got[l.Source.String()] = l
	}
	if a := got[QueueSource("a").String()]; a.Copied != 20 {
		t.Errorf("queue a: %+v, want its 20 entries copied", a)
	}
	if c := got[QueueSource("c").String()]; c.Copied != 0 || c.Unreadable == 0 || c.Lost() != 400 {
		t.Errorf("queue c: %+v, want it left alone and reported lost", c)
	}
	// Its records are still read, by ID: they go to the salvage queue.
	if sq := got[QueueSource(SalvageQueue).String()]; sq.Copied != 400 {
		t.Errorf("salvage queue: %+v, want queue c's 400 records", sq)
	}
	if !rep.Damaged {
		t.Error("report says no damage")
	}
}
