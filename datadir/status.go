package datadir

import (
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/store"
)

// Status is the status document of a stopped relay's store, the one a
// running relay serves on its admin API. With a config (configGiven),
// each queue says whether cfg sends it (so orphans show) and, when cfg's
// receivers check out, which receivers feed it; a config that does not
// check out still gives the counts.
func Status(st *store.Store, cfg daemon.Config, configGiven bool, now time.Time) (httpserver.QueuesStatus, error) {
	sum, err := st.Summary()
	if err != nil {
		return httpserver.QueuesStatus{}, err
	}
	var configured []string // unknown without a config
	if configGiven {
		configured = []string{}
		for _, d := range cfg.Destinations {
			configured = append(configured, d.Name)
		}
		if len(configured) == 0 {
			configured = append(configured, store.HoldQueue)
		}
	}
	status := httpserver.BuildStatus(sum, configured, now)
	if configGiven && cfg.FinishReceivers() == nil {
		status.SetReceivers(cfg.Feeds())
	}
	return status, nil
}

// ReadStatus opens the data dir of cfg for reading and builds its Status.
// While a relay holds the data dir, the error says to ask it with
// `pyrorelay queue status --url` at cfg's listen address.
func ReadStatus(cfg daemon.Config, configGiven bool, now time.Time) (httpserver.QueuesStatus, error) {
	st, err := Open(cfg.DataDir, Read, "ask it instead with `pyrorelay queue status --url "+ListenURL(cfg.Listen)+"` (the relay's --listen address)")
	if err != nil {
		return httpserver.QueuesStatus{}, err
	}
	defer st.Close()
	return Status(st, cfg, configGiven, now)
}
