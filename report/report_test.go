package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(-d); return &t }

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func TestAgo(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now.Add(time.Second), "in the future"},
		{now.Add(-42 * time.Second), "42s ago"},
		{now.Add(-17 * time.Minute), "17m ago"},
		{now.Add(-(3*time.Hour + 12*time.Minute)), "3h12m ago"},
		{now.Add(-47 * time.Hour), "47h00m ago"},
		{now.Add(-9 * 24 * time.Hour), "9d ago"},
	} {
		if got := Ago(c.t, now); got != c.want {
			t.Errorf("Ago(%v) = %q, want %q", c.t, got, c.want)
		}
	}
}

func TestQueueStatus(t *testing.T) {
	for _, c := range []struct {
		name string
		st   httpserver.QueuesStatus
		want string
	}{{
		name: "empty",
		st:   httpserver.QueuesStatus{GeneratedAt: now, FileBytes: 32768},
		want: "DESTINATION  STATE  ENTRIES  BYTES  OLDEST  NEWEST  DEAD LETTERS  DEAD BYTES  RECEIVERS\n" +
			"(no queue yet)\n" +
			"\narchive: 0 entries, 0 B\n" +
			"file: 32.0 KiB on disk (a stopped relay's file shrinks with `pyrorelay compact`), record log: 0 B; quarantined records: 0\n",
	}, {
		name: "queues, archive settings, an orphan",
		st: httpserver.QueuesStatus{
			GeneratedAt: now,
			Queues: []httpserver.QueueStatus{
				{Name: "prod", Configured: yes(), Entries: 3, Bytes: 2048, Oldest: at(2 * time.Hour), Newest: at(30 * time.Second), Receivers: []string{"a", "b"}},
				{Name: "old", Configured: no(), Entries: 1, Bytes: 10, Oldest: at(72 * time.Hour), Newest: at(72 * time.Hour), DeadLetters: 2, DeadLetterBytes: 20},
				{Name: "gone", Configured: no()},
				{Name: "unknown"},
			},
			Archive: httpserver.ArchiveStatus{RetentionSeconds: 86400, MaxBytes: 1 << 30, Entries: 5, Bytes: 5000,
				Oldest: at(24 * time.Hour), Newest: at(time.Hour)},
			Quarantined: 1,
			FileBytes:   1 << 20,
			LogBytes:    64 << 20,
		},
		want: "DESTINATION  STATE           ENTRIES  BYTES    OLDEST     NEWEST   DEAD LETTERS  DEAD BYTES  RECEIVERS\n" +
			"prod         configured      3        2.0 KiB  2h00m ago  30s ago  0             0 B         a,b\n" +
			"old          ORPHAN          1        10 B     3d ago     3d ago   2             20 B        -\n" +
			"gone         not configured  0        0 B      -          -        0             0 B         -\n" +
			"unknown      -               0        0 B      -          -        0             0 B         -\n" +
			"\narchive: 5 entries, 4.9 KiB, received 2026-03-09T12:00:00Z to 2026-03-10T11:00:00Z (retention 24h0m0s, max 1.0 GiB)\n" +
			"file: 1.0 MiB on disk (a stopped relay's file shrinks with `pyrorelay compact`), record log: 64.0 MiB; quarantined records: 1\n" +
			"\n1 orphan queue(s): no configured destination drains old. Move one to a destination with\n" +
			"`pyrorelay queue move --from old --to NEW` (relay stopped), or send it with `pyrorelay replay --queue old --to URL`.\n",
	}} {
		var b bytes.Buffer
		QueueStatus(&b, c.st)
		if b.String() != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
}

func TestDeadLetters(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 130))
	dead := now.Add(-time.Minute)
	recs := []struct {
		x    exportfile.Record
		size int64
		app  string
	}{
		{exportfile.Record{ID: 7, ReceivedAt: now.Add(-time.Hour), Reason: "HTTP 400: bad", Status: 400, Attempts: 1, DeadLetteredAt: &dead,
			Request: &exportfile.ResendHint{Method: "POST"}}, 2048, "checkout"},
		{exportfile.Record{ID: 8, ReceivedAt: now, Reason: long, Attempts: 5}, 10, "api"},
	}
	for _, c := range []struct {
		name string
		json bool
		want string
	}{{
		name: "table",
		want: "ID  RECEIVED              DEAD-LETTERED         STATUS  ATTEMPTS  SIZE     APP       REASON\n" +
			"7   2026-03-10T11:00:00Z  2026-03-10T11:59:00Z  400     1         2.0 KiB  checkout  HTTP 400: bad\n" +
			"8   2026-03-10T12:00:00Z  0001-01-01T00:00:00Z  -       5         10 B     api       " + long[:120] + "...\n" +
			"2 dead letters (2.0 KiB) of prod since x\n",
	}, {
		name: "json",
		json: true,
		want: `{"id":7,"kind":"","received_at":"2026-03-10T11:00:00Z","query":"","content_type":"","content_encoding":"","tenant":"","body_size":0,"body_sha256":"","reason":"HTTP 400: bad","status":400,"attempts":1,"dead_lettered_at":"2026-03-10T11:59:00Z"}` + "\n" +
			`{"id":8,"kind":"","received_at":"2026-03-10T12:00:00Z","query":"","content_type":"","content_encoding":"","tenant":"","body_size":0,"body_sha256":"","reason":"` + long + `","attempts":5}` + "\n",
	}} {
		var b bytes.Buffer
		l := NewDeadLetters(&b, c.json)
		for _, r := range recs {
			x := r.x
			if err := l.Add(&x, r.size, r.app); err != nil {
				t.Fatal(err)
			}
		}
		l.Flush()
		l.Summary(2, 2058, "prod", " since x")
		if b.String() != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
}

func TestSalvage(t *testing.T) {
	lists := []store.SalvageList{
		{Source: store.QueueSource("prod"), Expected: 10, Copied: 8, Corrupt: 1},
		{Source: store.DeadLetterSource("prod"), Expected: -1, Copied: 2, Unreadable: 1},
		{Source: store.ArchiveSource(), Expected: 0},
	}
	table := "LIST                    EXPECTED  COPIED  CORRUPT  LOST\n" +
		"queue \"prod\"            10        8       1        2\n" +
		"dead letters of \"prod\"  ?         2       0        ?\n" +
		"archive                 0         0       0        0\n"
	tail := "the old file /d/pyrorelay.db is unchanged; to use the new store, start the relay with --data-dir /new, or move it in place of the old one: mv /d/pyrorelay.db /d/pyrorelay.db.broken && mv /new/pyrorelay.db /d/\n"
	for _, c := range []struct {
		name string
		rep  store.SalvageReport
		want string
	}{
		{"intact", store.SalvageReport{Lists: lists[2:]}, "LIST     EXPECTED  COPIED  CORRUPT  LOST\narchive  0         0       0        0\n" +
			"copied 0 entries into /new; nothing was damaged\n" + tail},
		{"known loss", store.SalvageReport{Lists: []store.SalvageList{lists[0], lists[2]}, Damaged: true},
			"LIST          EXPECTED  COPIED  CORRUPT  LOST\nqueue \"prod\"  10        8       1        2\narchive       0         0       0        0\n" +
				"copied 8 entries into /new; 2 lost to damage\n" + tail},
		{"unknown loss", store.SalvageReport{Lists: lists, Damaged: true}, table +
			"copied 10 entries into /new; 2 known lost, and an unknown number behind damage whose counters could not be read\n" + tail},
		{"with segments", store.SalvageReport{Lists: lists[2:], Files: []string{"/new/pyrorelay.db", "/new/pyrorelay-00ab-00000001.seg", "/new/pyrorelay-00ab-00000002.seg"}},
			"LIST     EXPECTED  COPIED  CORRUPT  LOST\narchive  0         0       0        0\n" +
				"copied 0 entries into /new; nothing was damaged\n" +
				"the old file /d/pyrorelay.db is unchanged; to use the new store, start the relay with --data-dir /new, or move it in place of the old one: " +
				"mv /d/pyrorelay.db /d/pyrorelay.db.broken && mv /new/pyrorelay.db /new/pyrorelay-00ab-00000001.seg /new/pyrorelay-00ab-00000002.seg /d/\n"},
	} {
		var b bytes.Buffer
		Salvage(&b, c.rep, "/d/pyrorelay.db", "/new")
		if b.String() != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
}

func TestCompact(t *testing.T) {
	var b bytes.Buffer
	Compact(&b, "/d", store.CompactResult{Before: 4 << 20, After: 1 << 20, Removed: []store.Leftover{{Path: "/d/pyrorelay.db.compact-1", Bytes: 512}}})
	Compact(&b, "/e", store.CompactResult{Before: 100, After: 200})
	want := "removed /d/pyrorelay.db.compact-1 (512 B), left by a compact that was interrupted\n" +
		"/d: 4.0 MiB before, 1.0 MiB after (3.0 MiB freed)\n" +
		"/e: 100 B before, 200 B after (0 B freed)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestDrain(t *testing.T) {
	results := []daemon.DrainResult{
		{Destination: "prod", Before: store.QueueStats{Entries: 4}},
		{Destination: "staging", Before: store.QueueStats{Entries: 9, DeadEntries: 1},
			After:       store.QueueStats{Entries: 3, Bytes: 3072, Oldest: now.Add(-2 * time.Hour), DeadEntries: 2},
			LastFailure: &relay.Failure{At: now.Add(-5 * time.Second), Status: 503, Reason: "HTTP 503: down"}},
		{Destination: "dev", Before: store.QueueStats{Entries: 1}, After: store.QueueStats{Entries: 1, Bytes: 1, Oldest: now}},
	}
	want := "prod: empty; 4 delivered\n" +
		"staging: 3 entries (3.0 KiB) left, oldest received 2h00m ago; 5 delivered; last failure 5s ago: HTTP 503: down; 1 moved to dead-letter (see `pyrorelay dead-letter list --destination staging`)\n" +
		"dev: 1 entries (1 B) left, oldest received 0s ago; 0 delivered\n"
	var b bytes.Buffer
	Drain(&b, results, now)
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestReplayed(t *testing.T) {
	var b bytes.Buffer
	Replayed(&b, 3, 3072, 0, `queue "prod"`, "http://***@p:4040", 1500*time.Microsecond)
	Replayed(&b, 1, 10, 2, "stdin", "http://p:4040", 2*time.Second)
	want := "sent 3 entries (3.0 KiB) from queue \"prod\" to http://***@p:4040 in 2ms\n" +
		"sent 1 entries (10 B) from stdin to http://p:4040 in 2s; 2 not sent\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestExported(t *testing.T) {
	var b bytes.Buffer
	Exported(&b, 2, 2048, 0, `queue "prod"`, "/tmp/x", " received since 2026-03-01T00:00:00Z")
	Exported(&b, 0, 0, 0, "dead-letter:prod of the relay at http://p:4040", "-", "")
	Exported(&b, 1, 10, 2, "archive", "-", "")
	want := "exported 2 entries (2.0 KiB) from queue \"prod\" to /tmp/x received since 2026-03-01T00:00:00Z\n" +
		"exported 0 entries (0 B) from dead-letter:prod of the relay at http://p:4040 to stdout\n" +
		"exported 1 entries (10 B) from archive to stdout\n" +
		"warning: 2 unreadable entries skipped (corrupt or missing); the relay quarantines them when it reads them\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestImported(t *testing.T) {
	var b bytes.Buffer
	Imported(&b, 2, 20, 0, "prod", "/d")
	Imported(&b, 0, 0, 3, "prod", "/d")
	want := "imported 2 entries (20 B) into queue \"prod\" of /d\n" +
		"imported 0 entries (0 B) into queue \"prod\" of /d; 3 left out by the filters\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestQueueStatusJSON(t *testing.T) {
	var b bytes.Buffer
	st := httpserver.QueuesStatus{GeneratedAt: now, Queues: []httpserver.QueueStatus{{Name: "prod", Entries: 1}}, FileBytes: 10}
	if err := QueueStatusJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	want := `{
  "generated_at": "2026-03-10T12:00:00Z",
  "queues": [
    {
      "name": "prod",
      "entries": 1,
      "bytes": 0,
      "oldest_age_seconds": 0,
      "dead_letters": 0,
      "dead_letter_bytes": 0
    }
  ],
  "archive": {
    "entries": 0,
    "bytes": 0
  },
  "quarantined": 0,
  "file_bytes": 10,
  "log_bytes": 0
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
