package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	tests := []struct {
		total, n, failed int
		bytes, totalB    int64
		want             string
	}{
		{-1, 4, 0, 2048, 0, "sent 4 entries, 2.0 KiB, 2.0 entries/s, 1.0 KiB/s"},
		{10, 4, 1, 2048, 4096, "sent 4/10 entries, 2.0 KiB/4.0 KiB, 2.0 entries/s, 1.0 KiB/s, 1 failed, ETA 3s"},
		{4, 4, 0, 10, 10, "sent 4/4 entries, 10 B/10 B, 2.0 entries/s, 5 B/s"},
	}
	for _, tt := range tests {
		p := &Progress{verb: "sent", total: tt.total, totalBytes: tt.totalB}
		if got := p.line(tt.n, tt.bytes, tt.failed, 2*time.Second); got != tt.want {
			t.Errorf("line(%d of %d) = %q, want %q", tt.n, tt.total, got, tt.want)
		}
	}
}

// Off a terminal, finishing writes nothing: the final summary is the
// caller's; the counts are there to print it.
func TestFinishOffTerminal(t *testing.T) {
	var out bytes.Buffer
	p := New(&out, "exported", 3, 30)
	p.Add(10)
	p.Add(20)
	p.Fail()
	p.Finish()
	p.Finish() // a second call is harmless
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
	if n, b, f := p.Counts(); n != 2 || b != 30 || f != 1 {
		t.Errorf("Counts() = %d, %d, %d; want 2, 30, 1", n, b, f)
	}
	if p.Elapsed() < 0 {
		t.Error("negative elapsed time")
	}
	if line := p.line(2, 30, 1, time.Second); !strings.HasPrefix(line, "exported 2/3 entries") {
		t.Errorf("line = %q", line)
	}
}
