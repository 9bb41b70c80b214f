#!/usr/bin/python3
"""A stand-in for `composectl run`, for checking bench/startup.sh's composectl strategy
before the real supervisor exists (`bench/startup.sh --composectl-exec bench/standin_supervisor.py`).
NOT composectl: its numbers measure this script, and the report says so.

Called as the units call composectl: `ARGS... run STACK` or `ARGS... networks` (with
`--user --root ROOT` before). `networks` does nothing (the benchmark creates the networks);
`run` does `docker compose up -d`, polls the engine every 20 ms until every container of the
project is running and healthy, sends READY=1 from the main process, and on SIGTERM brings the
project down and exits 0.
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup_helper import POLL, Engine, health_of  # noqa: E402


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), path)


def main():
    args = sys.argv[1:]
    root = args[args.index("--root") + 1] if "--root" in args else os.getcwd()
    rest = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--root")]
    if rest[:1] == ["networks"]:
        return 0
    if rest[:1] != ["run"] or len(rest) != 2:
        print(f"standin_supervisor: unsupported arguments {args}", file=sys.stderr)
        return 2
    stack = rest[1]
    compose = ["docker", "compose", "-p", stack, "-f", os.path.join(root, "stacks", stack, "compose.yaml")]
    subprocess.run(compose + ["up", "-d", "--remove-orphans"], check=True, stdin=subprocess.DEVNULL)
    # From here a SIGTERM (systemctl stop) is taken by sigwait below, after READY at the latest.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    engine = Engine()
    label = f"com.docker.compose.project={stack}"
    while True:
        states = [health_of(c) for c in engine.containers(label=label)]
        if states and all(s in ("healthy", "running") for s in states):
            break
        notify(f"STATUS=waiting: {' '.join(sorted(states))}")
        time.sleep(POLL)
    notify(f"READY=1\nSTATUS={len(states)}/{len(states)} running (stand-in)")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    notify("STOPPING=1")
    subprocess.run(compose + ["down", "-t", "2"], check=False, stdin=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
