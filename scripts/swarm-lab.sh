#!/usr/bin/env bash
# A Docker Swarm lab on one machine, for composectl's swarm tests: Docker engines of their own,
# each in its own network namespace, joined into swarms over private addresses. The machine's
# own dockerd (/var/run/docker.sock) is never touched: it stays out of swarm mode.
#
#   swarm-lab.sh up       build the lab, or repair it (idempotent; seconds when it is up)
#   swarm-lab.sh down     stop every engine of the lab and remove everything it made but its
#                         logs (/var/log/composectl-swarm, rewritten by the next up)
#   swarm-lab.sh status   what runs (exit 1 unless the whole lab is up)
#   swarm-lab.sh env      DOCKER_HOST lines for the two swarms' managers
#
# The lab: a bridge in a namespace of its own (composectl-swarm-br), 10.123.0.0/24, and one
# namespace per engine with a veth into that bridge:
#
#   engine 1  10.123.0.11  swarm "solo": a single-node swarm (manager)
#   engine 2  10.123.0.12  swarm "multi": manager
#   engine 3  10.123.0.13  swarm "multi": worker
#   engine 4  10.123.0.14  swarm "multi": worker
#
# Each engine N has its own data root (/var/lib/composectl-swarm/N), exec root, pidfile and
# socket (unix:///run/composectl-swarm/N/docker.sock), its own managed containerd (dockerd
# starts one per exec root), its own hostname (swarm-N: a UTS namespace, so the nodes are told
# apart), its own iptables (per namespace) and its own cgroups: dockerd, containerd and the
# shims live in composectl-swarm/N of the name=systemd and unified hierarchies, containers
# under the cgroup parent composectl-swarm/N, so `down` finds every process by cgroup, never by
# name. The namespaces have no route out: swarm, VXLAN and gossip traffic only goes between
# the lab's own addresses. Nothing can be pulled (no registry), so each engine gets the test
# image composectl-test/busybox:latest from the host engine (`docker save | docker load`;
# scripts/provision-e2e.sh builds it there) and runs with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1.
#
# The kernel here has no IPVS, which swarm's routing mesh and virtual IPs use: tasks run and
# join overlay networks, but published ports (ingress) and service VIPs do not answer. The
# tests check state through the engines' APIs and never send traffic to tasks.
#
# Run as root. Packages (iproute2, iptables, util-linux) are installed when missing.
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

SELF=$(readlink -f "$0")
RUN=/run/composectl-swarm
DATA=/var/lib/composectl-swarm
LOGS=/var/log/composectl-swarm
BRIDGE_NS=composectl-swarm-br
SUBNET_PREFIX=10.123.0
ENGINES=(1 2 3 4)
SOLO_MANAGER=1
MULTI_MANAGER=2
MULTI_WORKERS=(3 4)
# Swarm's own networks (ingress, auto-allocated overlays) come from here, away from the lab's
# addresses and from the subnets tests put into networks.toml.
ADDR_POOL=10.124.0.0/16
TEST_IMAGE=composectl-test/busybox:latest
# Bounds: an engine that does not answer within this many seconds is a failure, not a hang.
ENGINE_TIMEOUT=60
# Engine N's launcher pid (start_engine).
declare -A LAUNCHERS=()
# Everything of the lab is thrown away on `down`, so engines get little time to stop cleanly.
STOP_TIMEOUT=10

log() { printf 'swarm-lab: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

ns() { echo "composectl-swarm-$1"; }
has_netns() { ip netns list | awk '{ print $1 }' | grep -qx "$1"; }
addr() { echo "$SUBNET_PREFIX.$((10 + $1))"; }
sock() { echo "$RUN/$1/docker.sock"; }
dk() { # dk N ARGS...: the docker CLI against engine N, bounded
    local n=$1
    shift
    timeout "$ENGINE_TIMEOUT" docker -H "unix://$(sock "$n")" "$@"
}
# The cgroup hierarchies processes are tracked in (hybrid v1 + v2 here, or pure v2).
cgroup_roots() {
    local root
    for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -e "$root/cgroup.procs" ] && echo "$root"
    done
}
# Every mounted hierarchy (v1 controllers too: containers' cgroups live there).
all_cgroup_dirs() {
    awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts
}

# ------------------------------------------------------------ packages ----
ensure_packages() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v unshare >/dev/null || missing+=(util-linux)
    command -v dockerd >/dev/null || die "no dockerd: run scripts/provision-e2e.sh first"
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
    fi
}

# ------------------------------------------------------------- network ----
ensure_bridge() {
    has_netns "$BRIDGE_NS" || ip netns add "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link set lo up
    if ! ip -n "$BRIDGE_NS" link show br0 >/dev/null 2>&1; then
        ip -n "$BRIDGE_NS" link add br0 type bridge
    fi
    ip -n "$BRIDGE_NS" link set br0 up
}

ensure_node_net() {
    local n=$1 name
    name=$(ns "$n")
    has_netns "$name" || ip netns add "$name"
    ip -n "$name" link set lo up
    if ! ip -n "$name" link show eth0 >/dev/null 2>&1; then
        # Created in the bridge's namespace, one end moved into the node's.
        ip -n "$BRIDGE_NS" link del "v$n" 2>/dev/null || true
        ip -n "$BRIDGE_NS" link add "v$n" type veth peer name "e$n"
        ip -n "$BRIDGE_NS" link set "e$n" netns "$name"
        ip -n "$name" link set "e$n" name eth0
        ip -n "$BRIDGE_NS" link set "v$n" master br0 up
    fi
    ip -n "$name" addr replace "$(addr "$n")/24" dev eth0
    ip -n "$name" link set eth0 up
}

# -------------------------------------------------------------- engine ----
engine_answers() { dk "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_engine() {
    local n=$1
    mkdir -p "$RUN/$n" "$DATA/$n" "$LOGS"
    # Its own (empty) settings: nothing of the host engine's /etc/docker/daemon.json.
    echo '{}' >"$RUN/$n/daemon.json"
    log "starting engine $n in $(ns "$n") ($(addr "$n"), log: $LOGS/$n.log)"
    # --wait: the launcher lives as long as the engine, so wait_engine can tell "still starting"
    # (not yet in its cgroup) from "gone".
    setsid --wait "$SELF" _engine "$n" >"$LOGS/$n.log" 2>&1 </dev/null &
    LAUNCHERS[$n]=$!
}

# Internal, step 1 (in a new session): into the engine's cgroups, then into its network
# namespace and new mount and UTS namespaces (slave propagation: mounts stay there).
engine_cgroup() {
    local n=$1 root
    for root in $(cgroup_roots); do
        mkdir -p "$root/composectl-swarm/$n"
        echo $$ >"$root/composectl-swarm/$n/cgroup.procs"
    done
    exec nsenter --net="/run/netns/$(ns "$n")" \
        unshare --mount --propagation slave --uts "$SELF" _engine_ns "$n"
}

# Internal, step 2: the node's hostname, a sysfs of the network namespace (what `ip netns
# exec` mounts; it would also hide the cgroup hierarchies under /sys/fs/cgroup, which dockerd
# needs, so they are bound back), then dockerd.
engine_namespaced() {
    local n=$1 keep="$RUN/$1/cgroup"
    hostname "swarm-$n"
    mkdir -p "$keep"
    mount --rbind /sys/fs/cgroup "$keep"
    mount -t sysfs sysfs /sys
    mount --rbind "$keep" /sys/fs/cgroup
    umount -l "$keep"
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 exec dockerd \
        --config-file "$RUN/$n/daemon.json" \
        --data-root "$DATA/$n" \
        --exec-root "$RUN/$n/exec" \
        --pidfile "$RUN/$n/dockerd.pid" \
        -H "unix://$(sock "$n")" \
        --cgroup-parent "/composectl-swarm/$n"
}

wait_engine() {
    local n=$1
    for _ in $(seq 1 $((ENGINE_TIMEOUT * 4))); do
        engine_answers "$n" && return 0
        # An engine whose launcher and processes are all gone is not coming. The launcher
        # counts too: right after start_engine it has not joined the engine's cgroup yet.
        kill -0 "${LAUNCHERS[$n]:-}" 2>/dev/null ||
            [ -n "$(cgroup_pids "composectl-swarm/$n")" ] || break
        sleep 0.25
    done
    tail -n 30 "$LOGS/$n.log" >&2 || true
    die "engine $n did not answer on $(sock "$n") within $ENGINE_TIMEOUT s"
}

image_id() { "$@" image inspect -f '{{.Id}}' "$TEST_IMAGE" 2>/dev/null || true; }

# Engine N has the host engine's test image (the same id: provision-e2e.sh rebuilds it when
# its recipe changes). When the host engine does not answer, any copy will do.
image_current() {
    local lab host
    lab=$(image_id dk "$1")
    host=$(image_id timeout "$ENGINE_TIMEOUT" docker)
    [ -n "$lab" ] && { [ -z "$host" ] || [ "$lab" = "$host" ]; }
}

load_image() {
    local n=$1 tar="$DATA/test-image.tar"
    image_current "$n" && return 0
    if [ ! -s "$tar" ]; then
        [ -n "$(image_id docker)" ] ||
            die "the host engine has no $TEST_IMAGE: run scripts/provision-e2e.sh first"
        docker save "$TEST_IMAGE" -o "$tar.partial" && mv "$tar.partial" "$tar"
    fi
    dk "$n" load -q -i "$tar" >/dev/null
}

# --------------------------------------------------------------- swarm ----
swarm_state() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

ensure_manager() {
    local n=$1
    [ "$(swarm_state "$n")" = active ] && return 0
    log "engine $n: swarm init (advertise $(addr "$n"))"
    dk "$n" swarm init --advertise-addr "$(addr "$n")" --listen-addr "$(addr "$n"):2377" \
        --default-addr-pool "$ADDR_POOL" --default-addr-pool-mask-length 24 >/dev/null
}

ensure_worker() {
    local n=$1 manager=$2 token
    [ "$(swarm_state "$n")" = active ] && return 0
    token=$(dk "$manager" swarm join-token -q worker)
    log "engine $n: joining engine $manager's swarm"
    dk "$n" swarm join --token "$token" --advertise-addr "$(addr "$n")" \
        --listen-addr "$(addr "$n"):2377" "$(addr "$manager"):2377" >/dev/null
}

# Ready nodes of the swarm engine N manages.
ready_nodes() { dk "$1" node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true; }

wait_nodes() {
    local manager=$1 want=$2
    for _ in $(seq 1 $((ENGINE_TIMEOUT * 4))); do
        [ "$(ready_nodes "$manager")" -ge "$want" ] && return 0
        sleep 0.25
    done
    die "engine $manager's swarm has $(ready_nodes "$manager") ready nodes, not $want"
}

# ------------------------------------------------------------ commands ----
healthy() {
    local n
    for n in "${ENGINES[@]}"; do
        engine_answers "$n" || return 1
        [ "$(swarm_state "$n")" = active ] || return 1
        image_current "$n" || return 1
    done
    [ "$(ready_nodes "$SOLO_MANAGER")" -eq 1 ] &&
        [ "$(ready_nodes "$MULTI_MANAGER")" -eq $((1 + ${#MULTI_WORKERS[@]})) ]
}

up() {
    local t0=$SECONDS n
    if healthy; then
        log "up already"
        return 0
    fi
    # A partial lab (an earlier run killed half-way, a reboot that kept /var/lib) is rebuilt
    # from nothing rather than repaired piecemeal.
    if [ -d "$RUN" ] || [ -d "$DATA" ] || ip netns list | grep -q '^composectl-swarm-'; then
        log "a partial lab is there: removing it first"
        down
    fi
    # Whatever fails from here on (a die, a failed command) leaves nothing half-built behind.
    trap 'log "up failed: removing the partial lab"; down' EXIT
    ensure_packages
    ensure_bridge
    for n in "${ENGINES[@]}"; do ensure_node_net "$n"; done
    for n in "${ENGINES[@]}"; do start_engine "$n"; done
    for n in "${ENGINES[@]}"; do wait_engine "$n"; done
    for n in "${ENGINES[@]}"; do load_image "$n"; done
    ensure_manager "$SOLO_MANAGER"
    ensure_manager "$MULTI_MANAGER"
    for n in "${MULTI_WORKERS[@]}"; do ensure_worker "$n" "$MULTI_MANAGER"; done
    wait_nodes "$SOLO_MANAGER" 1
    wait_nodes "$MULTI_MANAGER" $((1 + ${#MULTI_WORKERS[@]}))
    trap - EXIT
    log "up in $((SECONDS - t0)) s"
    env_lines >&2
}

# Pids in a cgroup subtree, in every hierarchy.
cgroup_pids() {
    local rel=$1 root
    for root in $(all_cgroup_dirs); do
        [ -d "$root/$rel" ] || continue
        find "$root/$rel" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -un
}

# The pid of engine N's dockerd, if it runs (and is the lab's: its cgroup says so, whatever
# pid the file names after a reboot).
dockerd_pid() {
    local pid
    pid=$(cat "$RUN/$1/dockerd.pid" 2>/dev/null) || return 0
    grep -qs "composectl-swarm/$1\$" "/proc/$pid/cgroup" && echo "$pid"
    return 0
}

# Stops every engine: SIGTERM to each dockerd, up to STOP_TIMEOUT for all of them, then SIGKILL
# whatever is left in the engines' cgroups (containerd, shims, tasks): by cgroup, never by name.
stop_engines() {
    local n pid pids=()
    for n in "${ENGINES[@]}"; do
        pid=$(dockerd_pid "$n")
        [ -n "$pid" ] && pids+=("$pid")
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 1 $((STOP_TIMEOUT * 4))); do
            kill -0 "${pids[@]}" 2>/dev/null || break
            sleep 0.25
        done
    fi
    for _ in $(seq 1 40); do
        pids=()
        for n in "${ENGINES[@]}"; do
            # shellcheck disable=SC2207
            pids+=($(cgroup_pids "composectl-swarm/$n"))
        done
        [ "${#pids[@]}" -eq 0 ] && break
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.25
    done
}

down() {
    local n root m
    trap - EXIT
    stop_engines
    # Mounts of the engines live in their own mount namespaces and went with them; a mount
    # that leaked into this one would keep the data root busy.
    local mounts
    mounts=$(awk -v d="$DATA" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
    for root in $(all_cgroup_dirs); do
        [ -d "$root/composectl-swarm" ] || continue
        find "$root/composectl-swarm" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    for n in "${ENGINES[@]}"; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
    ip netns del "$BRIDGE_NS" 2>/dev/null || true
    rm -rf "$RUN" "$DATA"
    log "down"
}

env_lines() {
    echo "SOLO_DOCKER_HOST=unix://$(sock "$SOLO_MANAGER")"
    echo "MULTI_DOCKER_HOST=unix://$(sock "$MULTI_MANAGER")"
}

status() {
    local n ok=0
    for n in "${ENGINES[@]}"; do
        if engine_answers "$n"; then
            printf 'engine %s  %s  %s  swarm %s\n' "$n" "$(addr "$n")" "$(sock "$n")" "$(swarm_state "$n")"
        else
            printf 'engine %s  %s  not answering\n' "$n" "$(addr "$n")"
            ok=1
        fi
    done
    for n in "$SOLO_MANAGER" "$MULTI_MANAGER"; do
        engine_answers "$n" && dk "$n" node ls --format '  {{.Hostname}} {{.Status}} {{.ManagerStatus}}' 2>/dev/null
    done
    healthy || ok=1
    return "$ok"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
env) env_lines ;;
_engine) engine_cgroup "$2" ;;
_engine_ns) engine_namespaced "$2" ;;
*)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
