#!/usr/bin/env bash
# Hand check (documentation by example) of the facts tests/e2e/harness.rs
# relies on. Run after scripts/provision-e2e.sh, as root:
#
#   bash tests/e2e/smoke_check.sh
#
# It starts a private `systemd --user` manager in its own cgroup (exactly as
# harness.rs does), then checks that
#   1. a Type=notify unit whose READY=1 comes from a *child* of the main
#      process (systemd-notify in a shell script) starts with NotifyAccess=all;
#   2. without NotifyAccess=all (the default for Type=notify is
#      NotifyAccess=main: messages from other PIDs are dropped):
#      a. systemd-notify run *directly* by the main shell still works, because
#         systemd-notify (as root) sends with its parent's PID as credentials;
#      b. READY=1 from any other process (here a background python child of the
#         main shell) is dropped and the start times out;
#   3. READY=1 sent by the main process itself works with the default;
#   4. the unit's stdout is in journald under _SYSTEMD_UNIT, so
#      `journalctl -u UNIT` finds it (not --user-unit);
#   5. a native-protocol field (COMPOSE_SERVICE=web, sent by `logger
#      --journald` from inside the unit) is kept and filterable, and
#      _SYSTEMD_CGROUP tells apart the same unit name in different managers.
# Prints "N passed, N failed" and exits non-zero on failure. Kills only the
# manager it started, by pid.
set -euo pipefail

pass=0
fail=0
ok() { printf 'ok   %s\n' "$*"; pass=$((pass + 1)); }
bad() { printf 'FAIL %s\n' "$*"; fail=$((fail + 1)); }

[ -d /run/systemd/system ] || { echo "run scripts/provision-e2e.sh first" >&2; exit 2; }

T="$(mktemp -d /tmp/composectl-smoke.XXXXXX)"
mkdir -m 0700 "$T/run"
mkdir -p "$T/home" "$T/config/systemd/user"
id="$(basename "$T" | tr -cd 'A-Za-z0-9')"
slice="composectl-e2e-$id.slice"
units="$T/config/systemd/user"
export XDG_RUNTIME_DIR="$T/run" DBUS_SESSION_BUS_ADDRESS="unix:path=$T/run/bus"

# The manager must not start in the root cgroup: a manager whose own cgroup is
# "/" moves EVERY process of the root cgroup (PID 1, dockerd, other test
# runs...) into /init.scope, and all managers would share /app.slice/<unit>
# cgroups. So: a sh moves itself into <slice> in the name=systemd (v1) and
# unified hierarchies, then execs the manager. --log-target=journal, because
# by default such a manager logs to /dev/console, not to its stderr.
cd /
# shellcheck disable=SC2016 # $SLICE and $$ are for the inner sh
env -i PATH="$PATH" HOME="$T/home" XDG_RUNTIME_DIR="$T/run" \
    XDG_CONFIG_HOME="$T/config" SLICE="$slice" \
    setsid sh -c '
        for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
            [ -e "$h/cgroup.procs" ] || continue
            mkdir -p "$h/$SLICE" && echo $$ >"$h/$SLICE/cgroup.procs"
        done
        exec systemd --user --log-target=journal' >"$T/manager.log" 2>&1 </dev/null &
mgr=$!

cleanup() {
    # SIGTERM (= `systemctl --user exit`, but that can hang), ~2 s, SIGKILL.
    local i procs p
    kill -TERM "$mgr" 2>/dev/null || true
    for i in $(seq 1 60); do kill -0 "$mgr" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$mgr" 2>/dev/null; then
        echo "manager still alive after 3 s: SIGKILL"
        kill -KILL "$mgr" 2>/dev/null || true
    else
        echo "manager exited $((i * 50)) ms after SIGTERM"
    fi
    wait "$mgr" 2>/dev/null || true
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -d "$h/$slice" ] || continue
        while read -r procs; do
            while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$procs"
        done < <(find "$h/$slice" -name cgroup.procs)
        for i in $(seq 1 20); do
            find "$h/$slice" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$h/$slice" ] || break
            sleep 0.05
        done
    done
    rm -rf "$T"
}
trap cleanup EXIT

for _ in $(seq 1 500); do
    [ -S "$T/run/bus" ] && [ -S "$T/run/systemd/private" ] && break
    sleep 0.02
done
if [ -S "$T/run/bus" ]; then
    ok "manager up, bus at $T/run/bus"
else
    bad "no bus"
    cat "$T/manager.log"
    exit 1
fi

cat >"$T/child-notify.sh" <<EOF
#!/bin/sh
echo "stdout-line-$id"
printf 'MESSAGE=native-line-$id\nCOMPOSE_SERVICE=web\n' | logger --journald
systemd-notify --ready --status="serving $id"
exec sleep 300
EOF
cat >"$T/main-notify.py" <<'EOF'
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=main says ready", os.environ["NOTIFY_SOCKET"])
time.sleep(300)
EOF
chmod +x "$T/child-notify.sh"

cat >"$units/child-all.service" <<EOF
[Service]
Type=notify
NotifyAccess=all
ExecStart=$T/child-notify.sh
EOF
cat >"$units/child-main.service" <<EOF
[Service]
Type=notify
TimeoutStartSec=3
ExecStart=$T/child-notify.sh
EOF
cat >"$units/bgchild-main.service" <<EOF
[Service]
Type=notify
TimeoutStartSec=2
ExecStart=/bin/sh -c '/usr/bin/python3 $T/main-notify.py & exec sleep 300'
EOF
cat >"$units/main-main.service" <<EOF
[Service]
Type=notify
TimeoutStartSec=5
ExecStart=/usr/bin/python3 $T/main-notify.py
EOF
systemctl --user daemon-reload

# 1
if timeout 10 systemctl --user start child-all.service &&
    [ "$(systemctl --user show -P ActiveState child-all.service)" = active ]; then
    ok "Type=notify + NotifyAccess=all, READY from a child: active ($(systemctl --user show -P StatusText child-all.service))"
else
    bad "child-all.service did not become active"
fi
# 2
if timeout 10 systemctl --user start child-main.service; then
    ok "Type=notify, default NotifyAccess, systemd-notify run by the main shell: active"
else
    bad "child-main.service did not become active"
fi
if timeout 10 systemctl --user start bgchild-main.service 2>/dev/null; then
    bad "bgchild-main.service became active without NotifyAccess=all"
else
    ok "Type=notify, default NotifyAccess, READY from another process: start fails ($(systemctl --user show -P Result bgchild-main.service))"
fi
# 3
if timeout 10 systemctl --user start main-main.service &&
    [ "$(systemctl --user show -P StatusText main-main.service)" = "main says ready" ]; then
    ok "Type=notify, default NotifyAccess, READY from the main process: active"
else
    bad "main-main.service did not become active"
fi

sleep 0.5 # let journald write
cg="/$slice/app.slice/child-all.service"
# 4
if journalctl -u child-all.service --no-pager -o cat | grep -qx "stdout-line-$id"; then
    ok "stdout found with journalctl -u"
else
    bad "stdout not found with journalctl -u"
fi
if journalctl --user-unit child-all.service --no-pager -o cat 2>/dev/null | grep -q "stdout-line-$id"; then
    bad "unexpected: --user-unit finds it too"
else
    ok "--user-unit does not find it (no _SYSTEMD_USER_UNIT: manager is not under user@.service)"
fi
if [ "$(journalctl -u child-all.service "_SYSTEMD_CGROUP=$cg" --no-pager -o cat | grep -c "stdout-line-$id")" = 1 ]; then
    ok "_SYSTEMD_CGROUP=$cg isolates this manager's unit"
else
    bad "_SYSTEMD_CGROUP filter"
fi
# 5 (a short-lived sender such as logger can race journald's /proc lookup, in
# which case the entry has no _SYSTEMD_* fields; so look by the field alone too)
if journalctl COMPOSE_SERVICE=web --no-pager -o cat | grep -qx "native-line-$id"; then
    ok "native field COMPOSE_SERVICE=web filterable"
    if journalctl -u child-all.service COMPOSE_SERVICE=web --no-pager -o cat | grep -qx "native-line-$id"; then
        ok "... and carries _SYSTEMD_UNIT (journalctl -u UNIT COMPOSE_SERVICE=web)"
    else
        echo "note: logger's entry lacks _SYSTEMD_UNIT this time (sender exited before journald read /proc)"
    fi
else
    bad "native field not found"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
