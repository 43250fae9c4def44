// Package packaging holds the ways to install pyrorelay: a systemd unit
// (systemd/), a container image (docker/), Kubernetes manifests for an
// edge DaemonSet and a central StatefulSet (kubernetes/), and shell
// completion (completion/). The package has no code; its tests check the
// files against the relay: every flag and config they pass is one
// `pyrorelay config check` accepts, and the hardening they promise is there.
package packaging
