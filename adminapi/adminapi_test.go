package adminapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/store"
)

// serve runs ExportHandler on a store with n entries in queue prod.
func serve(t *testing.T, n int) *httptest.Server {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var es []*store.Entry
	for i := range n {
		es = append(es, &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=app%d.cpu", i), Body: []byte("main 1\n")})
	}
	if err := st.Import(context.Background(), "prod", es); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(httpserver.ExportPath, ExportHandler(st, slog.New(slog.NewTextHandler(io.Discard, nil))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestExportRoundTrip(t *testing.T) {
	srv := serve(t, 3)
	c := Client{URL: srv.URL + "/"}
	for _, bodies := range []bool{true, false} {
		resp, err := c.Get(context.Background(), ExportQuery{Queue: "prod", App: "app1", Bodies: bodies}.Path())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := ExportComplete(resp, 1); err != nil {
			t.Errorf("bodies %v: %v", bodies, err)
		}
		if err := ExportComplete(resp, 2); err == nil || !strings.Contains(err.Error(), "the relay sent 1 entries, 2 arrived") {
			t.Errorf("a count that differs: %v", err)
		}
		if !bodies {
			if !strings.Contains(string(raw), `"app":"app1.cpu"`) {
				t.Errorf("a listing without the app: %s", raw)
			}
			continue
		}
		n := 0
		err = exportfile.ReadNDJSON(context.Background(), bytes.NewReader(raw), exportfile.Checks{CopyOnly: true, MaxBodySize: 1 << 20}, func(_ *exportfile.Record, e *store.Entry) error {
			n++
			if e.Query != "name=app1.cpu" || string(e.Body) != "main 1\n" {
				t.Errorf("entry %+v", e)
			}
			return nil
		})
		if err != nil || n != 1 {
			t.Errorf("read %d entries: %v", n, err)
		}
	}
	if err := ExportComplete(&http.Response{}, 0); err == nil || !strings.Contains(err.Error(), "ended early") {
		t.Errorf("no trailer: %v", err)
	}
}

func TestClientSaysWhatToDo(t *testing.T) {
	srv := serve(t, 1)
	c := Client{URL: srv.URL}
	for _, tt := range []struct {
		path, want string
	}{
		{ExportQuery{Queue: "staging", Bodies: true}.Path(), `the relay at ` + srv.URL + `: no queue "staging"; the relay holds queue prod (1 entries, 0 dead letters), archive (0 entries)`},
		{ExportQuery{}.Path(), "answered 400: name one of queue=NAME, dead_letter=NAME or archive=1"},
		{ExportQuery{Queue: "prod", Since: "yesterday"}.Path(), `answered 400: --since "yesterday": want RFC 3339`},
		{httpserver.StatusPath, "has no " + httpserver.StatusPath + ": is it a pyrorelay with the admin API"},
	} {
		if _, err := c.Get(context.Background(), tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("GET %s: %v, want %q", tt.path, err, tt.want)
		}
	}
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer locked.Close()
	if _, err := (Client{URL: locked.URL}).Status(context.Background()); err == nil || !strings.Contains(err.Error(), "wants credentials") {
		t.Errorf("401: %v", err)
	}
	if _, err := (Client{URL: srv.URL, CAFile: "/nonexistent"}).Get(context.Background(), "/"); err == nil || !strings.HasPrefix(err.Error(), "--ca-file: ") {
		t.Errorf("a missing CA file: %v", err)
	}
	if resp, err := srv.Client().Post(srv.URL+httpserver.ExportPath, "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:secret@relay:4040": "http://***@relay:4040",
		"https://relay:4040/x":          "https://relay:4040/x",
		"relay":                         "relay",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
