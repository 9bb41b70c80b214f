#!/usr/bin/env bash
# Builds the end-to-end tests' database image composectl-test/postgres:15 in the engine that
# `docker` talks to: Debian bookworm's own PostgreSQL 15 (debootstrap minbase + postgresql-15
# from this machine's mirror; there is no registry to pull from), with an entrypoint that
# initialises an empty data directory, and `pg_isready` for healthchecks. Stops on SIGINT
# (PostgreSQL's fast shutdown: it ends the sessions, writes a checkpoint, and logs "database
# system is shut down"), as the official image does.
#
# Cached: the rootfs tarball is kept in $COMPOSECTL_IMAGE_CACHE (default
# /var/cache/composectl-e2e), outside the checkout, and reused while the recipe is unchanged; an
# image in the engine with the recipe's revision is left alone. Needs root, debootstrap (installed
# when missing), docker answering. The mirror is the first URIs: of this machine's own
# /etc/apt/sources.list.d/debian.sources.
#
#   scripts/make-postgres-image.sh             build if needed and import into the engine
#   scripts/make-postgres-image.sh --tarball   build the cached rootfs tarball if needed and print
#                                              its path (scripts/guest.sh imports it in the guest)
set -euo pipefail
mode=${1:-import}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
IMAGE=composectl-test/postgres:15
CACHE=${COMPOSECTL_IMAGE_CACHE:-/var/cache/composectl-e2e}

log() { printf 'make-postgres-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"

# The entrypoint: initdb on first start (trust on the container's networks: test data only),
# then PostgreSQL as PID 1 under its own user, so the engine's stop signal reaches it directly.
entrypoint() {
    cat <<'EOF'
#!/bin/sh
set -eu
bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
mkdir -p "$data" /run/postgresql
chown postgres:postgres "$data" /run/postgresql
chmod 0700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/initdb" -D "$data" -U postgres --auth=trust --no-instructions >/dev/null
    printf "listen_addresses = '*'\n" >>"$data/postgresql.conf"
    printf 'host all all 0.0.0.0/0 trust\n' >>"$data/pg_hba.conf"
    echo "initialised $data"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data"
EOF
}

recipe() {
    { declare -f build_rootfs; entrypoint; } | sha256sum | cut -c1-16
}
REV=$(recipe)

if [ "$mode" != --tarball ]; then
    have=$(docker image inspect -f '{{ index .Config.Labels "org.composectl.test-image-rev" }}' \
        "$IMAGE" 2>/dev/null || true)
    [ "$have" = "$REV" ] && exit 0
fi

build_rootfs() { # DIR
    local dir=$1 mirror
    mirror=$("$here/trixie-source.sh" --mirror)
    debootstrap --variant=minbase --include=postgresql-15 bookworm "$dir" "$mirror"
    entrypoint >"$dir/usr/local/bin/composectl-postgres"
    chmod 0755 "$dir/usr/local/bin/composectl-postgres"
    # The cluster Debian's package created in the chroot: the image's entrypoint makes its own.
    rm -rf "$dir/var/lib/postgresql/15" "$dir/etc/postgresql/15"
    chroot "$dir" apt-get clean
    rm -rf "$dir/var/lib/apt/lists"/*
}

tarball=$CACHE/postgres-15-$REV.tar
if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
        log "installing debootstrap on the host"
        apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 debootstrap >/dev/null
    }
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap bookworm + postgresql-15 (log: $CACHE/postgres-debootstrap.log)"
    t0=$SECONDS
    build_rootfs "$rootfs" >"$CACHE/postgres-debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/postgres-debootstrap.log" >&2; die "debootstrap failed"; }
    rm -f "$CACHE"/postgres-15-*.tar
    tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    log "rootfs built in $((SECONDS - t0)) s: $tarball"
fi
if [ "$mode" = --tarball ]; then
    echo "$tarball"
    exit 0
fi

log "importing $IMAGE"
docker import \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'STOPSIGNAL SIGINT' \
    -c 'CMD ["/usr/local/bin/composectl-postgres"]' \
    -c "LABEL org.composectl.test-image-rev=$REV" \
    -m "composectl e2e database image (Debian bookworm's PostgreSQL 15)" \
    "$tarball" "$IMAGE" >/dev/null
docker run --rm --pull=never --network=none --entrypoint /usr/lib/postgresql/15/bin/postgres \
    "$IMAGE" --version >&2
