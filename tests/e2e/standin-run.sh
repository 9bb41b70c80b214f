#!/bin/sh
# Stand-in for `composectl run` until the supervisor exists: the units' ExecStart runs
# `$COMPOSECTL_EXEC --user --root ROOT run STACK` (or `... networks`). It logs its start, fails
# when the stack holds a FAIL file, waits DELAY seconds (a slow healthcheck) and reports READY=1.
root=$3
command=$4
stack=$5
[ "$command" = networks ] && exit 0
dir="$root/stacks/$stack"
echo "$stack begin $(date +%s.%N)" >>"$root/starts.log"
if [ -e "$dir/FAIL" ]; then
    echo "stand-in: $stack cannot start" >&2
    exit 1
fi
[ -e "$dir/DELAY" ] && sleep "$(cat "$dir/DELAY")"
echo "$stack ready $(date +%s.%N)" >>"$root/starts.log"
echo "stand-in: $stack ready"
trap 'exit 0' TERM
systemd-notify --ready --status="stand-in ready"
while :; do sleep 1; done
