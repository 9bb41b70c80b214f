#!/usr/bin/env bash
# Starts the host's systemd-journald or dockerd for the end-to-end tests, unless one already
# answers, and waits until it does. The host has no systemd as PID 1 to start them (see
# shared/TESTING.md), so this is the one place that knows how: scripts/provision-e2e.sh calls it,
# and so does the fault suite (tests/faults) to bring back a daemon it killed.
#
#   scripts/start-host-daemon.sh journald|dockerd...     (as root)
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

DOCKERD_LOG=/var/log/dockerd.log
JOURNALD_LOG=/var/log/journald-e2e.log

log() { printf 'start-host-daemon: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Is some process bound to this unix socket path? (/run lives on the root disk here, so a socket
# file may be left over from an earlier boot or a killed daemon.)
unix_listening() { awk -v p="$1" '$NF == p { found = 1 } END { exit !found }' /proc/net/unix; }

start_journald() {
    unix_listening /run/systemd/journal/socket && return 0
    log "starting systemd-journald (log: $JOURNALD_LOG)"
    rm -f /run/systemd/journal/socket /run/systemd/journal/stdout /run/systemd/journal/dev-log
    setsid nohup /lib/systemd/systemd-journald >>"$JOURNALD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 100); do
        unix_listening /run/systemd/journal/socket &&
            unix_listening /run/systemd/journal/stdout && break
        sleep 0.1
    done
    unix_listening /run/systemd/journal/socket || die "journald did not come up; see $JOURNALD_LOG"
}

start_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    log "starting dockerd (log: $DOCKERD_LOG)"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not answer within 60 s"
}

[ "$(id -u)" -eq 0 ] || die "must run as root"
[ $# -gt 0 ] || die "usage: $0 journald|dockerd..."
for daemon in "$@"; do
    case "$daemon" in
    journald) start_journald ;;
    dockerd) start_dockerd ;;
    *) die "unknown daemon '$daemon' (journald or dockerd)" ;;
    esac
done
