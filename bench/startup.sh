#!/usr/bin/env bash
# Startup benchmark (issue 4): time to all-healthy, ordering violations and the
# supervisor's memory, for the same three layered stacks started by
#
#   composectl  `composectl --user --root ROOT enable --now <genai>` against a private
#               systemd --user manager (units: Type=notify, ExecStart=composectl run STACK)
#   ideal       an orchestrator that runs `docker compose up -d` of each stack the moment
#               every stack it requires is healthy, polling the engine every 20 ms
#   oneshot     systemd Type=oneshot units running `docker compose up -d --wait`, with
#               Requires=/After= between them, `systemctl --user start` of the top one
#   naive       `docker compose up -d` of all three at once, no ordering (a reference that
#               shows the violation counter works: genai starts before its dependencies)
#
# The stacks (stacks/ and networks.toml of a temporary composectl root) are busybox
# containers whose healthcheck passes after a delay: panel ~2 s, database ~3 s (two
# services), genai ~2 s (two services) requiring panel and database. Each stack has its own
# internal network (10.231.x.0/24, free /24s are picked), created before the first run and
# removed at the end. Rounds are interleaved (round 1: every strategy, round 2: ...), after
# one unmeasured warm-up; every run is followed by a full teardown (`docker compose down`).
#
# Metrics, from the engine's event stream (timeNano, recorded live during each run: the
# engine keeps only its last 256 events), never from the strategy itself:
#   all-healthy         last container's `health_status: healthy` minus the strategy's start
#   ordering violations containers of a dependent stack whose `start` event precedes the
#                       moment every stack it requires was healthy
#   start lag           (diagnostic) genai's first container start minus that moment
#   RSS/stack           composectl only: VmRSS of each compose@STACK.service MainPID after
#                       READY (the larger of two samples: right away and 2 s later), and of
#                       all processes in the unit's cgroup as a note
# Times vary by several tenths of a second between runs on a busy 2-CPU VM: for the 3 %
# target use --runs 5 or more on an otherwise idle machine (the load average is printed).
# Targets (composectl): <= 1.03 x ideal, 0 violations, <= 5 MiB RSS per stack. Missing a
# target is a result, not an error: the exit code is 0 unless a run failed (1) or the
# arguments/environment are wrong (2).
#
# Usage (as root, after scripts/provision-e2e.sh):
#   bench/startup.sh [--runs N] [--skip S[,S]] [--only S[,S]] [--results FILE] [--no-warmup]
#   COMPOSECTL=path/to/composectl   the binary (default target/release/composectl, built with
#                                   `cargo build --release` when missing)
#   --results FILE                  also write the raw per-run results (JSON lines) there
#
# Cleans up on exit and on INT/TERM: its containers, networks, the manager (SIGTERM, 2 s,
# SIGKILL, by pid) and its cgroup, the temp dir. Never touches other projects or managers.
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
helper="$here/startup_helper.py"
image="composectl-test/busybox:latest"
python="${PYTHON:-python3}"
all_strategies=(ideal composectl oneshot naive)
cmd_timeout=180

runs=3
warmup=1
results_copy=""
declare -A selected=()
for s in "${all_strategies[@]}"; do selected[$s]=1; done

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'bench/startup.sh: %s\n' "$1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

parse_list() { # "a,b c" -> list=(a b c), each a known strategy
    local s
    list=()
    for s in ${1//,/ }; do
        [[ " ${all_strategies[*]} " == *" $s "* ]] ||
            die "unknown strategy '$s' (one of: ${all_strategies[*]})" 2
        list+=("$s")
    done
}
skip() { parse_list "$1"; for s in "${list[@]}"; do unset "selected[$s]"; done; }
only() { parse_list "$1"; selected=(); for s in "${list[@]}"; do selected[$s]=1; done; }

while [ $# -gt 0 ]; do
    case "$1" in
    --runs) [ $# -ge 2 ] || die "--runs needs a value" 2; runs="$2"; shift 2 ;;
    --runs=*) runs="${1#*=}"; shift ;;
    --skip) [ $# -ge 2 ] || die "--skip needs a value" 2; skip "$2"; shift 2 ;;
    --skip=*) skip "${1#*=}"; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs a value" 2; only "$2"; shift 2 ;;
    --only=*) only "${1#*=}"; shift ;;
    --results) [ $# -ge 2 ] || die "--results needs a value" 2; results_copy="$2"; shift 2 ;;
    --results=*) results_copy="${1#*=}"; shift ;;
    --no-warmup) warmup=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" 2 ;;
    esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer" 2
strategies=()
for s in "${all_strategies[@]}"; do [ -n "${selected[$s]:-}" ] && strategies+=("$s"); done
[ "${#strategies[@]}" -gt 0 ] || die "no strategy left to run" 2
want() { [ -n "${selected[$1]:-}" ]; }
needs_manager() { want composectl || want oneshot; }

# ------------------------------------------------------------------ preflight ----
[ "$(id -u)" -eq 0 ] || die "run as root (the manager gets its own cgroup; dockerd's socket is root's)" 2
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null || die "python3 >= 3.8 needed" 2
docker_bin="$(command -v docker)" || die "no docker CLI (run scripts/provision-e2e.sh)" 2
docker info >/dev/null 2>&1 || die "the docker engine does not answer (run scripts/provision-e2e.sh)" 2
docker compose version --short 2>/dev/null | grep -q '^v\?2\.' || die "docker compose is not Compose v2" 2
docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing (run scripts/provision-e2e.sh)" 2
if needs_manager; then
    [ -d /run/systemd/system ] || die "/run/systemd/system missing (run scripts/provision-e2e.sh)" 2
    command -v systemd >/dev/null || [ -x /lib/systemd/systemd ] || die "no systemd binary" 2
fi
systemd_bin="$(command -v systemd || echo /lib/systemd/systemd)"

ctl=""
if want composectl; then
    ctl="${COMPOSECTL:-$repo/target/release/composectl}"
    if [ ! -x "$ctl" ]; then
        [ -z "${COMPOSECTL:-}" ] || die "COMPOSECTL=$ctl is not executable" 2
        log "building $ctl (cargo build --release)"
        (cd "$repo" && cargo build --release --quiet) || die "cargo build --release failed"
    fi
    ctl="$(realpath "$ctl")"
    "$ctl" run --help >/dev/null 2>&1 || die "$ctl has no \`run\` subcommand: build the current source, or --skip composectl" 2
fi

# -------------------------------------------------------- state and cleanup ----
T="$(mktemp -d /tmp/composectl-bench.XXXXXX)"
id="$(basename "$T" | sed 's/^composectl-bench\.//' | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9')"
prefix="bench-$id"           # stack = compose project = unit instance names start with it
bench_label="org.composectl.bench=$prefix"
root="$T/root"               # the composectl root
stacks_json="$T/stacks.json"
results="$T/results.jsonl"
units="$T/config/systemd/user"
slice="composectl-e2e-$$-bench$id.slice"   # harness.rs sweeps it should this script be SIGKILLed
mgr=""
recorder=""                  # pid of the engine event recorder while a run is measured
networks=()                  # created by us, removed at the end
stack_names=()               # panel database genai (layer names)
declare -A stack_of=() file_of=() requires_of=()
run_failed=0

user_env() {
    env XDG_RUNTIME_DIR="$T/run" DBUS_SESSION_BUS_ADDRESS="unix:path=$T/run/bus" \
        XDG_CONFIG_HOME="$T/config" HOME="$T/home" "$@"
}
sctl() { user_env timeout --foreground "$cmd_timeout" systemctl --user "$@"; }
ctl_cmd() { user_env timeout --foreground "$cmd_timeout" "$ctl" --user --root "$root" "$@"; }
compose() { # layer args...
    timeout --foreground "$cmd_timeout" docker compose -p "${stack_of[$1]}" -f "${file_of[$1]}" "${@:2}"
}

remove_containers() { # every container of this benchmark, whoever started it
    local n pids=() ids
    for n in "${stack_names[@]}"; do
        compose "$n" down -t 2 --remove-orphans >>"$T/teardown.log" 2>&1 &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || true; done
    ids="$(docker ps -aq --filter "label=$bench_label" 2>/dev/null || true)"
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # a list of ids
        docker rm -f $ids >>"$T/teardown.log" 2>&1 || true
    fi
}

# shellcheck disable=SC2317 # called from the EXIT trap
stop_manager() {
    local h procs p
    if [ -n "$mgr" ]; then
        kill -TERM "$mgr" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$mgr" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$mgr" 2>/dev/null || true
        wait "$mgr" 2>/dev/null || true
        mgr=""
    fi
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -d "$h/$slice" ] || continue
        while read -r procs; do
            while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$procs"
        done < <(find "$h/$slice" -name cgroup.procs)
        for _ in $(seq 1 40); do
            find "$h/$slice" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$h/$slice" ] || break
            sleep 0.05
        done
    done
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
    local rc=$? n
    trap - EXIT INT TERM
    set +e
    [ -z "$recorder" ] || { kill -TERM "$recorder"; wait "$recorder"; } 2>/dev/null
    if [ -n "$mgr" ] && [ -S "$T/run/bus" ]; then
        # Stop what the manager runs while the units can still bring their projects down.
        if want composectl && [ -d "$units" ] && compgen -G "$units/compose@*.service.d" >/dev/null; then
            ctl_cmd -q disable --now "${stack_of[@]}" >>"$T/teardown.log" 2>&1
        fi
        want oneshot && sctl stop "${stack_names[@]/%/-oneshot.service}" >>"$T/teardown.log" 2>&1
    fi
    [ "${#stack_names[@]}" -gt 0 ] && remove_containers
    stop_manager
    for n in "${networks[@]}"; do docker network rm "$n" >/dev/null 2>&1; done
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ------------------------------------------------- stacks, root, networks ----
# Pick three free /24s in 10.231.0.0/16: the engine refuses a subnet overlapping another.
created=0
for k in $(seq 0 83); do
    b=$((k * 3 + 1))
    mapfile -t lines < <("$python" "$helper" write-stacks --root "$root" --out "$stacks_json" \
        --prefix "$prefix" --bench-id "$prefix" --image "$image" \
        --subnet "10.231.$b.0/24" --subnet "10.231.$((b + 1)).0/24" --subnet "10.231.$((b + 2)).0/24")
    networks=() stack_names=() ok=1
    for line in "${lines[@]}"; do
        read -r kind a1 a2 a3 a4 <<<"$line"
        case "$kind" in
        stack) stack_names+=("$a1"); stack_of[$a1]="$a2"; file_of[$a1]="$a3"; requires_of[$a1]="${a4//,/ }" ;;
        network)
            if docker network create --driver bridge --subnet "$a2" --internal "$a1" >/dev/null 2>"$T/net.err"; then
                networks+=("$a1")
            else
                ok=0
                break
            fi ;;
        esac
    done
    if [ "$ok" -eq 1 ]; then created=1; break; fi
    for n in "${networks[@]}"; do docker network rm "$n" >/dev/null 2>&1 || true; done
    networks=()
    grep -qi 'overlap' "$T/net.err" || die "docker network create: $(cat "$T/net.err")"
done
[ "$created" -eq 1 ] || die "no three free /24 subnets in 10.231.0.0/16"
[ "${#stack_names[@]}" -gt 0 ] || die "startup_helper.py write-stacks failed"
log "stacks $(for n in "${stack_names[@]}"; do printf '%s ' "${stack_of[$n]}"; done)in $root; networks: $(for n in "${networks[@]}"; do printf '%s ' "$n"; done)"
if want composectl; then
    "$ctl" --root "$root" check >"$T/check.log" 2>&1 || { cat "$T/check.log" >&2; die "composectl check refused the benchmark root"; }
fi

# ---------------------------------------------------------------- manager ----
start_manager() {
    mkdir -m 0700 "$T/run"
    mkdir -p "$T/home" "$units"
    # Never in the root cgroup (it would move PID 1, dockerd... into /init.scope): the sh
    # moves itself into its own slice in each hierarchy, then execs the manager.
    # shellcheck disable=SC2016 # $SLICE and $$ are for the inner sh
    (cd / && exec env -i PATH="$PATH" HOME="$T/home" XDG_RUNTIME_DIR="$T/run" \
        XDG_CONFIG_HOME="$T/config" SLICE="$slice" SYSTEMD="$systemd_bin" \
        setsid sh -c '
            for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
                [ -e "$h/cgroup.procs" ] || continue
                mkdir -p "$h/$SLICE" && echo $$ >"$h/$SLICE/cgroup.procs" || exit 97
            done
            exec "$SYSTEMD" --user --log-target=journal') >"$T/manager.log" 2>&1 </dev/null &
    mgr=$!
    for _ in $(seq 1 500); do
        [ -S "$T/run/bus" ] && [ -S "$T/run/systemd/private" ] && return 0
        kill -0 "$mgr" 2>/dev/null || break
        sleep 0.02
    done
    cat "$T/manager.log" >&2
    die "the private systemd --user manager did not come up"
}

write_oneshot_units() {
    local n dep unit
    for n in "${stack_names[@]}"; do
        unit="$units/$n-oneshot.service"
        {
            printf '[Unit]\nDescription=bench: %s (oneshot up -d --wait)\n' "${stack_of[$n]}"
            for dep in ${requires_of[$n]/#-/}; do
                printf 'Requires=%s-oneshot.service\nAfter=%s-oneshot.service\n' "$dep" "$dep"
            done
            printf '\n[Service]\nType=oneshot\nRemainAfterExit=yes\nTimeoutSec=%s\n' "$cmd_timeout"
            printf 'ExecStart=%s compose -p %s -f %s up -d --wait\n' "$docker_bin" "${stack_of[$n]}" "${file_of[$n]}"
            printf 'ExecStop=%s compose -p %s -f %s down -t 2\n' "$docker_bin" "${stack_of[$n]}" "${file_of[$n]}"
        } >"$unit"
    done
    sctl daemon-reload
}

if needs_manager; then
    start_manager
    log "private systemd --user manager pid $mgr in /$slice"
    want oneshot && write_oneshot_units
fi

# -------------------------------------------------------------- strategies ----
now() { printf '%s' "$EPOCHREALTIME"; }
top="${stack_names[-1]}"       # genai: requires the others, starting it starts everything

# Each run_* sets t0 (the strategy's start, epoch seconds) and margs (measure's arguments:
# --returned, --error, --rss...); the main loop records the engine's events around it.
t0="" margs=() events=""

start_recorder() { # strategy run
    events="$T/events.$1.$2.jsonl"
    rm -f "$T/recorder.ready"
    "$python" "$helper" record-events --stacks "$stacks_json" --out "$events" \
        --ready "$T/recorder.ready" 2>>"$T/err.log" &
    recorder=$!
    for _ in $(seq 1 250); do
        [ -e "$T/recorder.ready" ] && return 0
        kill -0 "$recorder" 2>/dev/null || break
        sleep 0.02
    done
    die "the engine event recorder did not start: $(tail -n 1 "$T/err.log")"
}

stop_recorder() {
    sleep 0.3 # events of the last moment
    kill -TERM "$recorder" 2>/dev/null || true
    wait "$recorder" 2>/dev/null || true
    recorder=""
}

measure() { # strategy run
    local out
    out="$("$python" "$helper" measure --stacks "$stacks_json" --out "$results" --events "$events" \
        --strategy "$1" --run "$2" --t0 "$t0" "${margs[@]}")" || out="FAILED: measure crashed"
    log "$1 #$2: $out"
    [[ "$out" != FAILED* ]] || run_failed=1
}

wait_healthy() { "$python" "$helper" wait-healthy --stacks "$stacks_json" --timeout "${1:-120}" 2>>"$T/err.log"; }

teardown() { # strategy
    case "$1" in
    composectl)
        if ! ctl_cmd -q disable --now "${stack_of[@]}" >>"$T/teardown.log" 2>&1; then
            log "composectl disable --now failed: $(tail -n 2 "$T/teardown.log" | tr '\n' ' ')(removing the containers directly)"
            run_failed=1
        fi ;;
    oneshot) sctl stop "${stack_names[@]/%/-oneshot.service}" >>"$T/teardown.log" 2>&1 || true ;;
    esac
    remove_containers
    [ -z "$(docker ps -aq --filter "label=$bench_label")" ] || die "containers left after teardown"
    sleep 1 # let the engine settle (network endpoints, exec cleanup) before the next start
}

run_ideal() {
    local out detected
    t0="$(now)"
    if out="$("$python" "$helper" ideal --stacks "$stacks_json" --docker "$docker_bin" --timeout 120 2>>"$T/err.log")"; then
        # The orchestrator's own clock: it is a running process, its start-up is not counted.
        read -r t0 detected <<<"$out"
        margs=(--detected "$detected")
    else
        margs=(--error "ideal orchestrator failed: $(tail -n 1 "$T/err.log")")
    fi
}

run_naive() {
    local t_ret n pids=() rc=0
    t0="$(now)"
    for n in "${stack_names[@]}"; do
        compose "$n" up -d >>"$T/compose.log" 2>&1 &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    t_ret="$(now)"
    if [ "$rc" -ne 0 ]; then
        margs=(--error "docker compose up -d failed (see $T/compose.log)")
    elif ! wait_healthy 120; then
        margs=(--error "not all healthy: $(tail -n 1 "$T/err.log")")
    else
        margs=(--returned "$t_ret")
    fi
}

run_oneshot() {
    local t_ret
    t0="$(now)"
    if ! sctl start "$top-oneshot.service" >>"$T/oneshot.log" 2>&1; then
        margs=(--error "systemctl start $top-oneshot.service failed: $(tail -n 1 "$T/oneshot.log")")
        return
    fi
    t_ret="$(now)"
    if wait_healthy 30; then
        margs=(--returned "$t_ret")
    else
        margs=(--error "active but not all healthy: $(tail -n 1 "$T/err.log")")
    fi
}

# PSS splits the pages the supervisors share (the composectl binary, libc) among them: what each
# one really adds.
pss_kib() { awk '$1 == "Pss:" { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
vmrss_kib() { awk '$1 == "VmRSS:" { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

rss_sample() { # appends --rss STACK:MAIN_KIB:CGROUP_KIB:MAIN_PSS_KIB for every stack to margs
    local n unit pid cg h p main total pss
    for n in "${stack_names[@]}"; do
        unit="compose@${stack_of[$n]}.service"
        pid="$(sctl show -P MainPID "$unit" 2>/dev/null || echo 0)"
        cg="$(sctl show -P ControlGroup "$unit" 2>/dev/null || true)"
        main=0 total=0 pss=0
        [ "${pid:-0}" -gt 0 ] && main="$(vmrss_kib "$pid")" && pss="$(pss_kib "$pid")"
        for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
            if [ -z "$cg" ] || [ ! -d "$h$cg" ]; then continue; fi
            for p in $(find "$h$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un); do
                total=$((total + $(vmrss_kib "$p")))
            done
            break
        done
        margs+=(--rss "${stack_of[$n]}:$main:$total:$pss")
    done
}

run_composectl() {
    local t_ret
    t0="$(now)"
    if ! ctl_cmd -q enable --now "${stack_of[$top]}" >>"$T/composectl.log" 2>&1; then
        margs=(--error "composectl enable --now failed: $(tail -n 3 "$T/composectl.log" | tr '\n' ' ')")
        return
    fi
    t_ret="$(now)"
    # Resident memory after READY (every unit is active once enable --now returned): right
    # away and 2 s later (log forwarding, event watching are running by then); the max counts.
    margs=(--returned "$t_ret")
    rss_sample
    if ! wait_healthy 30; then
        margs=(--error "enable --now returned but not all healthy: $(tail -n 1 "$T/err.log")")
        return
    fi
    sleep 2
    rss_sample
}

if [ "$warmup" -eq 1 ]; then
    log "warm-up (not measured): docker compose up -d of every stack"
    for n in "${stack_names[@]}"; do compose "$n" up -d >>"$T/compose.log" 2>&1 || die "warm-up: compose up -d $n failed: $(tail -n 3 "$T/compose.log")"; done
    wait_healthy 120 || die "warm-up: the stacks did not become healthy: $(tail -n 1 "$T/err.log")"
    teardown naive
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
log "strategies: ${strategies[*]}; $runs run(s) each, interleaved (load average $load_before)"
for r in $(seq 1 "$runs"); do
    for s in "${strategies[@]}"; do
        log "$s #$r/$runs"
        t0="" margs=()
        start_recorder "$s" "$r"
        case "$s" in
        ideal) run_ideal ;;
        composectl) run_composectl ;;
        oneshot) run_oneshot ;;
        naive) run_naive ;;
        esac
        stop_recorder
        measure "$s" "$r"
        teardown "$s"
    done
done

[ -z "$results_copy" ] || cp "$results" "$results_copy"
echo
echo "Startup benchmark: $runs run(s) per strategy; stacks: panel (healthy after ~2 s), database (~3 s),"
echo "genai (~2 s, requires both); $(docker version -f 'engine {{.Server.Version}}' 2>/dev/null), compose $(docker compose version --short), $(systemctl --version | head -n1 | cut -d' ' -f1-2)."
echo "$(nproc) CPUs; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes the times noisy)."
if want composectl; then
    echo "composectl: $ctl"
fi
echo
"$python" "$helper" report --results "$results" --strategies "$(IFS=,; echo "${strategies[*]}")"
if [ "$run_failed" -ne 0 ]; then
    log "some runs failed (see above); $T is removed on exit, logs:"
    for f in "$T"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 20 "$f" >&2; }; done
    exit 1
fi
exit 0
