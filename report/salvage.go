package report

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/pyrorelay/pyrorelay/store"
)

// Salvage writes rep, what store.Salvage copied from the store file src
// into the data dir to: a table of the lists (what each held, what was
// copied, corrupt and lost; "?" where the counters could not be read),
// the totals, and how to use the new store: where it is, or how to move
// its files (rep.Files) in place of the old one.
func Salvage(w io.Writer, rep store.SalvageReport, src, to string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tEXPECTED\tCOPIED\tCORRUPT\tLOST")
	var copied, lost int64
	unknown := false
	for _, l := range rep.Lists {
		exp, lst := "?", "?"
		if l.Expected >= 0 {
			exp, lst = fmt.Sprint(l.Expected), fmt.Sprint(l.Lost())
			lost += l.Lost()
		} else if l.Unreadable > 0 {
			unknown = true
		}
		copied += l.Copied
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", l.Source, exp, l.Copied, l.Corrupt, lst)
	}
	_ = tw.Flush()
	switch {
	case !rep.Damaged:
		fmt.Fprintf(w, "copied %d entries into %s; nothing was damaged\n", copied, to)
	case unknown:
		fmt.Fprintf(w, "copied %d entries into %s; %d known lost, and an unknown number behind damage whose counters could not be read\n", copied, to, lost)
	default:
		fmt.Fprintf(w, "copied %d entries into %s; %d lost to damage\n", copied, to, lost)
	}
	files := rep.Files
	if len(files) == 0 {
		files = []string{filepath.Join(to, store.FileName)}
	}
	fmt.Fprintf(w, "the old file %s is unchanged; to use the new store, start the relay with --data-dir %s, or move it in place of the old one: mv %s %s.broken && mv %s %s/\n",
		src, to, src, src, strings.Join(files, " "), filepath.Dir(src))
}
