package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestReloadRoute: POST /-/reload answers with the reload's outcome, and
// does not wait for a reload that shuts down the server it came through
// (which waits for this very request).
func TestReloadRoute(t *testing.T) {
	result := make(chan error, 1)
	var self *Server
	reload := func(ctx context.Context) error {
		err := <-result
		if errors.Is(err, errShutdownSelf) {
			// The reload restarts this receiver: Shutdown waits for the
			// request in progress, which must answer first.
			return self.Shutdown(ctx)
		}
		return err
	}
	self = New(Config{}, Options{Store: &fakeStore{}, Reload: reload})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- self.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	call := func(method string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+ReloadPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(http.MethodGet); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s", code, body)
	}
	result <- nil
	if code, body := call(http.MethodPost); code != http.StatusOK || body != "configuration reloaded\n" {
		t.Errorf("POST: %d %q", code, body)
	}
	result <- errors.New("config x: line 3: boom")
	if code, body := call(http.MethodPut); code != http.StatusInternalServerError || !strings.Contains(body, "the configuration in force stays: config x: line 3: boom") {
		t.Errorf("PUT, failing: %d %s", code, body)
	}
	result <- errShutdownSelf
	if code, body := call(http.MethodPost); code != http.StatusAccepted || !strings.Contains(body, "pyrorelay_config_last_reload_successful") {
		t.Errorf("POST restarting its own server: %d %s", code, body)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

var errShutdownSelf = errors.New("shut this server down")
