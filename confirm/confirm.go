// Package confirm asks an operator to confirm a step that deletes data
// for good (archive purge, dead-letter purge): the question goes to
// stderr, the answer comes from stdin, so a script without --yes and
// without an answer deletes nothing.
package confirm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Purge asks on w whether to delete what for good and reads the answer
// from r: "yes" or "y", in any case, confirms. An error says nothing was
// deleted and why (no answer, or another one).
func Purge(r io.Reader, w io.Writer, what string) error {
	fmt.Fprintf(w, "%s for good? Type yes to continue: ", what)
	answer, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && answer == "" {
		return errors.New("no answer on stdin: nothing deleted; add --yes to purge without asking")
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "yes" && a != "y" {
		return fmt.Errorf("not confirmed (answer %q): nothing deleted", strings.TrimSpace(answer))
	}
	return nil
}
