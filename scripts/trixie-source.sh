#!/usr/bin/env bash
# Adds Debian trixie as an apt source pinned at 100 to the system at ROOT (default /), with the
# mirror of this machine's own bookworm source: Docker Compose v2 and docker.io 26 come from
# trixie, and nothing else is taken from it unless asked for by name (pkg/trixie). Used by
# scripts/provision-e2e.sh for the host and by scripts/guest.sh for the guest's rootfs.
#
# The mirror is read from /etc/apt/sources.list.d/debian.sources (its first URIs:), never written
# into the project; --mirror prints it (scripts/guest.sh debootstraps from it). Leaves existing
# files alone.
#
#   scripts/trixie-source.sh [ROOT]
#   scripts/trixie-source.sh --mirror
set -euo pipefail

log() { printf 'trixie-source: %s\n' "$*" >&2; }

mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null) || true
if [ -z "$mirror" ]; then
    log "ERROR: no URIs: line in /etc/apt/sources.list.d/debian.sources to take the mirror from"
    exit 1
fi
if [ "${1:-}" = --mirror ]; then
    echo "$mirror"
    exit 0
fi

root=${1:-/}
source_file=$root/etc/apt/sources.list.d/composectl-trixie.sources
pin_file=$root/etc/apt/preferences.d/composectl-trixie

if [ ! -f "$source_file" ]; then
    log "adding $source_file"
    mkdir -p "$(dirname "$source_file")"
    cat >"$source_file" <<EOF
# Added by composectl scripts/trixie-source.sh: Docker Compose v2 (+ docker.io 26).
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
if [ ! -f "$pin_file" ]; then
    log "adding $pin_file"
    mkdir -p "$(dirname "$pin_file")"
    cat >"$pin_file" <<'EOF'
# Added by composectl scripts/trixie-source.sh: never take trixie packages
# unless explicitly requested (pkg/trixie).
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOF
fi
