#!/usr/bin/env bash
# The full test suite, as CI runs it: provision the real environment (Docker engine, Compose v2,
# journald, the test image, and a Docker Swarm lab of engines of its own; needs root), then lint,
# check the distro packages, boot the system-mode guest (scripts/guest.sh: systemd as PID 1, its
# own docker.service) with the .deb just built, and run every test, the end-to-end ones too
# (--include-ignored: a plain `cargo test` lists them as ignored), where a missing piece of the
# environment is a failure; last the fault suite, which prints its table. The swarm lab stays up
# afterwards, like the engine (`scripts/swarm-lab.sh down` removes it); the guest is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/provision-e2e.sh
# About 5 s; bounded, since a wedged engine must fail CI rather than hang it.
timeout 300 scripts/swarm-lab.sh up
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Builds, lints (lintian) and test-installs the .deb and .rpm; it installs and removes the package,
# so it runs before, not during, the end-to-end tests.
packaging/check.sh

# The guest's tests find it through COMPOSECTL_GUEST_DIR (scripts/guest.sh's default otherwise).
export COMPOSECTL_GUEST_DIR=${COMPOSECTL_GUEST_DIR:-/var/lib/composectl-e2e/guest}
trap 'scripts/guest.sh stop' EXIT
scripts/guest.sh start
debs=(dist/composectl_*.deb)
scripts/guest.sh install "${debs[0]}"

# Every test target but the fault suite (name a new one here), then the fault suite on its own:
# it takes minutes, takes the engines down, and its table is the run's last word. Both run, so
# the table is printed even when a test failed; either failing fails the run.
status=0
COMPOSECTL_E2E=1 cargo test --locked --lib --bins --test integration -- --include-ignored || status=1
cargo test --locked --test faults -- --include-ignored || status=1
exit "$status"
