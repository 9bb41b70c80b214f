#!/bin/bash
# How long `composectl check` takes on a 50-stack root, and what asking the compose CLI about
# every stack as well would cost (`docker compose config -q` per stack with the same project
# name, file, project directory and env layers the supervisor uses, N at a time).
#
#   bench/check.sh [--runs N] [--stacks N] [--jobs N] [--bin PATH] [--compose] [--keep DIR]
#
# Uses hyperfine when installed (Debian: apt install hyperfine), else a plain loop. Build the
# binary first: cargo build --release (the default --bin is target/release/composectl).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=20 stacks=50 jobs=$(nproc) bin=target/release/composectl with_compose=0 keep=
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift ;;
        --stacks) stacks=$2; shift ;;
        --jobs) jobs=$2; shift ;;
        --bin) bin=$2; shift ;;
        --compose) with_compose=1 ;;
        --keep) keep=$2; shift ;;
        *) echo "usage: $0 [--runs N] [--stacks N] [--jobs N] [--bin PATH] [--compose] [--keep DIR]" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$bin" ] || { echo "no $bin: run cargo build --release (or pass --bin)" >&2; exit 2; }

root=${keep:-$(mktemp -d)}
[ -n "$keep" ] || trap 'rm -rf "$root"' EXIT
mkdir -p "$root/stacks"
# Five layers of networks; each stack joins its layer's network and requires two stacks of the
# layer below, like a homelab's panel/database/genai/... layers.
: > "$root/networks.toml"
for layer in 0 1 2 3 4; do
    printf '[networks.layer%s]\nsubnet = "10.77.%s.0/24"\n\n' "$layer" "$layer" >> "$root/networks.toml"
done
printf 'TZ=Europe/Paris\nIMAGE_TAG=1.2\n' > "$root/.env"
for i in $(seq 0 $((stacks - 1))); do
    layer=$((i % 5)) dir=$root/stacks/s$i requires=
    [ "$i" -ge 5 ] && requires="requires: [s$((i - 5))]"
    [ "$i" -ge 10 ] && requires="requires: [s$((i - 5)), s$((i - 10))]"
    mkdir -p "$dir"
    printf 'DB_PASSWORD=secret%s\nWEB_PORT=%s\n' "$i" $((20000 + i)) > "$dir/.env"
    printf 'LOG_LEVEL=info\n' > "$dir/app.env"
    cat > "$dir/compose.yaml" <<YAML
x-composectl:
  description: Stack $i of the benchmark root
  $requires
  start_timeout: 10min

x-common: &common
  restart: unless-stopped
  networks: [layer$layer, default]
  environment:
    TZ: \${TZ}
  logging:
    driver: json-file
    options: {max-size: 10m, max-file: "3"}

services:
  db:
    <<: *common
    image: postgres:16-alpine
    container_name: s$i-db
    environment:
      POSTGRES_PASSWORD: \${DB_PASSWORD:?set DB_PASSWORD}
      POSTGRES_DB: app
    volumes:
      - db-data:/var/lib/postgresql/data
      - ./init:/docker-entrypoint-initdb.d:ro
    healthcheck:
      test: [
          "CMD-SHELL",
          # both checks, as upstream files write them
          "pg_isready -U postgres && psql -U postgres -c 'select 1'",
      ]
      interval: 10s
      retries: 5
  app:
    <<: *common
    image: ghcr.io/example/app:\${IMAGE_TAG:-latest}
    env_file:
      - app.env
      - path: app.local.env
        required: false
    depends_on:
      db: {condition: service_healthy}
    ports:
      - "\${WEB_PORT}:8080"
      - "127.0.0.1:$((30000 + i)):9090/udp"
    secrets: [token]
    configs:
      - source: app_conf
        target: /etc/app.conf
  worker:
    <<: *common
    image: ghcr.io/example/worker:\${IMAGE_TAG:-latest}
    command: ["worker", "--concurrency", "4"]
    profiles: [workers]
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 512M}

volumes:
  db-data:
secrets:
  token:
    environment: DB_PASSWORD
configs:
  app_conf:
    content: "level=\${TZ}"
networks:
  layer$layer:
    external: true
YAML
done

"$bin" --root "$root" check >/dev/null || { "$bin" --root "$root" check; exit 1; }
echo "root: $root ($stacks stacks, $(cat "$root"/stacks/*/compose.yaml | wc -l) compose lines)"

compose_all() {
    find "$root/stacks" -mindepth 1 -maxdepth 1 -type d -print0 | xargs -0 -P "$jobs" -I{} sh -c '
        d=$1
        set -- --project-name "$(basename "$d")" --file "$d/compose.yaml" --project-directory "$d"
        for f in "'"$root"'/.env" "$d/.env"; do set -- "$@" --env-file "$f"; done
        docker compose "$@" config -q' _ {}
}
export -f compose_all
export root jobs

commands=("$bin --root $root check")
[ "$with_compose" = 1 ] && commands+=("compose_all")
if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs "$runs" --shell bash -N "${commands[0]}" 2>/dev/null ||
        hyperfine --warmup 2 --runs "$runs" "${commands[0]}"
    [ "$with_compose" = 1 ] && hyperfine --warmup 1 --runs "$(( runs < 5 ? runs : 5 ))" --shell bash "compose_all"
else
    for command in "${commands[@]}"; do
        start=$(date +%s%N)
        for _ in $(seq "$runs"); do eval "$command" >/dev/null; done
        echo "$command: $(( ($(date +%s%N) - start) / runs / 1000000 )) ms per run (mean of $runs)"
    done
fi
