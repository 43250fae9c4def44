package selection

import (
	"net/url"
	"strings"
	"testing"
	"time"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	times := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"now", now},
		{"-2h", now.Add(-2 * time.Hour)},
		{"now-30m", now.Add(-30 * time.Minute)},
		{"-7d", now.Add(-7 * 24 * time.Hour)},
		{"-1d12h", now.Add(-36 * time.Hour)},
		{"2026-02-28T10:00:00Z", time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)},
		{"2026-02-28T10:00:00.5+01:00", time.Date(2026, 2, 28, 9, 0, 0, 5e8, time.UTC)},
		{"2026-02-28", time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range times {
		got, err := ParseWhen("--since", tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "-2x", "2026-13-01", "--2h"} {
		if _, err := ParseWhen("--since", bad, now); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseWhen(%q): %v", bad, err)
		}
	}
}

// entries are an /ingest of shop.cpu{env=prod}, one of cart{env=dev} and a
// Push of shop{env=dev,req_id=e02}, received a minute apart from t0.
func entries(t *testing.T, t0 time.Time) []*store.Entry {
	t.Helper()
	ingest := func(name string) string {
		return url.Values{"name": {name}, "from": {"1700000000"}}.Encode()
	}
	body, err := proto.Marshal(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels: []*typesv1.LabelPair{
			{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "shop"},
			{Name: "env", Value: "dev"}, {Name: "req_id", Value: "e02"},
		},
		Samples: []*pushv1.RawSample{{RawProfile: []byte("pprof"), ID: "e02"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return []*store.Entry{
		{Kind: store.KindIngest, ReceivedAt: t0, Query: ingest("shop.cpu{env=prod}"), Body: []byte("main 1\n")},
		{Kind: store.KindIngest, ReceivedAt: t0.Add(time.Minute), Query: ingest("cart{env=dev}"), Body: []byte("main 1\n")},
		{Kind: store.KindPush, ReceivedAt: t0.Add(2 * time.Minute), Body: body},
	}
}

func TestParseApp(t *testing.T) {
	es := entries(t, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	apps := []struct {
		sel  string
		want []bool // shop.cpu prod, cart dev, push shop dev
	}{
		{"shop", []bool{true, false, true}},
		{"shop.cpu", []bool{true, false, false}},
		{"cart", []bool{false, true, false}},
		{"shop{env=dev}", []bool{false, false, true}},
		{"shop{env=dev,req_id=e02}", []bool{false, false, true}},
		{"shop{env=dev,req_id=e05}", []bool{false, false, false}},
		{"sho", []bool{false, false, false}},
	}
	for _, tt := range apps {
		m, err := ParseApp(tt.sel)
		if err != nil {
			t.Fatalf("%q: %v", tt.sel, err)
		}
		for i, e := range es {
			if got := m.Match(e); got != tt.want[i] {
				t.Errorf("--app %q on entry %d: %v, want %v", tt.sel, i, got, tt.want[i])
			}
		}
	}
	for _, bad := range []string{"", "{env=prod}", "a b{"} {
		if _, err := ParseApp(bad); err == nil {
			t.Errorf("ParseApp(%q) accepted", bad)
		}
	}
	if m, _ := ParseApp("shop"); m.Match(&store.Entry{Kind: store.KindPush, Body: []byte{0xff, 0xff}}) {
		t.Error("a push that does not decode matched")
	}
}

func TestSelectionMatchesAndDescribes(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	es := entries(t, t0)
	sel, err := Parse("2026-03-01T12:01:00Z", "2026-03-01T12:03:00Z", "shop", t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true} {
		if got := sel.Matches(es[i]); got != want {
			t.Errorf("entry %d: %v, want %v", i, got, want)
		}
	}
	if want := " (since 2026-03-01T12:01:00Z, until 2026-03-01T12:03:00Z, app shop)"; sel.Describe() != want {
		t.Errorf("Describe() = %q, want %q", sel.Describe(), want)
	}
	if all, _ := Parse("", "", "", t0); all.Describe() != "" || !all.Matches(es[0]) {
		t.Errorf("an empty selection: %q, matches %v", all.Describe(), all.Matches(es[0]))
	}
	if _, err := Parse("-1h", "-2h", "", t0); err == nil || !strings.Contains(err.Error(), "is not before --until") {
		t.Errorf("since after until: %v", err)
	}
	if got := AppOf(es[2]); got != "push shop" {
		t.Errorf("AppOf(push) = %q", got)
	}
	if got := AppOf(es[1]); got != "cart{env=dev}" {
		t.Errorf("AppOf(ingest) = %q", got)
	}
}
