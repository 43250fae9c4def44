package pushwire

import (
	"errors"
	"maps"
	"testing"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"
)

// encode is a PushRequest with one series per label list and one sample
// with each of profiles in the first series.
func encode(t testing.TB, series [][]string, profiles ...[]byte) []byte {
	t.Helper()
	req := &pushv1.PushRequest{}
	for _, kv := range series {
		s := &pushv1.RawProfileSeries{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels = append(s.Labels, &typesv1.LabelPair{Name: kv[i], Value: kv[i+1]})
		}
		req.Series = append(req.Series, s)
	}
	if len(req.Series) > 0 {
		for _, p := range profiles {
			req.Series[0].Samples = append(req.Series[0].Samples, &pushv1.RawSample{RawProfile: p, ID: "id"})
		}
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func collect(b []byte, stopAfter int) ([]map[string]string, error) {
	var got []map[string]string
	err := EachSeries(b, func(l map[string]string) bool {
		got = append(got, l)
		return len(got) != stopAfter
	})
	return got, err
}

func TestEachSeries(t *testing.T) {
	two := encode(t, [][]string{{"service_name", "a", "env", "prod"}, {"service_name", "b"}})
	tests := []struct {
		name      string
		body      []byte
		stopAfter int
		want      []map[string]string
		wantErr   error
	}{
		{"two series", two, 0, []map[string]string{{"service_name": "a", "env": "prod"}, {"service_name": "b"}}, nil},
		{"stop after the first", two, 1, []map[string]string{{"service_name": "a", "env": "prod"}}, nil},
		{"duplicate name: first value wins", encode(t, [][]string{{"service_name", "first", "service_name", "last"}}), 0,
			[]map[string]string{{"service_name": "first"}}, nil},
		{"no series", nil, 0, nil, nil},
		{"series without labels", encode(t, [][]string{{}}), 0, []map[string]string{{}}, nil},
		{"broken framing", two[:len(two)-3], 0, nil, ErrMalformed},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, 0, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(tt.body, tt.stopAfter)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d series %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if !maps.Equal(got[i], tt.want[i]) {
					t.Errorf("series %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestProfilesCompressed(t *testing.T) {
	gz := []byte{0x1f, 0x8b, 8, 0, 0, 0}
	labels := [][]string{{"service_name", "a"}}
	tests := []struct {
		name    string
		body    []byte
		want    bool
		wantErr error
	}{
		{"every profile gzipped", encode(t, labels, gz, gz), true, nil},
		{"one profile not gzipped", encode(t, labels, gz, []byte("raw pprof")), false, nil},
		{"no profile", encode(t, labels), false, nil},
		{"broken framing", encode(t, labels, gz)[:20], false, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProfilesCompressed(tt.body)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("ProfilesCompressed = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzEachSeries: the walker never panics, and on any bytes protobuf
// decodes as a PushRequest it agrees with the decoded message: the same
// series with the same labels (first value of a duplicate name), and no
// error from ProfilesCompressed.
func FuzzEachSeries(f *testing.F) {
	f.Add(encode(f, [][]string{{"service_name", "a", "env", "prod"}, {"service_name", "b"}}, []byte{0x1f, 0x8b}))
	f.Add(encode(f, [][]string{{"service_name", "first", "service_name", "last"}}, []byte("pprof")))
	f.Add(encode(f, [][]string{{}}))
	f.Add([]byte{0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []map[string]string
		err := EachSeries(b, func(l map[string]string) bool { got = append(got, l); return true })
		_, cerr := ProfilesCompressed(b)
		var req pushv1.PushRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		if err != nil || cerr != nil {
			t.Fatalf("protobuf decodes the request, the walker does not: %v, %v", err, cerr)
		}
		if len(got) != len(req.Series) {
			t.Fatalf("walker found %d series, protobuf %d", len(got), len(req.Series))
		}
		for i, s := range req.Series {
			want := map[string]string{}
			for _, l := range s.Labels {
				if _, dup := want[l.Name]; !dup {
					want[l.Name] = l.Value
				}
			}
			if !maps.Equal(got[i], want) {
				t.Fatalf("series %d: walker %v, protobuf %v", i, got[i], want)
			}
		}
	})
}
