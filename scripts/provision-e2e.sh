#!/usr/bin/env bash
# Provision the real environment composectl's end-to-end tests need on a
# Debian 12 machine where we are root, systemd is NOT PID 1 and no Docker
# engine runs (see shared/TESTING.md):
#
#   * a trixie apt source pinned low (scripts/trixie-source.sh).
#   * Debian packages: docker.io + docker-cli + docker-buildx + docker-compose
#     (Compose v2) from trixie, pinned low; busybox-static; dbus +
#     dbus-user-session (the user units dbus.socket/dbus.service that let a
#     `systemd --user` manager socket-activate its own D-Bus); systemd;
#     lintian and rpm for the packaging checks.
#   * /run/systemd/system (without it `systemd --user` refuses to start).
#   * a systemd-journald, unless one is already listening, and a dockerd,
#     unless `docker info` already answers (scripts/start-host-daemon.sh).
#   * the local test image composectl-test/busybox:latest (nothing can be
#     pulled: there is no registry; scripts/make-test-image.sh).
#
# Idempotent; a second run does no apt work and takes a few seconds at most.
# Usage: scripts/provision-e2e.sh        (as root)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TRIXIE_SOURCE=/etc/apt/sources.list.d/composectl-trixie.sources

cleanup_paths=()
cleanup() {
    local p
    for p in "${cleanup_paths[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT

log() { printf 'provision-e2e: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# ---------------------------------------------------------------- apt ----
pkg_version() { # prints the installed version, or nothing
    dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null |
        awk '$1 == "ii" { print $2 }'
}
pkg_at_least() { # pkg minimum-version
    local v
    v="$(pkg_version "$1")"
    [ -n "$v" ] && dpkg --compare-versions "$v" ge "$2"
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null
        apt_updated=1
    fi
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" >/dev/null
}

# Trixie source, pinned at 100 so nothing is upgraded from it unless asked; its mirror is the
# machine's own.
if [ ! -f "$TRIXIE_SOURCE" ]; then
    apt_updated=0
    trixie_added=1
fi
"$here/trixie-source.sh" /

# Docker from trixie. Each package is named with /trixie and recommends are
# off: `apt-get install -t trixie docker.io` would instead make trixie the
# target release for every dependency and recommend, and drag in libc6,
# perl, python3 and systemd 257 (100+ upgrades). docker-compose itself only
# *recommends* docker-cli, and nothing pulls docker.io, so all are named.
docker_pkgs=()
pkg_at_least docker.io 26 || docker_pkgs+=(docker.io/trixie)
pkg_at_least docker-cli 26 || docker_pkgs+=(docker-cli/trixie)
[ -n "$(pkg_version docker-buildx)" ] || docker_pkgs+=(docker-buildx/trixie)
pkg_at_least docker-compose 2 || docker_pkgs+=(docker-compose/trixie)

base_pkgs=()
for p in busybox-static curl dbus dbus-user-session systemd lintian rpm strace; do
    [ -n "$(pkg_version "$p")" ] || base_pkgs+=("$p")
done

if [ "${#docker_pkgs[@]}" -gt 0 ] || [ "${#base_pkgs[@]}" -gt 0 ] ||
    [ -n "${trixie_added:-}" ] || ! compgen -G '/var/lib/apt/lists/*_dists_trixie_InRelease' >/dev/null; then
    apt_update_once

    # No systemd as PID 1: package maintainer scripts must not try to start
    # dockerd/containerd (invoke-rc.d would run the sysv script, and once
    # /run/systemd/system exists deb-systemd-invoke would call systemctl).
    # Debian's container images ship a policy-rc.d that denies everything;
    # if this machine has none, put one in place for the duration.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, composectl provision-e2e.sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        cleanup_paths+=("$policy")
    fi

    if [ "${#docker_pkgs[@]}" -gt 0 ]; then
        log "installing ${docker_pkgs[*]}"
        apt_install "${docker_pkgs[@]}"
    fi
    if [ "${#base_pkgs[@]}" -gt 0 ]; then
        log "installing ${base_pkgs[*]}"
        apt_install "${base_pkgs[@]}"
    fi
fi

# ------------------------------------------------- docker CLI plugins ----
# Debian puts the compose/buildx plugins in /usr/libexec/docker/cli-plugins.
# The upstream CLI that may shadow Debian's (/usr/local/bin/docker) searches
# /usr/local/lib/docker/cli-plugins, /usr/local/libexec/docker/cli-plugins,
# /usr/lib/docker/cli-plugins and /usr/libexec/docker/cli-plugins, so both
# should find them. Should some `docker` on PATH not, link the plugins into
# /usr/local/lib/docker/cli-plugins, which every docker CLI searches and
# which (unlike ~/.docker/cli-plugins) does not depend on HOME or
# DOCKER_CONFIG of the process running the tests.
compose_is_v2() { "$1" compose version --short 2>/dev/null | grep -q '^v\?2\.'; }
for cli in $(type -ap docker | awk '!seen[$0]++'); do
    if ! compose_is_v2 "$cli"; then
        log "$cli does not find the compose v2 plugin; linking into /usr/local/lib/docker/cli-plugins"
        mkdir -p /usr/local/lib/docker/cli-plugins
        for plugin in /usr/libexec/docker/cli-plugins/docker-*; do
            [ -e "$plugin" ] || continue
            ln -sfn "$plugin" "/usr/local/lib/docker/cli-plugins/$(basename "$plugin")"
        done
        compose_is_v2 "$cli" || die "$cli compose version is not v2"
    fi
done

# ---------------------------------------------------------- systemd ----
mkdir -p /run/systemd/system

# journald and dockerd, unless they already answer; then the test image (its own recipe, shared
# with the system-mode guest of scripts/guest.sh).
"$here/start-host-daemon.sh" journald dockerd

# ------------------------------------------------------- test image ----
"$here/make-test-image.sh"
# The database the data-safety tests run (Debian's PostgreSQL; cached, about 1 min the first time).
"$here/make-postgres-image.sh"

# ---------------------------------------------------------- summary ----
{
    printf 'provision-e2e: ready\n'
    printf '  docker CLI:     %s (%s)\n' "$(docker version -f '{{.Client.Version}}' 2>/dev/null)" "$(command -v docker)"
    printf '  docker engine:  %s\n' "$(docker version -f '{{.Server.Version}}' 2>/dev/null)"
    printf '  compose:        %s\n' "$(docker compose version --short 2>/dev/null)"
    printf '  systemd:        %s\n' "$(systemctl --version | head -n1)"
    printf '  dbus-daemon:    %s\n' "$(dbus-daemon --version | head -n1)"
    printf '  test image:     %s\n' "$(docker image ls --format '{{.Repository}}:{{.Tag}}' composectl-test/busybox)"
    printf '  database image: %s\n' "$(docker image ls --format '{{.Repository}}:{{.Tag}}' composectl-test/postgres)"
} >&2
