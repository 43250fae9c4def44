package completion

import (
	"slices"
	"testing"
)

func TestSafeArgs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{nil, nil},
		{[]string{"pyrorelay", "serve", "--"}, []string{"pyrorelay", "serve", "--"}},
		{[]string{"pyrorelay", "serve", Flag}, []string{"pyrorelay", "serve", Flag}},
		{[]string{"pyrorelay", "serve", "--", Flag}, []string{"pyrorelay", "serve", Flag}},
		{[]string{"pyrorelay", "dead-letter", "purge", "--yes", "--", "--", Flag}, []string{"pyrorelay", "dead-letter", "purge", "--yes", Flag}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := SafeArgs(in); !slices.Equal(got, tt.want) {
			t.Errorf("SafeArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("SafeArgs changed its argument: %q", in)
		}
	}
}
