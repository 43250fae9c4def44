package report

import (
	"fmt"
	"time"
)

// Ago is the age of t at now for people: "42s ago", "3h12m ago", "9d ago";
// "-" for the zero time and "in the future" for a t after now.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in the future"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// agoPtr is Ago of *t, "-" when t is nil.
func agoPtr(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return Ago(*t, now)
}
