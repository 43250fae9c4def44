package confirm

import (
	"bytes"
	"strings"
	"testing"
)

func TestPurge(t *testing.T) {
	for _, c := range []struct {
		stdin, wantErr string
	}{
		{"yes\n", ""},
		{"Y\n", ""},
		{"  YES  ", ""}, // the last line may lack its newline
		{"", "no answer on stdin: nothing deleted; add --yes to purge without asking"},
		{"no\n", `not confirmed (answer "no"): nothing deleted`},
		{"\n", `not confirmed (answer ""): nothing deleted`},
		{"yess\n", `not confirmed (answer "yess"): nothing deleted`},
	} {
		var w bytes.Buffer
		err := Purge(strings.NewReader(c.stdin), &w, "Delete 3 dead letters (1.0 KiB) of prod")
		if w.String() != "Delete 3 dead letters (1.0 KiB) of prod for good? Type yes to continue: " {
			t.Errorf("%q: asked %q", c.stdin, w.String())
		}
		if (err == nil) != (c.wantErr == "") || (err != nil && err.Error() != c.wantErr) {
			t.Errorf("%q: %v, want %q", c.stdin, err, c.wantErr)
		}
	}
}
