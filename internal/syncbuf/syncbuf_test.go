package syncbuf

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestConcurrentWritesAndLines(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				fmt.Fprintf(&b, "writer=%d line=%d\n", w, i)
				_ = b.String() // reads while others write: -race checks it
			}
		})
	}
	wg.Wait()
	if got := len(b.Lines("line=")); got != 200 {
		t.Errorf("%d lines, want 200", got)
	}
	if got := b.Lines("writer=2 line=49"); !slices.Equal(got, []string{"writer=2 line=49"}) {
		t.Errorf("Lines = %q", got)
	}
}
