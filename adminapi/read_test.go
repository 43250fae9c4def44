package adminapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pyrorelay/pyrorelay/exportfile"
)

func TestClientExport(t *testing.T) {
	srv := serve(t, 3)
	var out, status bytes.Buffer
	res, err := (Client{URL: srv.URL}).Export(context.Background(), ExportQuery{Queue: "prod"}, exportfile.NewNDJSONWriter(&out), &status)
	if err != nil || res.Entries != 3 || res.Bytes != 3*int64(len("main 1\n")) || res.From != "queue:prod" {
		t.Fatalf("Export = %+v, %v", res, err)
	}
	if n := strings.Count(out.String(), "\n"); n != 3 || !strings.Contains(out.String(), `"body":`) {
		t.Errorf("the sink got %d lines, with bodies? %s", n, out.String())
	}
}

// fakeExport answers every request with lines of ndjson and, unless
// trailer is "", the count trailer.
func fakeExport(t *testing.T, lines []string, trailer string) Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("bodies") != "0" {
			t.Errorf("a listing asked for bodies: %s", r.URL)
		}
		w.Header().Set("Trailer", ExportCompleteTrailer)
		for _, l := range lines {
			_, _ = w.Write([]byte(l + "\n"))
		}
		if trailer != "" {
			w.Header().Set(ExportCompleteTrailer, trailer)
		}
	}))
	t.Cleanup(srv.Close)
	return Client{URL: srv.URL}
}

func TestClientDeadLetters(t *testing.T) {
	lines := []string{`{"id":1,"body_size":10,"reason":"400","app":"a"}`, `{"id":2,"body_size":5,"reason":"expired","app":"b"}`}
	for _, c := range []struct {
		name       string
		lines      []string
		trailer    string
		wantIDs    string
		incomplete bool
		wantErr    string
	}{
		{"complete", lines, "2", "1,2", false, ""},
		{"ended early", lines, "", "1,2", true, "the relay's answer ended early"},
		{"fewer arrived", lines, "3", "1,2", true, "the relay sent 3 entries, 2 arrived"},
		{"garbage", []string{lines[0], "{nope"}, "2", "1", false, "dead letter 2 from the relay: "},
	} {
		var ids []string
		n, size, err := fakeExport(t, c.lines, c.trailer).DeadLetters(context.Background(), ExportQuery{DeadLetter: "prod", Bodies: true}, func(x *exportfile.Record) error {
			ids = append(ids, string(rune('0'+x.ID)))
			return nil
		})
		if got := strings.Join(ids, ","); got != c.wantIDs {
			t.Errorf("%s: records %s, want %s", c.name, got, c.wantIDs)
		}
		if c.wantErr == "" {
			if err != nil || n != 2 || size != 15 {
				t.Errorf("%s: %d, %d, %v", c.name, n, size, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || errors.Is(err, ErrIncomplete) != c.incomplete {
			t.Errorf("%s: %v, want %q (incomplete %v)", c.name, err, c.wantErr, c.incomplete)
		}
	}
}
