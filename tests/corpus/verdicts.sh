#!/bin/bash
# Re-derives the "compose" column of expected.tsv: runs `docker compose config -q` on every case
# directory alone (a copy, so compose's own .env lookup sees only the case's files), with an
# empty environment, the way `mod corpus` in src/model.rs runs composectl's checks.
#
#   tests/corpus/verdicts.sh           report rows whose compose verdict changed (exit 1 if any)
#   tests/corpus/verdicts.sh --write   rewrite expected.tsv (new cases expect composectl to agree)
#   JOBS=4 tests/corpus/verdicts.sh    parallel runs (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
expected=$here/expected.tsv
compose=${COMPOSE:-docker compose}
export compose

verdict() {
    local case_dir=$1 work out status
    work=$(mktemp -d)
    cp -a "$case_dir/." "$work/"
    status=accept
    # shellcheck disable=SC2086 # $compose is a command and its arguments
    out=$(cd "$work" && env -i PATH="$PATH" HOME="$work" $compose -p corpus -f compose.yaml config -q 2>&1) || status=refuse
    # The first error line, without compose's warnings or this run's temporary path.
    out=$(printf '%s\n' "$out" | grep -v 'level=warning' | head -n 1 | sed "s|$work/||g; s|$work|.|g" | tr '\t' ' ')
    [ "$status" = accept ] && out=
    printf '%s\t%s\t%s\n' "$(basename "$case_dir")" "$status" "$out"
}
export -f verdict

fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
find "$here/cases" -mindepth 1 -maxdepth 1 -type d -print0 | sort -z |
    xargs -0 -n 1 -P "${JOBS:-2}" bash -c 'verdict "$0"' | sort > "$fresh"

# Merge: keep the composectl column and deliberate-difference notes, take compose's verdict.
merged=$(awk -F'\t' -v OFS='\t' '
    FILENAME == ARGV[1] { if ($0 !~ /^#/) { ours[$1] = $3; note[$1] = $4 }; next }
    FNR == 1 { print "# case", "compose", "composectl", "compose says, or why composectl differs (deliberate: ...)" }
    {
        o = ($1 in ours) ? ours[$1] : $2
        m = (note[$1] ~ /^deliberate:/) ? note[$1] : $3
        print $1, $2, o, m
    }' "$expected" "$fresh")

if [ "${1:-}" = --write ]; then
    printf '%s\n' "$merged" > "$expected"
    echo "wrote $expected ($(grep -vc '^#' "$expected") cases)"
    exit 0
fi
changed=$(diff <(grep -v '^#' "$expected" | cut -f1,2) <(printf '%s\n' "$merged" | grep -v '^#' | cut -f1,2) || true)
if [ -n "$changed" ]; then
    printf 'compose verdicts differ from expected.tsv (< expected, > compose now):\n%s\n' "$changed"
    exit 1
fi
echo "compose agrees with expected.tsv on $(grep -vc '^#' "$expected") cases"
