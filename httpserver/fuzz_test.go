package httpserver

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/model/labelset"
	"google.golang.org/protobuf/proto"
)

// requireInputError fails unless err is a 400 *InputError with a reason:
// every refusal of a validator must reach the client as a 400, never a 500.
func requireInputError(t *testing.T, err error) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InputError", err, err)
	}
	if ie.Status != http.StatusBadRequest || ie.Reason == "" {
		t.Fatalf("InputError{%d, %q}: want status 400 with a reason", ie.Status, ie.Reason)
	}
}

func FuzzValidateIngest(f *testing.F) {
	for _, s := range [][2]string{
		{"name=app.cpu", ""},
		{"name=app.cpu%7Benv%3Dprod%7D&from=1764000000000000000&until=1764000010000000000&spyName=gospy", "multipart/form-data; boundary=abc"},
		{"name=app.bogus&format=pprof", "application/octet-stream"},
		{"name=com.example.App&format=jfr", "multipart/form-data; boundary=x"},
		{"name=app.bogus&format=lines", "multipart/form-data; boundary=x"},
		{"name=app.inuse_space&format=trie", "binary/octet-stream+trie"},
		{"name=app.bogus&format=pprof", "binary/octet-stream+tree"},
		{"name=app{a=b", "text/plain; charset=utf-8"},
		{"name=app{bad-label=x}", ""},
		{"format=protobuf", ""},
		{"name=app.cpu", "multipart/form-data"},
		{"name=app.cpu", "text/plain; ="},
		{"name=%ff&format=%00", "\x00"},
		{"name=app.cpu;format=pprof", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, query, contentType string) {
		q, _ := url.ParseQuery(query) // a malformed query still yields what parsed
		err := ValidateIngest(q, contentType)
		if err != nil {
			requireInputError(t, err)
			return
		}
		// Accepted: the parts the server checks must hold.
		if err := ValidateName(q.Get("name")); err != nil {
			t.Fatalf("accepted a request whose name fails ValidateName: %v", err)
		}
		if !formats[q.Get("format")] {
			t.Fatalf("accepted unknown format %q", q.Get("format"))
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"app", "app.cpu{env=prod,region=eu-west-1}", "app{a=b", "app{bad-label=x}", "{}", "app{__name__=}",
		"app{=x}", "my app", "app}", "app{a=b}{c=d}", "äpp", "app.cpu {env = prod}", "\xff{\xff=\xff}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		// The server's parser pools its state: the same name must give the
		// same answer every time.
		if again := ValidateName(name); (again == nil) != (err == nil) {
			t.Fatalf("ValidateName(%q) gave %v, then %v", name, err, again)
		}
		if err != nil {
			requireInputError(t, err)
			return
		}
		ls, perr := labelset.Parse(name)
		if perr != nil {
			t.Fatalf("accepted %q, which labelset.Parse refuses: %v", name, perr)
		}
		if ls.ServiceName() == "" {
			t.Fatalf("accepted %q without an application name", name)
		}
	})
}

func FuzzValidatePush(f *testing.F) {
	seeds := []*pushv1.PushRequest{
		{Series: []*pushv1.RawProfileSeries{cpuSeries([]byte{0x1f, 0x8b, 8, 0})}},
		{Series: []*pushv1.RawProfileSeries{{Labels: labels("service_name", "a"), Samples: []*pushv1.RawSample{{}}}}},
		{Series: []*pushv1.RawProfileSeries{{Labels: labels("a-b", "x")}}},
		{Series: []*pushv1.RawProfileSeries{{}}},
		{},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatalf("marshal seed: %v", err)
		}
		f.Add(b)
	}
	f.Add(encodeInvalidUTF8Push([]byte{1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pushv1.PushRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := ValidatePush(&req); err != nil {
			return
		}
		// Accepted: the handler re-encodes what it stores, and what it
		// stores must decode to the same request.
		body, err := proto.Marshal(&req)
		if err != nil {
			t.Fatalf("accepted a push that does not re-encode: %v", err)
		}
		var back pushv1.PushRequest
		if err := proto.Unmarshal(body, &back); err != nil || !proto.Equal(&back, &req) {
			t.Fatalf("accepted push does not round-trip: %v", err)
		}
		for _, s := range req.GetSeries() {
			if len(s.GetLabels()) == 0 {
				t.Fatal("accepted a series without labels")
			}
			for _, smp := range s.GetSamples() {
				if len(smp.GetRawProfile()) == 0 {
					t.Fatal("accepted a sample without a profile")
				}
			}
		}
	})
}
