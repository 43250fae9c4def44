package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/powercut"
)

// powerCutHelperEnv names the data dir TestPowerCutLogHelper works on;
// the helper runs only when it is set. powerCutModeEnv says what it does:
// "load" or "check".
const (
	powerCutHelperEnv = "PYRORELAY_STORE_POWERCUT_DIR"
	powerCutModeEnv   = "PYRORELAY_STORE_POWERCUT_MODE"
)

// powerCutBody is the body of entry id: big enough for the record log,
// of a size and content that differ from entry to entry.
func powerCutBody(id string) []byte {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	n := 3000 + int(h.Sum32()%12000)
	return bytes.Repeat([]byte(id+";"), n/(len(id)+1)+1)[:n]
}

// powerCutDead says which entries the helper dead-letters instead of
// acking: they stay, and pin segments the store must copy forward.
func powerCutDead(id string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()%5 == 0
}

// TestPowerCutLog runs a store with big records in a process of its own
// on a file system that throws away what was not synced when the power is
// cut (internal/powercut), and cuts the power under load, round after
// round on the same data dir: the cut lands on the n-th data write,
// truncate or sync (inside a commit: between the segment's write and its
// sync, between those and bbolt's pages, while a segment is created,
// removed or copied forward), or after a random delay. After every cut the
// store must open on what was synced, and hold every entry whose Put
// returned, with its body, and none whose Ack returned. The cmd/pyrorelay
// power-cut test posts small profiles, which stay in bbolt's pages; this
// one is about the log.
func TestPowerCutLog(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	backing, mnt := t.TempDir(), t.TempDir()
	mounts := powercut.NewMounts(t, backing, mnt)
	dataDir := filepath.Join(mnt, "data")
	held := map[string]bool{}  // Put returned, no ack begun
	maybe := map[string]bool{} // an ack begun: gone or not
	gone := map[string]bool{}  // Ack returned
	puts, acks := 0, 0
	// The store runs in processes of their own, never in this one, which
	// serves the file system: bbolt maps its file, and a page fault on a
	// mapping of this process's own FUSE mount could wait for a server
	// goroutine that cannot run.
	helper := func(mode string, round int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPowerCutLogHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), powerCutHelperEnv+"="+dataDir, powerCutModeEnv+"="+mode,
			fmt.Sprintf("PYRORELAY_STORE_POWERCUT_ROUND=%d", round))
		return cmd
	}
	for round := range rounds {
		fsys := mounts.Mount()
		cmd := helper("load", round)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		var lines []string
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(ready)
					continue
				}
				lines = append(lines, sc.Text())
			}
		}()
		select {
		case <-ready:
		case <-read:
			_ = cmd.Wait()
			t.Fatalf("round %d: the helper ended before it was ready: %s", round, stderr.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the helper did not open the store: %s", round, stderr.String())
		}
		if round%2 == 0 {
			fsys.CutAfter(1 + rand.IntN(400))
		} else {
			time.AfterFunc(time.Duration(rand.IntN(300))*time.Millisecond, func() { fsys.Cut() })
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, cut := fsys.Report(); cut {
				break
			}
		}
		r := fsys.Cut()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-read
		mounts.Unmount()
		for _, l := range lines {
			what, id, _ := strings.Cut(l, " ")
			// A reader may read an entry before its writer said its Put
			// returned: an ack begun or done outranks the put.
			switch what {
			case "P":
				if !maybe[id] && !gone[id] {
					held[id] = true
				}
				puts++
			case "a":
				delete(held, id)
				if !gone[id] {
					maybe[id] = true
				}
			case "A":
				delete(held, id)
				delete(maybe, id)
				gone[id] = true
				acks++
			}
		}
		t.Logf("round %d: cut at %q after %d writes and %d syncs, %d unsynced bytes thrown away; %d lines", round, r.At, r.Writes, r.Syncs, r.Bytes, len(lines))

		mounts.Mount()
		check := helper("check", round)
		out, err := check.Output()
		if err != nil {
			t.Fatalf("round %d: the store after the cut: %v\n%s", round, err, out)
		}
		found := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if id, verdict, ok := strings.Cut(strings.TrimPrefix(l, "F "), " "); ok && strings.HasPrefix(l, "F ") {
				found[id] = verdict
			}
		}
		for id := range held {
			if v, ok := found[id]; !ok || v != "ok" {
				t.Fatalf("round %d: entry %s, whose put returned, is %q after the cut (absent if empty)", round, id, v)
			}
		}
		for id := range gone {
			if _, ok := found[id]; ok {
				t.Fatalf("round %d: entry %s, whose ack returned, is back", round, id)
			}
		}
		mounts.Unmount()
	}
	if puts == 0 || acks == 0 {
		t.Fatalf("%d puts and %d acks returned in %d rounds: the cuts came too early to test anything", puts, acks, rounds)
	}
}

// TestPowerCutLogHelper is TestPowerCutLog's store process, on the data
// dir $PYRORELAY_STORE_POWERCUT_DIR. In mode "load" it opens the store
// with small segments, puts big records from four writers and reads, acks
// or dead-letters them from one reader, and says on stdout what returned:
// "P id" after a Put, "a id" before an Ack and "A id" after it; it runs
// until killed. In mode "check" it opens the store as a relay would and
// says "F id ok" (or "F id differs") for each entry of the queue and its
// dead letters, then closes it.
func TestPowerCutLogHelper(t *testing.T) {
	dir := os.Getenv(powerCutHelperEnv)
	if dir == "" {
		t.Skip("run by TestPowerCutLog")
	}
	if os.Getenv(powerCutModeEnv) == "check" {
		powerCutCheck(t, dir)
		return
	}
	round := os.Getenv("PYRORELAY_STORE_POWERCUT_ROUND")
	s, err := Open(dir, Options{segmentSize: 64 << 10, compactIdle: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = os.Stdout.WriteString(line + "\n")
	}
	say("ready")
	ctx := context.Background()
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-w%d-%d", round, w, i)
				e := &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: "id=" + id, Body: powerCutBody(id)}
				if err := s.Put(ctx, e, []string{"a"}); err != nil {
					return
				}
				say("P " + id)
			}
		}()
	}
	go func() {
		wake := s.Wake("a")
		var after uint64
		for {
			items, _, err := s.ReadBatch(ctx, "a", after, 16, 1<<20)
			if err != nil {
				return
			}
			if len(items) == 0 {
				<-wake
				continue
			}
			for _, it := range items {
				after = it.Seq
				id := strings.TrimPrefix(it.Entry.Query, "id=")
				if powerCutDead(id) {
					if err := s.MoveToDeadLetter(ctx, "a", it.Seq, DeadLetter{Reason: "test"}); err != nil {
						return
					}
					continue
				}
				say("a " + id)
				if err := s.Ack(ctx, "a", it.Seq); err != nil {
					return
				}
				say("A " + id)
			}
		}
	}()
	time.Sleep(time.Hour) // until killed
}

// powerCutCheck is TestPowerCutLogHelper's mode "check".
func powerCutCheck(t *testing.T, dir string) {
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after the cut: %v", err)
	}
	verdict := func(e *Entry) {
		id := strings.TrimPrefix(e.Query, "id=")
		v := "ok"
		if !bytes.Equal(e.Body, powerCutBody(id)) {
			v = "differs"
		}
		fmt.Printf("F %s %s\n", id, v)
	}
	items, quarantined := readAll(t, s, "a", 256)
	if quarantined != 0 {
		t.Fatalf("%d records quarantined after the cut", quarantined)
	}
	for _, it := range items {
		verdict(it.Entry)
	}
	if err := s.DeadLetters("a", func(d *DeadLetter, e *Entry) error {
		if e == nil {
			return fmt.Errorf("dead letter %d lost its entry", d.Seq)
		}
		verdict(e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}
