#!/usr/bin/env bash
# The full test suite, as CI runs it (needs root). In order, each a phase whose wall time is
# printed in a table at the end:
#
#   fmt, clippy, fast tests   no host services needed: a slip fails here in seconds or minutes,
#                             before anything is provisioned
#   provision                 Docker engine, Compose v2, journald, the test image and the Docker
#                             Swarm lab (scripts/provision-e2e.sh, scripts/swarm-lab.sh; cached:
#                             a second run only checks)
#   packaging                 the one release build: builds, lints and test-installs the .deb and
#                             .rpm (packaging/check.sh); the guest installs that .deb
#   guest                     boots the system-mode guest (scripts/guest.sh: systemd as PID 1,
#                             its own docker.service; its rootfs is cached) and installs the .deb
#   end-to-end                the tests a plain `cargo test` lists as ignored (tests/e2e, and the
#                             golden tests' systemd-analyze verify), where a missing piece of the
#                             environment is now a failure
#   faults                    the fault suite, user manager and guest at the same time; its table
#                             is the run's last word before the phase table
#
# The first three stop the run when they fail; end-to-end and faults both run, so the fault table
# is printed even when a test failed, and either failing fails the run. The swarm lab and the
# engine stay up afterwards (`scripts/swarm-lab.sh down` removes the lab); the guest is stopped.
set -uo pipefail
cd "$(dirname "$0")/.."

rows=()
status=0
began=$SECONDS

# phase NAME COMMAND...: runs it, records its wall time and result; returns its exit code.
phase() {
    local name=$1 start=$SECONDS rc=0
    shift
    printf '\n==> %s: %s\n' "$name" "$*" >&2
    "$@" || rc=$?
    local result=ok
    [ "$rc" -eq 0 ] || result="FAILED (exit $rc)"
    rows+=("$(printf '| %-11s | %5d s | %s |' "$name" $((SECONDS - start)) "$result")")
    return "$rc"
}

finish() {
    [ -z "${guest_started:-}" ] || scripts/guest.sh stop >&2 || true
    printf '\n| phase       | wall time | result |\n|---|---|---|\n'
    printf '%s\n' "${rows[@]}"
    printf '| %-11s | %5d s | %s |\n' total $((SECONDS - began)) \
        "$([ "$status" -eq 0 ] && echo ok || echo FAILED)"
}
trap finish EXIT

fail_fast() { phase "$@" || { status=1; exit 1; }; }

fail_fast fmt cargo fmt --all -- --check
fail_fast clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# Every test target; the end-to-end tests are ignored here and the fault runner says so.
fail_fast "fast tests" cargo test --workspace --locked

provision() {
    scripts/provision-e2e.sh
    # About 5 s; bounded, since a wedged engine must fail CI rather than hang it.
    timeout 300 scripts/swarm-lab.sh up
}
fail_fast provision provision
# It installs and removes the package on the host, so it runs before, not during, the
# end-to-end tests.
fail_fast packaging packaging/check.sh

# The guest's tests find it through COMPOSECTL_GUEST_DIR (scripts/guest.sh's default otherwise).
export COMPOSECTL_GUEST_DIR=${COMPOSECTL_GUEST_DIR:-/var/lib/composectl-e2e/guest}
boot_guest() {
    local debs=(dist/composectl_*.deb)
    guest_started=1
    scripts/guest.sh start && scripts/guest.sh install "${debs[0]}"
}
fail_fast guest boot_guest

# Only what the fast tests skipped: every test of tests/e2e, and the ignored ones of tests/cli.
phase end-to-end cargo test --locked --test cli --test e2e -- --ignored || status=1
phase faults cargo test --locked --test faults -- --include-ignored || status=1
exit "$status"
