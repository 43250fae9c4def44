package adminapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// ExportCompleteTrailer ends an export answer with the number of entries
// sent: an answer without it was cut short, whatever its last line.
const ExportCompleteTrailer = "X-Pyrorelay-Export-Entries"

// exportWriteGrace bounds each write of an export answer: the server's
// write timeout is for one request, an export may take much longer.
const exportWriteGrace = time.Minute

// ExportHandler serves GET /api/v1/export on the running relay's store:
// the entries of ?queue=NAME, ?dead_letter=NAME or ?archive=1, selected by
// since, until and app as the flags do, as the ndjson `pyrorelay export
// --out -` writes. bodies=0 leaves the bodies out and names each entry's
// application instead (for listing).
func ExportHandler(st *store.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, r.Method+" is not allowed: GET an export", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		src, status, err := exportSource(st, q)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		sel, err := selection.Parse(q.Get("since"), q.Get("until"), q.Get("app"), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		bodies := q.Get("bodies") != "0"
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Trailer", ExportCompleteTrailer)
		rc := http.NewResponseController(w)
		sink := exportfile.NewNDJSONWriter(w)
		res, err := st.Scan(r.Context(), src, sel.Filter, func(rec store.Record) error {
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteGrace))
			x := exportfile.FromStore(rec, src)
			if !bodies {
				x.App = selection.AppOf(rec.Entry)
				return sink.Write(x, nil)
			}
			return sink.Write(x, rec.Entry.Body)
		})
		if err == nil {
			err = sink.Close()
		}
		if err != nil {
			// Without the trailer the client knows the answer is cut
			// short; aborting makes sure it does not look whole.
			log.Warn("admin API export cut short", "source", src.String(), "entries", res.Entries, "err", err)
			panic(http.ErrAbortHandler)
		}
		w.Header().Set(ExportCompleteTrailer, strconv.Itoa(res.Entries))
	})
}

// exportSource is the store source an export query names.
func exportSource(st *store.Store, q url.Values) (store.Source, int, error) {
	var picked []store.Source
	if n := q.Get("queue"); n != "" {
		picked = append(picked, store.QueueSource(n))
	}
	if n := q.Get("dead_letter"); n != "" {
		picked = append(picked, store.DeadLetterSource(n))
	}
	if q.Get("archive") == "1" {
		picked = append(picked, store.ArchiveSource())
	}
	if len(picked) != 1 {
		return store.Source{}, http.StatusBadRequest, errors.New("name one of queue=NAME, dead_letter=NAME or archive=1")
	}
	src := picked[0]
	if src.Kind == store.SourceArchive {
		return src, 0, nil
	}
	sum, err := st.Summary()
	if err != nil {
		return src, http.StatusServiceUnavailable, fmt.Errorf("read the store: %w", err)
	}
	if _, ok := sum.Queues[src.Queue]; !ok {
		return src, http.StatusNotFound, fmt.Errorf("no queue %q; the relay holds %s", src.Queue, datadir.Describe(sum))
	}
	return src, 0, nil
}

// ExportQuery is what an export asks for: the one source (Queue,
// DeadLetter or Archive) and the selection's flag values, as given.
type ExportQuery struct {
	Queue, DeadLetter string
	Archive           bool
	Since, Until, App string
	// Bodies asks for the entries' bodies; without them each record
	// names its application instead (for listing).
	Bodies bool
}

// Path is the admin API path and query of q.
func (q ExportQuery) Path() string {
	v := url.Values{}
	for k, s := range map[string]string{"queue": q.Queue, "dead_letter": q.DeadLetter, "since": q.Since, "until": q.Until, "app": q.App} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Archive {
		v.Set("archive", "1")
	}
	if !q.Bodies {
		v.Set("bodies", "0")
	}
	return httpserver.ExportPath + "?" + v.Encode()
}
