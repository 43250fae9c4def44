// Package packaging holds the ways to install pyrorelay: a systemd unit
// (systemd/), a container image (docker/), Kubernetes manifests for an
// edge DaemonSet and a central StatefulSet (kubernetes/), and how to
// install shell completion, whose scripts the binary prints with
// `pyrorelay completion bash|zsh|fish` (completion/README.md). The package
// has no code; its tests check the files against the relay: every flag and
// config they pass is one `pyrorelay config check` accepts, the hardening
// they promise is there, the StatefulSet's volume holds the file its disk
// budget allows, and the bash completion script completes the commands.
package packaging
