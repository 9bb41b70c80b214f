#!/usr/bin/env bash
# The full test suite, as CI runs it: provision the real environment (Docker engine, Compose v2,
# journald, the test image, and a Docker Swarm lab of engines of its own; needs root), then lint,
# check the distro packages and run every test, the end-to-end ones too (--include-ignored: a plain
# `cargo test` lists them as ignored), where a missing piece of the environment is a failure. The
# swarm lab stays up afterwards, like the engine (`scripts/swarm-lab.sh down` removes it).
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
COMPOSECTL_E2E=1 cargo test --locked -- --include-ignored
