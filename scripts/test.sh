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
#   vm                        beside end-to-end and faults, from the guest phase on: boots the VM
#                             of scripts/vm.sh (its own kernel, so slices' limits hold; qemu
#                             emulates, so its boot takes a minute or two and it gets one CPU),
#                             installs the .deb and runs its tests (tests/e2e/slices.rs)
#
# The first three stop the run when they fail; end-to-end, faults and vm all run, so the fault
# table is printed even when a test failed, and any failing fails the run. The swarm lab and the
# engine stay up afterwards (`scripts/swarm-lab.sh down` removes the lab); the guest and the VM
# are stopped.
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
    [ -z "${vm_pid:-}" ] || kill "$vm_pid" 2>/dev/null || true
    [ -z "${vm_pid:-}" ] || scripts/vm.sh stop >&2 || true
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

# The VM's tests, in the background: its boot is mostly waiting on emulation, which the other
# phases' waiting on stacks can share. They run the e2e binary itself (a second cargo would wait
# on the first's lock for the whole run). One CPU for the VM leaves the other to the rest.
e2e_bin=$(cargo test --locked --test e2e --no-run 2>&1 |
    sed -n 's/.*Executable tests\/e2e\/main.rs (\(.*\))$/\1/p')
vm_tests() {
    local debs=(dist/composectl_*.deb)
    [ -x "$e2e_bin" ] || { echo "no e2e test binary" >&2; return 1; }
    COMPOSECTL_VM_CPUS=${COMPOSECTL_VM_CPUS:-1} scripts/vm.sh start &&
        scripts/vm.sh install "${debs[0]}" &&
        "$e2e_bin" --ignored --nocapture slices::
}
vm_log=target/vm-phase.log
vm_began=$SECONDS
printf '\n==> vm: in the background, log: %s\n' "$vm_log" >&2
vm_tests >"$vm_log" 2>&1 &
vm_pid=$!

# Only what the fast tests skipped: every test of tests/e2e (but the VM's), and the ignored ones
# of tests/cli.
phase end-to-end cargo test --locked --test cli --test e2e -- --ignored --skip slices:: || status=1
phase faults cargo test --locked --test faults -- --include-ignored || status=1

vm_rc=0
wait "$vm_pid" || vm_rc=$?
vm_pid=
printf '\n==> vm: its log\n' >&2
cat "$vm_log" >&2
vm_result=ok
[ "$vm_rc" -eq 0 ] || { vm_result="FAILED (exit $vm_rc)"; status=1; }
rows+=("$(printf '| %-11s | %5d s | %s |' vm $((SECONDS - vm_began)) "$vm_result")")
scripts/vm.sh stop >&2 || true
exit "$status"
