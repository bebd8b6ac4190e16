// Package contrib holds no code: its tests check the deployment recipes
// beside it and at the repository root — the static binary the Dockerfile
// builds, the container image (contrib/docker/build-local.sh and the
// Dockerfile's final stage) and the systemd unit
// (contrib/systemd/switchboard.service).
package contrib
