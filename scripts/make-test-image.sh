#!/bin/sh
# Builds the end-to-end tests' image composectl-test/busybox:latest in the engine that `docker`
# talks to, from Debian's busybox-static (/bin/busybox): there is no registry to pull from.
# Used by scripts/provision-e2e.sh for the host's engine and by scripts/guest.sh, which copies
# this file into the guest and runs it there against the guest's own engine. POSIX sh, because
# the guest has no bash guarantees beyond its minbase.
#
# Idempotent: the image carries the recipe's revision as a label, and an image with the current
# revision is left alone. Needs: docker (answering), /bin/busybox, tar, mktemp.
set -eu

TEST_IMAGE="composectl-test/busybox:latest"
# Bump when the recipe below changes, so old images get rebuilt.
TEST_IMAGE_REV="1"

have=$(docker image inspect -f '{{ index .Config.Labels "org.composectl.test-image-rev" }}' \
    "$TEST_IMAGE" 2>/dev/null || true)
[ "$have" = "$TEST_IMAGE_REV" ] && exit 0

echo "make-test-image: building $TEST_IMAGE from busybox-static" >&2
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/root" "$rootfs/tmp" "$rootfs/var/tmp" \
    "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/usr"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
# Scripts with #!/usr/bin/env or /sbin/... shebangs should still work.
ln -s bin "$rootfs/sbin"
ln -s ../bin "$rootfs/usr/bin"
ln -s ../bin "$rootfs/usr/sbin"
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . |
    docker import \
        -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["sh"]' \
        -c "LABEL org.composectl.test-image-rev=$TEST_IMAGE_REV" \
        -m "composectl e2e test image (Debian busybox-static)" \
        - "$TEST_IMAGE" >/dev/null
docker run --rm --pull=never --network=none "$TEST_IMAGE" sh -c 'test -x /bin/sleep && id -un' >/dev/null || {
    echo "make-test-image: $TEST_IMAGE does not run" >&2
    exit 1
}
