#!/usr/bin/env bash
# The system-mode test guest: a Debian 12 guest with systemd as PID 1 and its own Docker engine
# (its own docker.service), booted with systemd-nspawn on a host where systemd is NOT PID 1 (no
# host systemd, no machined, no system D-Bus; see shared/TESTING.md). The end-to-end tests run
# composectl in it in system mode (testkit/src/guest.rs), from the .deb installed with `install`.
#
#   scripts/guest.sh build        build the rootfs if it is missing or its recipe changed
#                                 (debootstrap minbase + Docker from trixie)
#   scripts/guest.sh start        build if needed, boot the guest in the background, wait until
#                                 its boot has settled, build the test image in the guest's engine
#   scripts/guest.sh stop         clean poweroff of the guest (waits for nspawn to exit)
#   scripts/guest.sh reboot [--no-settle]
#                                 clean poweroff, then boot again and wait until the boot settled
#                                 (nspawn exits on an in-guest reboot, so it is done from here);
#                                 --no-settle: only until the guest's PID 1 answers, its boot jobs
#                                 (enabled stacks included) may still run
#   scripts/guest.sh status       key=value lines: state (running/stopped), nspawn, leader, rootfs,
#                                 machine; exit 3 when stopped
#   scripts/guest.sh exec CMD...  run CMD inside the guest (all namespaces of the guest's PID 1)
#   scripts/guest.sh shell        interactive shell inside the guest
#   scripts/guest.sh install DEB  copy a .deb into the guest and dpkg -i it there (reinstalls over
#                                 an older or the same version)
#
# Idempotent: start on a running guest and stop on a stopped one do nothing. Run as root; installs
# debootstrap and systemd-container on the host when missing.
# Environment: COMPOSECTL_GUEST_DIR (rootfs and logs; default /var/lib/composectl-e2e/guest,
# outside the checkout so a fresh checkout reuses the rootfs), COMPOSECTL_GUEST_MACHINE (machine
# and host cgroup name, default composectl-e2e), COMPOSECTL_GUEST_BOOT_TIMEOUT (seconds a boot
# may take to settle, default 300), COMPOSECTL_GUEST_STOP_TIMEOUT (seconds a clean poweroff may
# take, default 300). The apt mirror is the first URIs: of this machine's own
# /etc/apt/sources.list.d/debian.sources.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
GUEST_DIR=${COMPOSECTL_GUEST_DIR:-/var/lib/composectl-e2e/guest}
ROOTFS=$GUEST_DIR/rootfs
LOGS=$GUEST_DIR/logs
PIDFILE=$LOGS/nspawn.pid
MACHINE=${COMPOSECTL_GUEST_MACHINE:-composectl-e2e}
CGROUP=nspawn-$MACHINE # host cgroup (unified + name=systemd hierarchies) the guest lives under
RECIPE_MARK=.composectl-guest-recipe
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,iproute2,iptables,ca-certificates,busybox-static,procps,less,kmod
# Named one by one with /trixie, without recommends: `-t trixie` would drag in a trixie libc and
# systemd, and docker-compose alone does not pull the engine (see scripts/provision-e2e.sh).
DOCKER_PKGS=(docker.io/trixie docker-cli/trixie docker-buildx/trixie docker-compose/trixie)
GUEST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TEST_IMAGE_SCRIPT=/usr/local/sbin/composectl-make-test-image
PG_IMAGE_SCRIPT=/usr/local/sbin/composectl-make-postgres-image
PG_CACHE=/var/cache/composectl-e2e

log() { printf 'guest: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"

host_packages() {
    command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null && return 0
    log "installing debootstrap systemd-container on the host"
    apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    # --no-install-recommends: systemd-container recommends libnss-mymachines, which would
    # add "mymachines" to the host's /etc/nsswitch.conf.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 debootstrap systemd-container >/dev/null
}

# Everything the rootfs is made from; a change rebuilds it. `declare -f` prints the function
# without its comments, so only a change to what it does counts.
recipe() {
    { declare -f build_rootfs; printf '%s\n' "$SUITE" "$INCLUDE" "${DOCKER_PKGS[@]}"; cat "$here/trixie-source.sh"; } |
        sha256sum | cut -c1-16
}

build_rootfs() { # DIR: debootstrap into DIR and set it up
    local tmp=$1 t0=$SECONDS
    log "debootstrap $SUITE (log: $LOGS/debootstrap.log)"
    local mirror
    mirror=$("$here/trixie-source.sh" --mirror)
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$mirror" \
        >"$LOGS/debootstrap.log" 2>&1 || { tail -n 20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
    log "debootstrap done after $((SECONDS - t0)) s"

    # apt: the host's sources (bookworm + trixie pinned at 100), resolver for the install only.
    rm -f "$tmp/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$tmp/etc/apt/sources.list.d/"
    "$here/trixie-source.sh" "$tmp"
    # the host's apt settings (proxies, validity checks), so the guest reaches the same archive
    cp -n /etc/apt/apt.conf.d/* "$tmp/etc/apt/apt.conf.d/" 2>/dev/null || true
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    # No service may start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    log "installing ${DOCKER_PKGS[*]} in the rootfs (log: $LOGS/apt-guest.log)"
    {
        chroot "$tmp" apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get install -y -q --no-install-recommends "${DOCKER_PKGS[@]}"
    } >"$LOGS/apt-guest.log" 2>&1 || { tail -n 20 "$LOGS/apt-guest.log" >&2; die "apt in the rootfs failed"; }
    rm -f "$tmp/usr/sbin/policy-rc.d"
    chroot "$tmp" apt-get clean

    echo "$MACHINE" >"$tmp/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost\n' "$MACHINE" >"$tmp/etc/hosts"
    mkdir -p "$tmp/var/log/journal" # persistent journal: earlier boots stay readable
    [ -s "$tmp/etc/machine-id" ] || chroot "$tmp" systemd-machine-id-setup
    # The console is read-only (a log file): no getty on it.
    ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
}

build() {
    local want
    want=$(recipe)
    if [ "$(cat "$ROOTFS/$RECIPE_MARK" 2>/dev/null)" = "$want" ]; then
        log "rootfs ready: $ROOTFS"
        return 0
    fi
    if nspawn_pid >/dev/null; then die "the guest runs an outdated rootfs: stop it first"; fi
    local t0=$SECONDS tmp=$ROOTFS.partial
    host_packages
    mkdir -p "$LOGS"
    rm -rf "$tmp"
    build_rootfs "$tmp"
    echo "$want" >"$tmp/$RECIPE_MARK"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
    log "rootfs built in $((SECONDS - t0)) s: $ROOTFS"
}

nspawn_pid() { # prints the PID of our systemd-nspawn if it runs
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qx systemd-nspawn "/proc/$pid/comm" 2>/dev/null &&
        echo "$pid"
}

leader() { # prints the guest's PID 1 as seen from the host
    local pid ns children child
    pid=$(nspawn_pid) || return 1
    ns=$(readlink /proc/"$pid"/ns/pid) || return 1
    children=$(cat /proc/"$pid"/task/*/children 2>/dev/null) || return 1
    # The child in a PID namespace of its own: while the guest starts, nspawn also has a
    # short-lived helper child in the host's.
    for child in $children; do
        if [ "$(readlink /proc/"$child"/ns/pid 2>/dev/null)" != "$ns" ]; then
            echo "$child"
            return 0
        fi
    done
    return 1
}

gexec() {
    local l
    l=$(leader) || die "the guest does not run (scripts/guest.sh start)"
    # exec: the caller's pid becomes nsenter's, so a caller's timeout can kill it.
    exec nsenter -t "$l" -a env -i PATH="$GUEST_PATH" HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 "$@"
}

boot() { # boots the built rootfs; waits until its boot settled, or with "answer" until PID 1 answers
    local mode=${1:-settle}
    host_packages
    mkdir -p "$LOGS"
    local t0=$SECONDS console
    console=$LOGS/console-$(date +%Y%m%dT%H%M%S).log
    # Our own cgroup in the hierarchies nspawn uses (the host has no systemd to give it a scope);
    # nspawn then puts itself in $CGROUP/supervisor and the guest in $CGROUP/payload.
    local h
    for h in unified systemd; do mkdir -p "/sys/fs/cgroup/$h/$CGROUP"; done
    # SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: the guest gets a pure cgroup2 tree (its own subtree,
    # writable), which dockerd/runc can use; the host's hybrid default would give it read-only v1
    # controller hierarchies, where runc fails (mkdir /sys/fs/cgroup/cpuset/docker: read-only).
    # --register=no --keep-unit: no host systemd/machined/D-Bus to talk to.
    # --private-network: the guest's dockerd gets its own iptables and bridges, away from the
    #   host's engine that other tests use.
    # --system-call-filter=@keyring: runc creates a session keyring for each container
    #   ("unable to join session keyring: unable to create session key: operation not permitted").
    # --system-call-filter=bpf: runc's cgroup2 device filter ("bpf_prog_query(BPF_CGROUP_DEVICE)
    #   failed: operation not permitted"). nspawn's default capability set is enough.
    # The inner shell moves itself into $CGROUP, then becomes nspawn (without the lock's fd 9,
    # which it would otherwise hold for as long as the guest runs).
    # shellcheck disable=SC2016 # $$ and $0 are the inner shell's
    setsid bash -c 'echo $$ >"/sys/fs/cgroup/unified/$0/cgroup.procs" &&
                    echo $$ >"/sys/fs/cgroup/systemd/$0/cgroup.procs" && exec "$@"' "$CGROUP" \
        env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn \
        --directory="$ROOTFS" --machine="$MACHINE" --boot \
        --register=no --keep-unit --private-network \
        --system-call-filter=@keyring --system-call-filter=bpf --console=read-only \
        </dev/null >"$console" 2>&1 9>&- &
    echo $! >"$PIDFILE"
    ln -sfn "$(basename "$console")" "$LOGS/console.log"
    local l=""
    for _ in $(seq 1 100); do l=$(leader) && break; sleep 0.1; done
    [ -n "$l" ] || { tail -n 20 "$console" >&2; die "nspawn did not start a guest; see $console"; }
    # Until the guest's manager answers on its bus and has finished its boot jobs (enabled
    # stacks included) or given up on them; or, asked to, until it answers at all.
    local state="" limit=${COMPOSECTL_GUEST_BOOT_TIMEOUT:-300}
    for _ in $(seq 1 $((limit * 5))); do
        state=$(nsenter -t "$l" -a systemctl is-system-running 2>/dev/null || true)
        case "$mode/$state" in
        */running | */degraded | */maintenance | */stopping | answer/?*) break ;;
        esac
        sleep 0.2
    done
    log "guest booted in $((SECONDS - t0)) s: leader $l, system state: ${state:-unknown}"
}

start() {
    if nspawn_pid >/dev/null; then log "already running (leader $(leader))"; return 0; fi
    build
    boot
    # The recipe is copied in on every start, so a changed recipe reaches a built rootfs; the
    # script itself does nothing when the image is current.
    install -m 0755 "$here/make-test-image.sh" "$ROOTFS$TEST_IMAGE_SCRIPT"
    (gexec "$TEST_IMAGE_SCRIPT") || die "building the test image in the guest failed"
    # The database image: its rootfs tarball is built (or found in the cache) on the host and
    # imported in the guest by the same script, which finds it in the cache it is pointed at.
    local tarball
    tarball=$("$here/make-postgres-image.sh" --tarball) || die "building the database image failed"
    mkdir -p "$ROOTFS$PG_CACHE"
    find "$ROOTFS$PG_CACHE" -name 'postgres-15-*.tar' ! -name "$(basename "$tarball")" -delete
    [ -s "$ROOTFS$PG_CACHE/$(basename "$tarball")" ] || cp "$tarball" "$ROOTFS$PG_CACHE/"
    install -m 0755 "$here/make-postgres-image.sh" "$ROOTFS$PG_IMAGE_SCRIPT"
    (gexec env COMPOSECTL_IMAGE_CACHE="$PG_CACHE" "$PG_IMAGE_SCRIPT") ||
        die "importing the database image in the guest failed"
}

stop() {
    local pid l
    if ! pid=$(nspawn_pid); then log "not running"; cleanup_cgroups; return 0; fi
    local t0=$SECONDS limit=${COMPOSECTL_GUEST_STOP_TIMEOUT:-300}
    l=$(leader) || l=""
    if [ -n "$l" ]; then nsenter -t "$l" -a systemctl poweroff || true; fi
    for _ in $(seq 1 $((limit * 10))); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
        # SIGKILL to the guest's PID 1 ends its whole PID namespace; nspawn then exits.
        log "no clean shutdown within $limit s; SIGKILL to the guest's PID 1 ($l)"
        [ -n "$l" ] && kill -KILL "$l" 2>/dev/null
        for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        [ -d "/proc/$pid" ] && { log "SIGKILL to nspawn $pid"; kill -KILL "$pid" 2>/dev/null; sleep 1; }
    fi
    rm -f "$PIDFILE"
    cleanup_cgroups
    log "stopped after $((SECONDS - t0)) s"
}

reboot() { # MODE as boot's
    stop
    boot "$1"
}

cleanup_cgroups() { # empty cgroups nspawn leaves behind
    local h
    for h in /sys/fs/cgroup/*/"$CGROUP"; do
        [ -d "$h" ] || continue
        find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

status() {
    local pid
    if pid=$(nspawn_pid); then
        printf 'state=running\nnspawn=%s\nleader=%s\n' "$pid" "$(leader || true)"
    else
        echo "state=stopped"
    fi
    printf 'rootfs=%s\nmachine=%s\n' "$ROOTFS" "$MACHINE"
    [ -n "${pid:-}" ] || exit 3
}

install_deb() {
    [ -f "${1:-}" ] || die "usage: $0 install PATH.deb"
    nspawn_pid >/dev/null || die "the guest does not run (scripts/guest.sh start)"
    # One package at a time in there: earlier copies would only pile up.
    rm -rf "$ROOTFS/root/debs"
    mkdir -p "$ROOTFS/root/debs"
    cp "$1" "$ROOTFS/root/debs/"
    # --force-confnew: tests rewrite /etc/composectl/networks.toml, and dpkg would otherwise ask
    # what to do with it when the package's version of it changes.
    (gexec dpkg -i --force-confnew "/root/debs/$(basename "$1")")
}

# Lifecycle commands take the guest's lock, so two of them (e.g. two test runs) never boot,
# stop or rebuild the same rootfs at once.
locked() {
    mkdir -p "$GUEST_DIR"
    exec 9>"$GUEST_DIR/lock"
    flock 9
    "$@"
}

case "${1:-}" in
build) locked build ;;
start) locked start ;;
stop) locked stop ;;
reboot)
    case "${2:-}" in
    "") locked reboot settle ;;
    --no-settle) locked reboot answer ;;
    *) die "usage: $0 reboot [--no-settle]" ;;
    esac
    ;;
status) status ;;
exec) shift; gexec "$@" ;;
shell) gexec /bin/bash -l ;;
install) locked install_deb "${2:-}" ;;
*) echo "usage: $0 build|start|stop|reboot [--no-settle]|status|exec CMD...|shell|install DEB" >&2; exit 2 ;;
esac
