package datadir

import "net"

// ListenURL turns a --listen address into a URL to reach it locally, for
// messages that tell the operator to ask a running relay with --url
// instead of opening its data dir.
func ListenURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://127.0.0.1:4040"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
