#!/usr/bin/env bash
# Provision the real environment composectl's end-to-end tests need on a
# Debian 12 machine where we are root, systemd is NOT PID 1 and no Docker
# engine runs (see shared/TESTING.md):
#
#   * Debian packages: docker.io + docker-cli + docker-buildx + docker-compose
#     (Compose v2) from trixie, pinned low; busybox-static; dbus +
#     dbus-user-session (the user units dbus.socket/dbus.service that let a
#     `systemd --user` manager socket-activate its own D-Bus); systemd;
#     lintian and rpm for the packaging checks.
#   * /run/systemd/system (without it `systemd --user` refuses to start).
#   * a systemd-journald, unless one is already listening.
#   * a dockerd, unless `docker info` already answers.
#   * the local test image composectl-test/busybox:latest (nothing can be
#     pulled: there is no registry).
#
# Idempotent; a second run does no apt work and takes a few seconds at most.
# Usage: scripts/provision-e2e.sh        (as root)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

TEST_IMAGE="composectl-test/busybox:latest"
# Bump when the image recipe below changes, so old images get rebuilt.
TEST_IMAGE_REV="1"
DOCKERD_LOG=/var/log/dockerd.log
JOURNALD_LOG=/var/log/journald-e2e.log
TRIXIE_SOURCE=/etc/apt/sources.list.d/composectl-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/composectl-trixie

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

# The machine's own mirror, never a host written into the project: the first URIs: of its
# bookworm source.
mirror() {
    awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep . ||
        die "no URIs: line in /etc/apt/sources.list.d/debian.sources to take the mirror from"
}

# Trixie source, pinned at 100 so nothing is upgraded from it unless asked.
if [ ! -f "$TRIXIE_SOURCE" ]; then
    log "adding $TRIXIE_SOURCE"
    cat >"$TRIXIE_SOURCE" <<EOF
# Added by composectl scripts/provision-e2e.sh: Docker Compose v2 (+ docker.io 26).
Types: deb
URIs: $(mirror)
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt_updated=0
    trixie_added=1
fi
if [ ! -f "$TRIXIE_PIN" ]; then
    log "adding $TRIXIE_PIN"
    cat >"$TRIXIE_PIN" <<'EOF'
# Added by composectl scripts/provision-e2e.sh: never take trixie packages
# unless explicitly requested (pkg/trixie).
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOF
fi

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
for p in busybox-static dbus dbus-user-session systemd lintian rpm strace; do
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

# Is some process bound to this unix socket path? (/run lives on the root
# disk here, so a socket file may be left over from an earlier boot.)
unix_listening() { awk -v p="$1" '$NF == p { found = 1 } END { exit !found }' /proc/net/unix; }

if ! unix_listening /run/systemd/journal/socket; then
    log "starting systemd-journald (log: $JOURNALD_LOG)"
    rm -f /run/systemd/journal/socket /run/systemd/journal/stdout /run/systemd/journal/dev-log
    setsid nohup /lib/systemd/systemd-journald >>"$JOURNALD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 100); do
        unix_listening /run/systemd/journal/socket &&
            unix_listening /run/systemd/journal/stdout && break
        sleep 0.1
    done
    unix_listening /run/systemd/journal/socket || die "journald did not come up; see $JOURNALD_LOG"
fi

# ----------------------------------------------------------- docker ----
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    ok=0
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.5
    done
    [ "$ok" -eq 1 ] || { tail -n 30 "$DOCKERD_LOG" >&2 || true; die "dockerd did not answer within 60 s"; }
fi

# ------------------------------------------------------- test image ----
have_image_rev="$(docker image inspect -f '{{ index .Config.Labels "org.composectl.test-image-rev" }}' \
    "$TEST_IMAGE" 2>/dev/null || true)"
if [ "$have_image_rev" != "$TEST_IMAGE_REV" ]; then
    log "building $TEST_IMAGE from busybox-static"
    rootfs="$(mktemp -d)"
    cleanup_paths+=("$rootfs")
    mkdir -p "$rootfs"/{bin,etc,root,tmp,var/tmp,proc,sys,dev,usr}
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 0700 "$rootfs/root"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    # Scripts with #!/usr/bin/env or /sbin/... shebangs should still work.
    ln -s bin "$rootfs/sbin"
    ln -s ../bin "$rootfs/usr/bin"
    ln -s ../bin "$rootfs/usr/sbin"
    cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . |
        docker import \
            -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'CMD ["sh"]' \
            -c "LABEL org.composectl.test-image-rev=$TEST_IMAGE_REV" \
            -m "composectl e2e test image (Debian busybox-static)" \
            - "$TEST_IMAGE" >/dev/null
    docker run --rm --pull=never --network=none "$TEST_IMAGE" sh -c 'test -x /bin/sleep && id -un' >/dev/null ||
        die "$TEST_IMAGE does not run"
fi

# ---------------------------------------------------------- summary ----
{
    printf 'provision-e2e: ready\n'
    printf '  docker CLI:     %s (%s)\n' "$(docker version -f '{{.Client.Version}}' 2>/dev/null)" "$(command -v docker)"
    printf '  docker engine:  %s\n' "$(docker version -f '{{.Server.Version}}' 2>/dev/null)"
    printf '  compose:        %s\n' "$(docker compose version --short 2>/dev/null)"
    printf '  systemd:        %s\n' "$(systemctl --version | head -n1)"
    printf '  dbus-daemon:    %s\n' "$(dbus-daemon --version | head -n1)"
    printf '  test image:     %s\n' "$TEST_IMAGE"
} >&2
