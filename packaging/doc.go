// Package packaging holds the ways to install pyrorelay: a systemd unit
// (systemd/), a container image (docker/), Kubernetes manifests for an
// edge DaemonSet and a central StatefulSet (kubernetes/), and shell
// completion (completion/). The package has no code; its tests check the
// files against the relay: every flag and config they pass is one
// `pyrorelay config check` accepts, the hardening they promise is there,
// and the StatefulSet's volume holds the file its disk budget allows.
package packaging
