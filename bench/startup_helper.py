#!/usr/bin/env python3
"""Helper of bench/startup.sh (standard library only).

Subcommands (all talk to the engine over /var/run/docker.sock, never to containers):
  write-stacks  write the benchmark's composectl root (networks.toml, stacks/*/compose.yaml)
                and stacks.json, the description every other subcommand reads
  ideal         the ideal orchestrator: `docker compose up -d` of each stack the moment
                every stack it requires is healthy, polling the engine every 20 ms
  wait-healthy  wait until every container of every stack is running and healthy
  record-events stream the engine's container events of the benchmark into a file until
                SIGTERM (the engine keeps only its last 256 events, and healthchecks make
                dozens per second, so they cannot be read back after the run)
  measure       read the recorded events and append one result line (JSON):
                time to all-healthy, ordering violations, RSS of the units' main processes
  report        print the Markdown table of all result lines
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

DOCKER_SOCKET = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
API = "/v1.41"
POLL = 0.020  # the ideal orchestrator's (and wait-healthy's) poll interval
LABEL = "org.composectl.bench"

# The layered stacks: panel healthy after ~2 s, database ~3 s, genai ~2 s requiring both
# (shared/TESTING.md's orientation). service -> seconds until its healthcheck passes.
TOPOLOGY = [
    ("panel", [], {"proxy": 2}),
    ("database", [], {"postgres": 3, "vector": 3}),
    ("genai", ["panel", "database"], {"ollama": 2, "webui": 2}),
]
TARGET_RATIO = 1.03
TARGET_RSS_MIB = 5.0


# ------------------------------------------------------------------ engine API ----
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Engine:
    """A keep-alive connection to the engine's API."""

    def __init__(self, path=DOCKER_SOCKET):
        self.path = path
        self.conn = None

    def get(self, url, timeout=30):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.path, timeout=timeout)
            try:
                self.conn.request("GET", API + url)
                resp = self.conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"engine: GET {url}: {resp.status} {body[:200]!r}")
            return body
        raise AssertionError("unreachable")

    def containers(self, bench_id=None, label=None):
        filters = json.dumps({"label": [label or f"{LABEL}={bench_id}"]})
        url = "/containers/json?all=1&filters=" + urllib.parse.quote(filters)
        return json.loads(self.get(url))



def load_stacks(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def health_of(container):
    """running+healthy / running+starting / ... from the list API's Status text."""
    if container.get("State") != "running":
        return container.get("State") or "unknown"
    status = container.get("Status", "")
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return "running"  # no healthcheck


def healthy_stacks(cfg, containers):
    """Names of the stacks whose every expected service has a running, healthy container
    and none of whose containers is anything else."""
    by_project = {}
    for c in containers:
        labels = c.get("Labels") or {}
        by_project.setdefault(labels.get("com.docker.compose.project"), []).append(c)
    done = set()
    for stack in cfg["stacks"]:
        mine = by_project.get(stack["project"], [])
        services = {(c.get("Labels") or {}).get("com.docker.compose.service") for c in mine}
        if set(stack["services"]) <= services and all(health_of(c) == "healthy" for c in mine):
            done.add(stack["name"])
    return done


# ---------------------------------------------------------------- write-stacks ----
# start_period: failed checks before the first success do not count, so a container is
# "starting" until its delay is over and then "healthy", never "unhealthy" in between
# (`up --wait` and a supervisor would rightly treat unhealthy as a failure).
COMPOSE_SERVICE = """\
  {service}:
    image: {image}
    pull_policy: never
    init: true
    command: ["sh", "-c", "sleep {delay}; touch /tmp/ready; exec sleep 100000"]
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 200ms
      timeout: 2s
      retries: 3
      start_period: 60s
    stop_grace_period: 2s
    labels:
      {label}: "{bench_id}"
    networks: [{networks}]
"""


def cmd_write_stacks(a):
    stacks_dir = os.path.join(a.root, "stacks")
    os.makedirs(stacks_dir, exist_ok=True)
    if len(a.subnet) != len(TOPOLOGY):
        sys.exit(f"write-stacks: need {len(TOPOLOGY)} --subnet, got {len(a.subnet)}")
    prefix = a.prefix
    net = {name: f"{prefix}-{name}" for name, _, _ in TOPOLOGY}
    toml = [
        "# Written by bench/startup.sh: one network per benchmark stack; the script creates them",
        "# with exactly these settings before the first run and removes them at the end.",
    ]
    for (name, _, _), subnet in zip(TOPOLOGY, a.subnet):
        toml += ["", f"[networks.{net[name]}]", f'subnet = "{subnet}"', "internal = true"]
    with open(os.path.join(a.root, "networks.toml"), "w", encoding="utf-8") as f:
        f.write("\n".join(toml) + "\n")

    cfg = {"bench_id": a.bench_id, "prefix": prefix, "stacks": [], "networks": []}
    for (name, requires, services), subnet in zip(TOPOLOGY, a.subnet):
        stack = f"{prefix}-{name}"
        # A stack joins its own network and those of the stacks it requires.
        nets = [net[name]] + [net[r] for r in requires]
        lines = [
            f"# bench/startup.sh: {name} layer of the startup benchmark (run {a.bench_id}).",
            "x-composectl:",
            f"  description: startup benchmark, {name}",
        ]
        if requires:
            lines.append("  requires: [" + ", ".join(f"{prefix}-{r}" for r in requires) + "]")
        lines += ["  ready: healthy", "  start_timeout: 2min", "  restart_sec: 1s", "", "services:"]
        body = "\n".join(lines) + "\n"
        for service, delay in services.items():
            body += COMPOSE_SERVICE.format(
                service=service,
                image=a.image,
                delay=delay,
                label=LABEL,
                bench_id=a.bench_id,
                networks=", ".join(nets),
            )
        body += "\nnetworks:\n" + "".join(f"  {n}:\n    external: true\n" for n in nets)
        d = os.path.join(stacks_dir, stack)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "compose.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(body)
        cfg["stacks"].append(
            {
                "name": name,
                "stack": stack,
                "project": stack,  # composectl's project name is the stack name
                "file": path,
                "requires": list(requires),
                "services": list(services),
            }
        )
        cfg["networks"].append({"name": net[name], "subnet": subnet, "internal": True})
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    # For the shell: "stack NAME STACK FILE REQUIRES" (REQUIRES: layer names joined by ",",
    # or "-") and "network NAME SUBNET" lines; no spaces inside the fields.
    for s in cfg["stacks"]:
        print("stack", s["name"], s["stack"], s["file"], ",".join(s["requires"]) or "-")
    for n in cfg["networks"]:
        print("network", n["name"], n["subnet"])


# ----------------------------------------------------------------------- ideal ----
def cmd_ideal(a):
    cfg = load_stacks(a.stacks)
    engine = Engine()
    docker = a.docker
    procs = {}
    t0 = time.time()
    deadline = t0 + a.timeout
    healthy = set()
    while True:
        for s in cfg["stacks"]:
            if s["name"] not in procs and all(r in healthy for r in s["requires"]):
                procs[s["name"]] = subprocess.Popen(
                    [docker, "compose", "-p", s["project"], "-f", s["file"], "up", "-d"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
        for name, p in procs.items():
            if p.poll() not in (None, 0):
                sys.stderr.write(p.stderr.read().decode(errors="replace"))
                sys.exit(f"ideal: compose up of {name} failed ({p.returncode})")
        healthy = healthy_stacks(cfg, engine.containers(cfg["bench_id"]))
        if len(healthy) == len(cfg["stacks"]):
            break
        if time.time() > deadline:
            sys.exit(f"ideal: not all healthy after {a.timeout} s (healthy: {sorted(healthy)})")
        time.sleep(POLL)
    t_done = time.time()
    for p in procs.values():
        p.wait()
    print(f"{t0:.6f} {t_done - t0:.6f}")


# ---------------------------------------------------------------- wait-healthy ----
def cmd_wait_healthy(a):
    cfg = load_stacks(a.stacks)
    engine = Engine()
    deadline = time.time() + a.timeout
    while True:
        containers = engine.containers(cfg["bench_id"])
        if len(healthy_stacks(cfg, containers)) == len(cfg["stacks"]):
            return
        if time.time() > deadline:
            states = sorted(f"{c['Names'][0].lstrip('/')}={health_of(c)}" for c in containers)
            sys.exit(f"wait-healthy: not all healthy after {a.timeout} s: {' '.join(states) or 'no containers'}")
        time.sleep(POLL)


# --------------------------------------------------------------- record-events ----
def cmd_record_events(a):
    cfg = load_stacks(a.stacks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    filters = json.dumps(
        {
            "type": ["container"],
            "label": [f"{LABEL}={cfg['bench_id']}"],
            # not exec_*: a healthcheck every 200 ms makes three of those per container
            "event": ["create", "start", "health_status", "die", "kill", "stop", "destroy"],
        }
    )
    conn = UnixHTTPConnection(DOCKER_SOCKET, timeout=None)
    conn.request("GET", API + "/events?filters=" + urllib.parse.quote(filters))
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"record-events: {resp.status} {resp.read()[:200]!r}")
    with open(a.out, "ab", buffering=0) as out:
        # The engine sends the headers once the subscription is active.
        with open(a.ready, "w", encoding="utf-8"):
            pass
        while True:
            line = resp.readline()
            if not line:
                sys.exit("record-events: the engine closed the event stream")
            out.write(line)


def read_events(path):
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events


# --------------------------------------------------------------------- measure ----
def analyse(cfg, events, containers, t0):
    """All-healthy time and ordering violations from the engine's events.

    A stack is healthy at the latest first-healthy event of its current containers.
    A dependent container violates the ordering when its (first) start event is before the
    moment every stack it requires became healthy (or that never happened)."""
    project_of = {s["project"]: s for s in cfg["stacks"]}
    starts, healthy = {}, {}
    names = {}
    for e in events:
        if e.get("Type") != "container":
            continue
        action = e.get("Action") or e.get("status") or ""
        cid = e.get("id") or e.get("Actor", {}).get("ID")
        attrs = e.get("Actor", {}).get("Attributes", {})
        ts = e["timeNano"] / 1e9
        if attrs.get("com.docker.compose.project") not in project_of:
            continue
        names[cid] = (attrs.get("com.docker.compose.project"), attrs.get("name", cid[:12]))
        if action == "start":
            starts.setdefault(cid, ts)
        elif action == "health_status: healthy":
            healthy.setdefault(cid, ts)
    current = {}
    for c in containers:
        project = (c.get("Labels") or {}).get("com.docker.compose.project")
        current.setdefault(project, []).append(c["Id"])
    stack_healthy = {}
    for s in cfg["stacks"]:
        ids = current.get(s["project"], [])
        times = [healthy.get(cid) for cid in ids]
        if ids and all(t is not None for t in times) and len(ids) >= len(s["services"]):
            stack_healthy[s["name"]] = max(times)
        else:
            stack_healthy[s["name"]] = None
    violations = []
    lags = []  # per dependent stack: its first container start minus the moment its deps were healthy
    for s in cfg["stacks"]:
        if not s["requires"]:
            continue
        deps = [stack_healthy[r] for r in s["requires"]]
        ready_at = None if any(d is None for d in deps) else max(deps)
        first = [ts for cid, ts in starts.items() if names[cid][0] == s["project"]]
        if ready_at is not None and first:
            lags.append(min(first) - ready_at)
        for cid, ts in starts.items():
            if names[cid][0] != s["project"]:
                continue
            if ready_at is None or ts < ready_at:
                early = "deps never healthy" if ready_at is None else f"{ready_at - ts:.3f} s early"
                violations.append(f"{names[cid][1]} started {early}")
    all_times = list(stack_healthy.values())
    all_healthy = None if any(t is None for t in all_times) else max(all_times) - t0
    return {
        "all_healthy": all_healthy,
        "stack_healthy": {k: (None if v is None else round(v - t0, 4)) for k, v in stack_healthy.items()},
        "violations": len(violations),
        "violation_details": violations,
        "start_lag": round(statistics.fmean(lags), 4) if lags else None,
    }


def cmd_measure(a):
    cfg = load_stacks(a.stacks)
    engine = Engine()
    result = {"strategy": a.strategy, "run": a.run, "t0": a.t0, "ok": a.error is None}
    if a.error:
        result["error"] = a.error
    if a.returned is not None:
        result["returned"] = round(a.returned - a.t0, 4)
    try:
        containers = engine.containers(cfg["bench_id"])
        events = [e for e in read_events(a.events) if e["timeNano"] / 1e9 >= a.t0 - 0.5]
        result.update(analyse(cfg, events, containers, a.t0))
        if result["ok"] and result["all_healthy"] is None:
            result["ok"] = False
            seen = {}
            for e in events:
                attrs = e.get("Actor", {}).get("Attributes", {})
                action = (e.get("Action") or "").split(":")[0] + (":" + e["Action"].split(":")[1].strip() if e.get("Action", "").startswith("health_status") else "")
                key = f"{attrs.get('name', '?')}:{action}"
                seen[key] = seen.get(key, 0) + 1
            states = sorted(f"{c['Names'][0].lstrip('/')}={health_of(c)}" for c in containers)
            result["error"] = (
                f"no healthy event for every container (containers: {' '.join(states) or 'none'}; "
                f"events: {' '.join(f'{k}x{v}' for k, v in sorted(seen.items()) if 'exec_' not in k)})"
            )
    except Exception as e:  # noqa: BLE001 - report, do not crash the benchmark
        result["ok"] = False
        result["error"] = f"measure: {e}"
    # Samples "STACK:MAIN_RSS_KIB:CGROUP_RSS_KIB:MAIN_PSS_KIB" (composectl only); per stack the
    # largest counts.
    if a.rss:
        main, cgroup, pss = {}, {}, {}
        for item in a.rss:
            stack, main_kib, cgroup_kib, pss_kib = item.rsplit(":", 3)
            main[stack] = max(main.get(stack, 0), int(main_kib))
            cgroup[stack] = max(cgroup.get(stack, 0), int(cgroup_kib))
            pss[stack] = max(pss.get(stack, 0), int(pss_kib))
        result["rss_main_kib"] = {k: (v or None) for k, v in main.items()}
        result["rss_cgroup_kib"] = cgroup
        result["pss_main_kib"] = pss
    if a.detected is not None:
        result["detected"] = round(a.detected, 4)
    with open(a.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    # One line for the log.
    if result["ok"]:
        msg = f"all healthy after {result['all_healthy']:.3f} s"
        if "returned" in result:
            msg += f", command returned after {result['returned']:.3f} s"
        msg += f", {result['violations']} ordering violation(s)"
        for v in result["violation_details"]:
            msg += f"\n      violation: {v}"
        if result.get("rss_main_kib"):
            msg += ", RSS " + " ".join(
                f"{k}={(v or 0) / 1024:.1f}MiB" for k, v in sorted(result["rss_main_kib"].items())
            )
    else:
        msg = "FAILED: " + result.get("error", "?")
    print(msg)


# ---------------------------------------------------------------------- report ----
LABELS = {
    "composectl": "composectl (`enable --now`, Type=notify `run`)",
    "ideal": "ideal orchestrator (20 ms polling)",
    "oneshot": "systemd oneshot `up -d --wait`",
    "naive": "naive `up -d` all at once (reference)",
}


def fmt(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def cmd_report(a):
    rows = []
    with open(a.results, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    order = [s for s in a.strategies.split(",") if s]
    stats = {}
    for s in order:
        mine = [r for r in rows if r["strategy"] == s]
        ok = [r for r in mine if r["ok"]]
        times = [r["all_healthy"] for r in ok]
        returned = [r["returned"] for r in ok if r.get("returned") is not None]
        rss = [v for r in ok for v in (r.get("rss_main_kib") or {}).values() if v is not None]
        rss_cg = [v for r in ok for v in (r.get("rss_cgroup_kib") or {}).values() if v]
        pss = [v for r in ok for v in (r.get("pss_main_kib") or {}).values() if v]
        lags = [r["start_lag"] for r in ok if r.get("start_lag") is not None]
        stats[s] = {
            "runs": len(mine),
            "ok": len(ok),
            "mean": statistics.fmean(times) if times else None,
            "min": min(times) if times else None,
            "max": max(times) if times else None,
            "returned": statistics.fmean(returned) if returned else None,
            "violations": sum(r["violations"] for r in ok),
            "lag": statistics.fmean(lags) if lags else None,
            "rss_mean": statistics.fmean(rss) / 1024 if rss else None,
            "rss_max": max(rss) / 1024 if rss else None,
            "rss_cg_mean": statistics.fmean(rss_cg) / 1024 if rss_cg else None,
            "rss_cg_max": max(rss_cg) / 1024 if rss_cg else None,
            "pss_mean": statistics.fmean(pss) / 1024 if pss else None,
            "pss_max": max(pss) / 1024 if pss else None,
            "errors": sorted({r.get("error", "") for r in mine if not r["ok"]}),
        }
    ideal = stats.get("ideal", {}).get("mean")

    out = []
    out.append(
        "| strategy | runs ok | all-healthy mean (s) | min (s) | max (s) | × ideal | command returned (s) "
        "| dependent start − deps healthy (s) | ordering violations | RSS/stack MiB (MainPID mean / max) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for s in order:
        st = stats[s]
        ratio = None if (ideal is None or st["mean"] is None) else st["mean"] / ideal
        viol = "–" if not st["ok"] else f"{st['violations']} ({st['violations'] / st['ok']:.1f}/run)"
        rss = "–" if st["rss_mean"] is None else f"{st['rss_mean']:.2f} / {st['rss_max']:.2f}"
        out.append(
            f"| {LABELS.get(s, s)} | {st['ok']}/{st['runs']} | {fmt(st['mean'])} | {fmt(st['min'])} "
            f"| {fmt(st['max'])} | {fmt(ratio)} | {fmt(st['returned'])} | {fmt(st['lag'])} | {viol} | {rss} |"
        )
    print("\n".join(out))
    print()
    print(
        "all-healthy: engine timestamp of the last `health_status: healthy` event minus the moment the "
        "strategy was started; command returned: when `enable --now`, `systemctl start` or `up -d` "
        "returned; dependent start − deps healthy: first container start of genai minus the moment both "
        "panel and database were healthy (negative: started too early); ordering violation: a container "
        "of a dependent stack whose engine `start` event precedes the moment every stack it requires was healthy."
    )
    for s in order:
        for e in stats[s]["errors"]:
            print(f"- {s}: failed run(s): {e}")
    if stats.get("composectl", {}).get("rss_cg_mean") is not None:
        c = stats["composectl"]
        print(
            f"- composectl: RSS of every process in the unit's cgroup (supervisor and any helpers it "
            f"spawned) after READY: mean {c['rss_cg_mean']:.2f} MiB, max {c['rss_cg_max']:.2f} MiB per stack"
        )
        if c.get("pss_mean") is not None:
            print(
                f"- composectl: PSS of the supervisor (pages shared by all supervisors, such as the "
                f"composectl binary and libc, split among them): mean {c['pss_mean']:.2f} MiB, "
                f"max {c['pss_max']:.2f} MiB per stack"
            )
    print()
    c = stats.get("composectl")
    print("Targets (issue 4), composectl:")
    if not c or not c["ok"]:
        reason = "skipped" if not c or not c["runs"] else "every run failed"
        print(f"- ≤ {TARGET_RATIO} × ideal: not measured ({reason})")
        print(f"- 0 ordering violations: not measured ({reason})")
        print(f"- ≤ {TARGET_RSS_MIB:g} MiB RSS per stack: not measured ({reason})")
        return
    ratio = None if ideal is None or c["mean"] is None else c["mean"] / ideal
    if ratio is None:
        print(f"- ≤ {TARGET_RATIO} × ideal: not measured (ideal skipped or failed)")
    else:
        best = c["min"] / stats["ideal"]["min"]
        print(
            f"- ≤ {TARGET_RATIO} × ideal (means): {ratio:.3f} × → {'met' if ratio <= TARGET_RATIO else 'MISSED'}"
            f" (best runs: {best:.3f} ×)"
        )
    print(f"- 0 ordering violations: {c['violations']} → {'met' if c['violations'] == 0 else 'MISSED'}")
    if c["rss_max"] is None:
        print(f"- ≤ {TARGET_RSS_MIB:g} MiB RSS per stack: not measured (no MainPID)")
    else:
        met = c["rss_max"] <= TARGET_RSS_MIB
        print(
            f"- ≤ {TARGET_RSS_MIB:g} MiB RSS per stack: mean {c['rss_mean']:.2f}, max {c['rss_max']:.2f} MiB "
            f"→ {'met' if met else 'MISSED'}"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("write-stacks")
    w.add_argument("--root", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--prefix", required=True)
    w.add_argument("--bench-id", required=True)
    w.add_argument("--image", required=True)
    w.add_argument("--subnet", action="append", default=[])
    w.set_defaults(func=cmd_write_stacks)

    i = sub.add_parser("ideal")
    i.add_argument("--stacks", required=True)
    i.add_argument("--docker", default="docker")
    i.add_argument("--timeout", type=float, default=120)
    i.set_defaults(func=cmd_ideal)

    h = sub.add_parser("wait-healthy")
    h.add_argument("--stacks", required=True)
    h.add_argument("--timeout", type=float, default=120)
    h.set_defaults(func=cmd_wait_healthy)

    m = sub.add_parser("measure")
    m.add_argument("--stacks", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--strategy", required=True)
    m.add_argument("--run", type=int, required=True)
    m.add_argument("--t0", type=float, required=True)
    m.add_argument("--events", required=True, help="the file record-events wrote")
    m.add_argument("--returned", type=float)
    m.add_argument("--detected", type=float)
    m.add_argument("--error")
    m.add_argument("--rss", action="append", default=[], help="STACK:MAIN_KIB:CGROUP_KIB (repeatable)")
    m.set_defaults(func=cmd_measure)

    e = sub.add_parser("record-events")
    e.add_argument("--stacks", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--ready", required=True, help="created once the subscription is active")
    e.set_defaults(func=cmd_record_events)

    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--strategies", required=True)
    r.set_defaults(func=cmd_report)

    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
