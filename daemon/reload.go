package daemon

// The reload diff: what a new configuration starts, stops, restarts or
// re-routes in a running relay, and which settings wait for a restart.

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/pyrorelay/pyrorelay/relay"
)

// reload moves the relay from the configuration in force to next:
// destinations added get forwarders, removed ones have them stopped (their
// queues stay, as orphans), changed ones are restarted; receivers added
// are started, removed ones stopped gracefully, those with a new address or
// new limits restarted, those with new forward_to or routes re-routed in
// place. Anything that fails before the switch (a forwarder that cannot be
// built, an address that cannot be bound) keeps the old configuration and
// is returned; so is a receiver that could not be restarted after it.
func (rt *runningRelay) reload(next Config) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.cfg
	if fields := restartOnlyChanges(old, next); len(fields) > 0 {
		rt.log.Warn("reload: these settings take effect only at a restart: keeping the running values", "settings", strings.Join(fields, ","))
		next = keepStatic(old, next)
	}

	// Destinations.
	oldDests := map[string]relay.Destination{}
	for _, d := range old.Destinations {
		oldDests[d.Name] = d
	}
	newFwd := map[string]*relay.Forwarder{}
	var addedDests, changedDests, removedDests []string
	for _, d := range next.Destinations {
		od, had := oldDests[d.Name]
		if had && reflect.DeepEqual(od, d) {
			continue
		}
		f, err := relay.NewForwarder(d, rt.st, rt.metrics, rt.log)
		if err != nil {
			rt.log.Error("reload: new configuration not applied: keeping the one in force", "err", err)
			return fmt.Errorf("new configuration not applied: %w", err)
		}
		newFwd[d.Name] = f
		if had {
			changedDests = append(changedDests, d.Name)
		} else {
			addedDests = append(addedDests, d.Name)
		}
	}
	nextDests := map[string]bool{}
	for _, d := range next.Destinations {
		nextDests[d.Name] = true
	}
	for _, d := range old.Destinations {
		if !nextDests[d.Name] {
			removedDests = append(removedDests, d.Name)
		}
	}

	// Receivers: bind the new addresses before anything changes, so
	// that a busy port leaves the old configuration whole.
	var added, restarted, rerouted, removed []string
	var bind []Receiver
	nextRecv := map[string]Receiver{}
	for _, r := range next.receivers {
		nextRecv[r.Name] = r
		rr, had := rt.receivers[r.Name]
		switch {
		case !had:
			added = append(added, r.Name)
			bind = append(bind, r)
		case !rr.spec.sameListener(r):
			restarted = append(restarted, r.Name)
			// A new address can be bound while the old one serves.
			if rr.spec.Listen != r.Listen {
				bind = append(bind, r)
			}
		case !rr.spec.sameRouting(r):
			rerouted = append(rerouted, r.Name)
		}
	}
	for name := range rt.receivers {
		if _, ok := nextRecv[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	// An address a stopping receiver holds (a receiver renamed, or two
	// that swap ports) is free only once it stopped: bound after.
	freed := map[string]bool{}
	for _, n := range append(slices.Clone(removed), restarted...) {
		freed[rt.receivers[n].spec.Listen] = true
	}
	bind = slices.DeleteFunc(bind, func(r Receiver) bool {
		_, port, _ := net.SplitHostPort(r.Listen)
		return freed[r.Listen] && port != "0"
	})
	lns, err := listenAll(bind)
	if err != nil {
		rt.log.Error("reload: new configuration not applied: keeping the one in force", "err", err)
		return fmt.Errorf("new configuration not applied: %w", err)
	}

	// Switch. Destinations first, so that every queue a receiver may
	// route to has its forwarder; removed destinations last, once no
	// receiver routes to them.
	for _, n := range addedDests {
		rt.runForwarder(destByName(next, n), newFwd[n])
	}
	for _, n := range changedDests {
		rt.stopForwarders([]string{n})
		rt.runForwarder(destByName(next, n), newFwd[n])
	}
	rt.cfg = next
	for _, n := range rerouted {
		rr := rt.receivers[n]
		rr.router.table.Store(nextRecv[n].table)
		rr.spec = nextRecv[n]
	}
	var wg sync.WaitGroup
	for _, n := range append(slices.Clone(removed), restarted...) {
		rr := rt.receivers[n]
		delete(rt.receivers, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.stopReceiver(rr, next.ShutdownTimeout)
		}()
	}
	wg.Wait()
	for _, n := range removed {
		rt.log.Info("receiver stopped", "receiver", n)
	}
	var notRestarted []error
	for _, n := range append(slices.Clone(added), restarted...) {
		r := nextRecv[n]
		ln := lns[n]
		if ln == nil {
			// An address a stopped receiver held, free only now.
			if ln, err = net.Listen("tcp", r.Listen); err != nil {
				rt.log.Error("reload: receiver not restarted: its address cannot be bound; fix it and reload", "receiver", n, "err", err)
				notRestarted = append(notRestarted, fmt.Errorf("receiver %q not restarted: %w", n, err))
				continue
			}
		}
		rt.startReceiver(r, ln)
	}
	if len(removedDests) > 0 {
		rt.stopForwarders(removedDests)
		stats, _ := rt.st.Stats()
		for _, n := range removedDests {
			rt.log.Warn("destination removed: its forwarder is stopped, its queue is kept as an orphan", "destination", n,
				"entries", stats[n].Entries, "dead_letters", stats[n].DeadEntries)
		}
	}
	rt.publish(next)
	// Only what changed, so the line says at a glance what a reload did.
	var attrs []any
	for _, c := range []struct {
		key   string
		names []string
	}{
		{"receivers_added", added}, {"receivers_removed", removed},
		{"receivers_restarted", restarted}, {"receivers_rerouted", rerouted},
		{"destinations_added", addedDests}, {"destinations_removed", removedDests},
		{"destinations_changed", changedDests},
	} {
		if len(c.names) > 0 {
			attrs = append(attrs, c.key, strings.Join(c.names, ","))
		}
	}
	if len(attrs) == 0 {
		rt.log.Info("reload: configuration reloaded: no receiver or destination changed")
	} else {
		rt.log.Info("reload: configuration reloaded", attrs...)
	}
	return errors.Join(notRestarted...)
}

func destByName(cfg Config, name string) relay.Destination {
	for _, d := range cfg.Destinations {
		if d.Name == name {
			return d
		}
	}
	return relay.Destination{}
}

// reloadable are the Config fields a reload applies: the receivers and the
// destinations, and the top-level settings that only feed their defaults.
var reloadable = map[string]bool{
	"Receivers": true, "receivers": true, "Destinations": true,
	"Listen": true, "MaxBodySize": true, "MaxConnections": true,
	"ReadTimeout": true, "WriteTimeout": true, "IdleTimeout": true,
	"ForwardConcurrency": true, "ForwardMaxConcurrency": true, "MaxAttempts": true, "MaxAge": true,
	"ShutdownTimeout": true,
}

// restartOnlyChanges lists, by YAML key, the settings that differ between
// old and next and that a reload cannot apply (the store, logging, auth
// and TLS files, ...).
func restartOnlyChanges(old, next Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if reloadable[f.Name] || !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				key = f.Name
			}
			out = append(out, key)
		}
	}
	return out
}

// keepStatic returns next with every setting a reload cannot apply taken
// from old.
func keepStatic(old, next Config) Config {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(&next).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if reloadable[f.Name] || !f.IsExported() {
			continue
		}
		nv.Field(i).Set(ov.Field(i))
	}
	return next
}
