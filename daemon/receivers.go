package daemon

// Receivers: the relay's listeners. Each has its own address, HTTP limits
// and destinations (forward_to, and routes that choose among destinations
// by a profile's labels and tenant). Without a receivers: list the relay
// has one, "default", made of listen, the HTTP limits and every
// destination, which is what the flags describe.

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/route"
	"github.com/pyrorelay/pyrorelay/store"
)

// defaultReceiver is the name of the receiver the flags (or the top-level
// listen) describe.
const defaultReceiver = "default"

// Receiver is one listener of the relay. Limits left at zero take the
// top-level values (max_body_size, max_connections, read_timeout,
// write_timeout, idle_timeout).
type Receiver struct {
	Name           string        `yaml:"name"`
	Listen         string        `yaml:"listen"`
	MaxConnections int           `yaml:"max_connections,omitempty"`
	ReadTimeout    time.Duration `yaml:"read_timeout,omitempty"`
	WriteTimeout   time.Duration `yaml:"write_timeout,omitempty"`
	IdleTimeout    time.Duration `yaml:"idle_timeout,omitempty"`
	MaxBodySize    ByteSize      `yaml:"max_body_size,omitempty"`
	// ForwardTo names the destinations of every profile no route
	// matches (all of them when there is no route).
	ForwardTo []string `yaml:"forward_to"`
	// Routes choose destinations by labels and tenant, first match
	// wins (package route).
	Routes []route.Rule `yaml:"routes,omitempty"`

	// table is Routes compiled over ForwardTo, set by finishReceivers.
	table *route.Table
}

// sameListener reports whether r and o listen the same way: a change in
// any of these needs a new listener, while forward_to and routes change in
// place.
func (r Receiver) sameListener(o Receiver) bool {
	return r.Listen == o.Listen && r.MaxConnections == o.MaxConnections &&
		r.ReadTimeout == o.ReadTimeout && r.WriteTimeout == o.WriteTimeout &&
		r.IdleTimeout == o.IdleTimeout && r.MaxBodySize == o.MaxBodySize
}

// sameRouting reports whether r and o send every profile to the same
// destinations.
func (r Receiver) sameRouting(o Receiver) bool {
	return slices.Equal(r.ForwardTo, o.ForwardTo) && reflect.DeepEqual(r.Routes, o.Routes)
}

// receiverNameRE is what a receiver may be called: it becomes a metric
// label value and a log attribute, so the destination name rules apply.
var receiverNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// FinishReceivers builds the effective receiver list (c.receivers) and
// checks it against the destinations, naming the receiver, the
// destination and the field of every mistake. It runs after the
// destinations are checked.
func (c *Config) FinishReceivers() error {
	dests := make([]string, 0, len(c.Destinations))
	known := map[string]bool{}
	for _, d := range c.Destinations {
		dests = append(dests, d.Name)
		known[d.Name] = true
	}
	if len(c.Receivers) == 0 {
		// The flags' relay: one receiver forwarding to every destination.
		c.receivers = []Receiver{{Name: defaultReceiver, Listen: c.Listen, ForwardTo: dests}}
	} else {
		if c.Listen != DefaultConfig().Listen {
			return fmt.Errorf("listen: %q is set, but so is receivers: give each receiver its own listen instead", c.Listen)
		}
		c.receivers = slices.Clone(c.Receivers)
	}
	destList := strings.Join(dests, ", ")
	if destList == "" {
		destList = "none: store-only"
	}
	names := map[string]int{}
	listens := map[string]int{}
	fed := map[string]bool{}
	for i := range c.receivers {
		r := &c.receivers[i]
		where := fmt.Sprintf("receivers[%d]", i)
		if r.Name != "" {
			where = fmt.Sprintf("receivers[%d] (name %q)", i, r.Name)
		}
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("%s: %s: %s", where, field, fmt.Sprintf(format, args...))
		}
		if !receiverNameRE.MatchString(r.Name) {
			return bad("name", "%q: must be letters, digits, '_', '.', '-', starting with a letter or digit", r.Name)
		}
		if j, dup := names[r.Name]; dup {
			return bad("name", "%q is used twice: receivers[%d] has it too", r.Name, j)
		}
		names[r.Name] = i
		if r.Listen == "" {
			return bad("listen", "must not be empty")
		}
		_, port, err := net.SplitHostPort(r.Listen)
		if err != nil {
			return bad("listen", "%q is not host:port: %v", r.Listen, err)
		}
		// Port 0 picks a free port per listener, so it may repeat.
		if j, dup := listens[r.Listen]; dup && port != "0" {
			return bad("listen", "%s is receivers[%d] (name %q)'s address too", r.Listen, j, c.receivers[j].Name)
		}
		listens[r.Listen] = i
		if r.MaxConnections < 0 || r.MaxBodySize < 0 || r.ReadTimeout < 0 || r.WriteTimeout < 0 || r.IdleTimeout < 0 {
			return bad("max_connections, max_body_size and the timeouts", "must not be negative")
		}
		// Zero limits inherit the top-level ones.
		if r.MaxConnections == 0 {
			r.MaxConnections = c.MaxConnections
		}
		if r.MaxBodySize == 0 {
			r.MaxBodySize = c.MaxBodySize
		}
		if r.ReadTimeout == 0 {
			r.ReadTimeout = c.ReadTimeout
		}
		if r.WriteTimeout == 0 {
			r.WriteTimeout = c.WriteTimeout
		}
		if r.IdleTimeout == 0 {
			r.IdleTimeout = c.IdleTimeout
		}
		if len(r.ForwardTo) == 0 && len(dests) > 0 {
			return bad("forward_to", "must name at least one destination (destinations: %s)", destList)
		}
		for _, d := range r.ForwardTo {
			if !known[d] {
				return bad("forward_to", "unknown destination %q (destinations: %s)", d, destList)
			}
		}
		tab, err := route.Compile(r.Routes, r.ForwardTo)
		if err != nil {
			// The error names the field: routes[1].match.service_name.
			return fmt.Errorf("%s: %w", where, err)
		}
		for j := range tab.Len() {
			for _, d := range tab.RuleDestinations(j) {
				if !known[d] {
					return bad(fmt.Sprintf("routes[%d].forward_to", j), "unknown destination %q (destinations: %s)", d, destList)
				}
			}
		}
		r.table = tab
		for _, d := range tab.Destinations() {
			fed[d] = true
		}
	}
	for i, d := range c.Destinations {
		if !fed[d.Name] {
			return fmt.Errorf("destinations[%d] (name %q): no receiver forwards to it: add it to a receiver's forward_to or to a route", i, d.Name)
		}
	}
	return nil
}

// feeds maps each destination to the receivers that can send to it (by
// forward_to or a route), for `queue status`. In store-only mode the hold
// queue is fed by every receiver.
func feeds(receivers []Receiver) map[string][]string {
	out := map[string][]string{}
	for _, r := range receivers {
		dests := r.table.Destinations()
		if len(dests) == 0 {
			dests = []string{store.HoldQueue}
		}
		for _, d := range dests {
			out[d] = append(out[d], r.Name)
		}
	}
	for d := range out {
		slices.Sort(out[d])
	}
	return out
}
