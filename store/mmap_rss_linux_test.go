package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMappedPagesStayBounded puts and reads back, from the file, far more
// than dropMappedEvery, as a forwarder draining a backlog does, and checks
// that the pages of the file mapped into this process (its RSS) stay a few
// drops' worth, not the bytes that went through the map.
func TestMappedPagesStayBounded(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{RecentBytes: -1})
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<10) // 16 KiB, as profiles are
	const n = 2048                                          // 32 MiB
	for i := 0; i < n; i += 64 {
		errs := make(chan error, 64)
		for range 64 {
			go func() {
				errs <- s.Put(ctx, &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Body: body}, []string{"a"})
			}()
		}
		for range 64 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	peak := int64(0)
	var after uint64
	read := 0
	for {
		items, _, err := s.ReadBatch(ctx, "a", after, 64, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		read += len(items)
		after = items[len(items)-1].Seq
		peak = max(peak, mappedRSS(t, s.Path()))
	}
	if read != n {
		t.Fatalf("read %d entries, want %d", read, n)
	}
	t.Logf("file pages mapped peaked at %d KiB", peak>>10)
	// Several drops' worth allows for what a fault maps beyond the page it
	// needs, and for the pages each commit touches; the 32 MiB read must
	// never stay mapped.
	if limit := int64(12 << 20); peak > limit {
		t.Errorf("file pages mapped peaked at %d KiB, want at most %d KiB", peak>>10, limit>>10)
	}
}

// mappedRSS is the resident size of this process's mappings of path, from
// /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 {
			// A mapping's header: address range, perms, offset, dev, inode[, path].
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(fmt.Errorf("smaps line %q: %w", line, err))
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
