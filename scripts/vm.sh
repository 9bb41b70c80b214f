#!/usr/bin/env bash
# The cgroup test VM: a Debian 12 virtual machine under qemu, booting Debian's own kernel, with
# systemd as PID 1, cgroup v2 with every controller (cpuset cpu io memory hugetlb pids) and its
# own Docker engine (its own docker.service, on the systemd cgroup driver). For what the nspawn
# guest of scripts/guest.sh cannot show on these hosts: their kernel binds memory/cpu/io/pids to
# cgroup v1, so the guest's cgroup2 tree has no controllers and a slice's MemoryMax= is not
# enforced there; in the VM a stack's slice with MemoryMax= really ends in an OOM kill inside it
# (see shared/TESTING.md).
#
#   scripts/vm.sh build          build the disk image if it is missing or its recipe changed: the
#                                rootfs of scripts/guest.sh's recipe (guest.sh builds it, in
#                                $COMPOSECTL_VM_DIR/base, and keeps it there as a cache), plus
#                                Debian's kernel, initramfs and openssh-server; an ext4 image of it
#   scripts/vm.sh start          build if needed, boot the VM in the background, wait until ssh
#                                answers, its boot has settled and its engine answers, build the
#                                test image composectl-test/busybox:latest in the VM's engine
#   scripts/vm.sh stop           clean poweroff (waits for qemu to exit; kills it after the timeout)
#   scripts/vm.sh reboot         stop, then start (the disk keeps its state)
#   scripts/vm.sh status         key=value lines: state (running/stopped), qemu, ssh, dir, disk,
#                                key, console; exit 3 when stopped
#   scripts/vm.sh exec CMD...    run CMD in the VM as root, over ssh: the words are passed as they
#                                are (quoted for the remote shell), stdin passes through, and the
#                                exit code is CMD's (255: ssh itself failed)
#   scripts/vm.sh shell          interactive shell in the VM
#   scripts/vm.sh copy SRC DST   copy a host file into the VM (mode kept; DST may be a directory),
#                                or a host directory's contents into directory DST (created)
#   scripts/vm.sh install DEB    copy a .deb into the VM and dpkg -i it there (reinstalls over an
#                                older or the same version)
#
# Idempotent: start on a running VM and stop on a stopped one do nothing. Run as root; installs
# qemu-system-x86, openssh-client and e2fsprogs on the host when missing (and, for the rootfs,
# what scripts/guest.sh build installs).
# Measured on these hosts (2 cores): /dev/kvm exists but is nested and a KVM guest's kernel hangs
# right after decompression, so qemu emulates (TCG, `-accel tcg -cpu max`): a boot until docker
# answers takes about a minute, and everything inside runs several times slower than on the host.
# Networking: qemu's user-mode stack; the only host port is ssh on 127.0.0.1:$COMPOSECTL_VM_PORT,
# with the key $COMPOSECTL_VM_DIR/id_ed25519 (made by build, baked into the disk image).
# Environment: COMPOSECTL_VM_DIR (disk image, key, logs, and the base rootfs; default
# /var/lib/composectl-e2e/vm, outside the checkout so a fresh checkout reuses the image),
# COMPOSECTL_VM_PORT (host port for ssh, default 2222), COMPOSECTL_VM_MEMORY (MiB, default 2048),
# COMPOSECTL_VM_CPUS (default 2), COMPOSECTL_VM_DISK (disk size, default 8G; a change rebuilds the
# image), COMPOSECTL_VM_BOOT_TIMEOUT (seconds a boot may take until docker answers, default 600),
# COMPOSECTL_VM_STOP_TIMEOUT (seconds a clean poweroff may take, default 300). The apt mirror is
# the first URIs: of this machine's own /etc/apt/sources.list.d/debian.sources (as guest.sh's).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
VM_DIR=${COMPOSECTL_VM_DIR:-/var/lib/composectl-e2e/vm}
PORT=${COMPOSECTL_VM_PORT:-2222}
MEMORY=${COMPOSECTL_VM_MEMORY:-2048}
CPUS=${COMPOSECTL_VM_CPUS:-2}
DISK_SIZE=${COMPOSECTL_VM_DISK:-8G}
BOOT_TIMEOUT=${COMPOSECTL_VM_BOOT_TIMEOUT:-600}
STOP_TIMEOUT=${COMPOSECTL_VM_STOP_TIMEOUT:-300}
BASE=$VM_DIR/base # scripts/guest.sh's directory for the VM's base rootfs (COMPOSECTL_GUEST_DIR)
BASE_MARK=$BASE/rootfs/.composectl-guest-recipe # guest.sh's recipe mark in its rootfs
HOSTNAME_VM=composectl-vm
LOGS=$VM_DIR/logs
PIDFILE=$VM_DIR/qemu.pid
KEY=$VM_DIR/id_ed25519
DISK=$VM_DIR/disk.img
KERNEL=$VM_DIR/vmlinuz
INITRD=$VM_DIR/initrd.img
RECIPE_FILE=$VM_DIR/disk.recipe
# What the VM adds to the guest's rootfs: a kernel to boot (and the initramfs that finds its
# virtio disk), sshd to get in, fsck for the root filesystem.
VM_PKGS=(linux-image-amd64 initramfs-tools openssh-server e2fsprogs)
TEST_IMAGE_SCRIPT=/usr/local/sbin/composectl-make-test-image
IMAGE_TIMEOUT=300 # seconds the test image may take to build in the VM

log() { printf 'vm: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"

host_packages() {
    command -v qemu-system-x86_64 >/dev/null && command -v ssh >/dev/null &&
        command -v ssh-keygen >/dev/null && command -v mkfs.ext4 >/dev/null && return 0
    log "installing qemu-system-x86 openssh-client e2fsprogs on the host"
    apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    # --no-install-recommends: no GUI, OVMF or block plugins; seabios and ipxe are dependencies.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 qemu-system-x86 openssh-client e2fsprogs >/dev/null
}

# ---------------------------------------------------------------- build ----

# Everything the disk image is made from; a change rebuilds it. The base rootfs's own recipe is
# guest.sh's (its mark), and `declare -f` prints vm_rootfs without its comments.
recipe() {
    {
        cat "$BASE_MARK"
        declare -f vm_rootfs
        printf '%s\n' "${VM_PKGS[@]}" "$DISK_SIZE" "$HOSTNAME_VM"
        cat "$KEY.pub"
    } | sha256sum | cut -c1-16
}

vm_rootfs() { # DIR: a copy of the base rootfs, made bootable in a VM
    local tmp=$1
    echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$tmp/etc/fstab"
    # Before the kernel's initramfs is made: its fsck hook would probe the root device for its
    # type, which does not exist here, and leave fsck out (no check after a killed VM).
    mkdir -p "$tmp/etc/initramfs-tools/conf.d"
    echo 'FSTYPE=ext4' >"$tmp/etc/initramfs-tools/conf.d/composectl-vm-fstype"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf" # for apt only; replaced below
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    log "installing ${VM_PKGS[*]} in the VM's rootfs (log: $LOGS/apt-vm.log)"
    # In a mount namespace of its own: the binds the kernel's postinst (initramfs) wants vanish
    # with it, even if this script is killed, and never outlive it under the rootfs.
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    unshare --mount --propagation private sh -ec '
        for d in proc sys dev; do mount --bind "/$d" "$0/$d"; done
        chroot "$0" apt-get update -q
        DEBIAN_FRONTEND=noninteractive chroot "$0" apt-get install -y -q --no-install-recommends "$@"
        chroot "$0" apt-get clean
    ' "$tmp" "${VM_PKGS[@]}" >"$LOGS/apt-vm.log" 2>&1 ||
        { tail -n 20 "$LOGS/apt-vm.log" >&2; die "apt in the VM's rootfs failed"; }
    rm -f "$tmp/usr/sbin/policy-rc.d"

    # root logs in with the key made by build.
    install -d -m 0700 "$tmp/root/.ssh"
    install -m 0600 "$KEY.pub" "$tmp/root/.ssh/authorized_keys"
    # qemu's user network: DHCP, and its DNS forwarder.
    printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' >"$tmp/etc/systemd/network/10-qemu-user.network"
    mkdir -p "$tmp/etc/systemd/system/multi-user.target.wants"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$tmp/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    echo 'nameserver 10.0.2.3' >"$tmp/etc/resolv.conf"
    # The serial console is a log file: no getty on it.
    ln -sf /dev/null "$tmp/etc/systemd/system/serial-getty@ttyS0.service"
    # Docker 26 takes the systemd cgroup driver on cgroup v2 by itself; said here so it cannot
    # change under the tests (a stack's cgroup-parent slice is a systemd unit).
    mkdir -p "$tmp/etc/docker"
    printf '{\n  "exec-opts": ["native.cgroupdriver=systemd"]\n}\n' >"$tmp/etc/docker/daemon.json"
}

build() {
    host_packages
    mkdir -p "$VM_DIR" "$LOGS"
    # The base rootfs: guest.sh's recipe, built (or found current) by guest.sh in a directory of
    # the VM's own, so the nspawn guest's rootfs is never touched and may run meanwhile.
    log "base rootfs: scripts/guest.sh build in $BASE"
    COMPOSECTL_GUEST_DIR=$BASE COMPOSECTL_GUEST_MACHINE=$HOSTNAME_VM "$here/guest.sh" build
    [ -s "$BASE_MARK" ] || die "scripts/guest.sh build left no recipe mark at $BASE_MARK"
    [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "root@composectl-vm-host" -f "$KEY"
    local want
    want=$(recipe)
    if [ -f "$DISK" ] && [ "$(cat "$RECIPE_FILE" 2>/dev/null)" = "$want" ]; then
        log "disk image ready: $DISK"
        return 0
    fi
    if qemu_pid >/dev/null; then die "the VM runs an outdated disk image: stop it first"; fi
    local t0=$SECONDS tmp=$VM_DIR/rootfs.partial
    # --one-file-system: never follow into a mount, should one be left there.
    rm -rf --one-file-system "$tmp"
    log "copying the base rootfs"
    cp -a --reflink=auto "$BASE/rootfs" "$tmp"
    vm_rootfs "$tmp"
    local kernels version
    kernels=("$tmp"/boot/vmlinuz-*)
    [ -f "${kernels[-1]}" ] || die "no kernel in $tmp/boot"
    version=${kernels[-1]#"$tmp"/boot/vmlinuz-}
    [ -f "$tmp/boot/initrd.img-$version" ] || die "no initramfs for kernel $version"
    cp "$tmp/boot/vmlinuz-$version" "$KERNEL.partial"
    cp "$tmp/boot/initrd.img-$version" "$INITRD.partial"
    log "ext4 disk image of $DISK_SIZE from the rootfs (kernel $version)"
    rm -f "$DISK.partial" "$RECIPE_FILE"
    mkfs.ext4 -q -F -L "$HOSTNAME_VM" -d "$tmp" "$DISK.partial" "$DISK_SIZE" >/dev/null
    mv "$KERNEL.partial" "$KERNEL"
    mv "$INITRD.partial" "$INITRD"
    mv "$DISK.partial" "$DISK"
    echo "$want" >"$RECIPE_FILE"
    rm -rf --one-file-system "$tmp"
    log "disk image built in $((SECONDS - t0)) s: $DISK"
}

# ---------------------------------------------------------------- run ----

alive() { # PID: runs, and is not a zombie (qemu daemonizes: its reaper is whoever PID 1 is)
    grep -q '^State:[[:space:]]*[^Z[:space:]]' "/proc/$1/status" 2>/dev/null
}

qemu_pid() { # prints the PID of our qemu if it runs
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" &&
        case $(cat "/proc/$pid/comm" 2>/dev/null) in qemu-system-*) true ;; *) false ;; esac &&
        echo "$pid"
}

SSH_OPTS=(-F /dev/null -i "$KEY" -p "$PORT" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=8
    # One connection shared by the calls that follow within a minute: under emulation each
    # handshake's crypto takes seconds, and the tests make hundreds of calls.
    -o ControlMaster=auto -o "ControlPath=$VM_DIR/ssh-%C" -o ControlPersist=60)

ssh_() { # one shell command line, run by root's shell in the VM; stdin passes through
    ssh "${SSH_OPTS[@]}" -- root@127.0.0.1 "$@"
}

tssh() { # SECONDS COMMAND-LINE: as ssh_, without stdin, killed after SECONDS
    local t=$1
    shift
    timeout -k 5 "$t" ssh -n "${SSH_OPTS[@]}" -- root@127.0.0.1 "$@"
}

quoted() { printf '%q ' "$@"; } # words as one command line for the remote shell (bash)

running() { qemu_pid >/dev/null || die "the VM does not run (scripts/vm.sh start)"; }

boot_failed() { # MESSAGE: the console's tail (and qemu's own errors), then die
    log "console ($LOGS/console.log), last lines:"
    tail -n 30 "$LOGS/console.log" >&2 2>/dev/null || true
    [ ! -s "$LOGS/qemu.log" ] || { log "qemu:"; cat "$LOGS/qemu.log" >&2; }
    if qemu_pid >/dev/null; then
        die "$1 (the VM still runs, for a look: scripts/vm.sh exec / stop)"
    fi
    die "$1"
}

boot() { # boots the disk image, waits until ssh, the boot's jobs and docker answer
    local t0=$SECONDS console deadline left state pid
    console=$LOGS/console-$(date +%Y%m%dT%H%M%S).log
    ln -sfn "$(basename "$console")" "$LOGS/console.log"
    rm -f "$PIDFILE"
    # -accel tcg -cpu max: the KVM here is nested and its guests hang (see the header).
    # virtio-rng: entropy for the guest's early boot (sshd, dockerd) without waiting on it.
    # -nodefaults: no floppy, CD-ROM, VGA or monitor for the kernel to probe (the serial
    #   console and the NIC are given below).
    # systemd.unified_cgroup_hierarchy=1: cgroup v2 only (systemd 252's default, said anyway).
    # 9>&-: qemu must not hold the lock for as long as it runs.
    qemu-system-x86_64 -name "$HOSTNAME_VM" -nodefaults -accel tcg -cpu max -smp "$CPUS" -m "$MEMORY" \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1" \
        -drive "file=$DISK,format=raw,if=virtio" \
        -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$PORT-:22" \
        -device virtio-rng-pci \
        -display none -serial "file:$console" -pidfile "$PIDFILE" -daemonize \
        </dev/null >"$LOGS/qemu.log" 2>&1 9>&- ||
        boot_failed "qemu did not start (is 127.0.0.1:$PORT taken? COMPOSECTL_VM_PORT)"
    pid=$(qemu_pid) || boot_failed "qemu started but left no running pid in $PIDFILE"
    deadline=$((SECONDS + BOOT_TIMEOUT))
    log "qemu $pid booting (console: $console)"

    until tssh 30 true >/dev/null 2>&1; do
        alive "$pid" || boot_failed "qemu exited during the boot"
        [ "$SECONDS" -lt "$deadline" ] ||
            boot_failed "ssh did not answer on 127.0.0.1:$PORT within $BOOT_TIMEOUT s"
        sleep 2
    done
    log "ssh answers after $((SECONDS - t0)) s"

    # Until the manager has finished its boot jobs or given up on them.
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || left=1
    state=$(tssh "$left" systemctl is-system-running --wait 2>/dev/null) || true
    case $state in
    running) ;;
    degraded) log "WARNING: system degraded; failed: $(tssh 30 systemctl --failed --no-legend --plain | tr '\n' ' ')" ;;
    *) boot_failed "the boot did not settle within $BOOT_TIMEOUT s (state: ${state:-no answer})" ;;
    esac
    log "boot settled after $((SECONDS - t0)) s: $state"

    until tssh 30 docker info >/dev/null 2>&1; do
        if tssh 30 systemctl is-failed --quiet docker.service; then
            tssh 30 journalctl -b -u docker.service -n 20 --no-pager >&2 || true
            boot_failed "docker.service failed in the VM"
        fi
        [ "$SECONDS" -lt "$deadline" ] || boot_failed "docker did not answer within $BOOT_TIMEOUT s"
        sleep 1
    done
    log "booted in $((SECONDS - t0)) s; engine: $(tssh 30 docker info -f \
        "'{{.ServerVersion}}, cgroup driver {{.CgroupDriver}}, cgroup v{{.CgroupVersion}}'")"
}

start() {
    if qemu_pid >/dev/null; then log "already running (qemu $(qemu_pid))"; return 0; fi
    build
    boot
    # The recipe is copied in on every start, so a changed recipe reaches a built disk; the
    # script itself does nothing when the image is current. Built in the VM from its own
    # busybox-static: no host engine or registry is needed.
    copy "$here/make-test-image.sh" "$TEST_IMAGE_SCRIPT"
    tssh "$IMAGE_TIMEOUT" "chmod 0755 $TEST_IMAGE_SCRIPT && $TEST_IMAGE_SCRIPT" ||
        die "building the test image in the VM failed (or took over $IMAGE_TIMEOUT s)"
}

stop() {
    local pid t0=$SECONDS
    if ! pid=$(qemu_pid); then log "not running"; rm -f "$PIDFILE"; return 0; fi
    # --no-block: the answer comes before sshd goes down, so a failure here means no poweroff.
    if tssh 30 systemctl --no-block poweroff >/dev/null 2>&1; then
        for _ in $(seq 1 $((STOP_TIMEOUT * 5))); do alive "$pid" || break; sleep 0.2; done
        if alive "$pid"; then
            log "no clean poweroff within $STOP_TIMEOUT s; console, last lines:"
            tail -n 30 "$LOGS/console.log" >&2 || true
        fi
    else
        log "could not ask the VM for a poweroff over ssh; killing qemu"
    fi
    if alive "$pid"; then
        log "SIGTERM to qemu $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
        ! alive "$pid" || { log "SIGKILL to qemu $pid"; kill -KILL "$pid" 2>/dev/null || true; sleep 1; }
    fi
    rm -f "$PIDFILE"
    log "stopped after $((SECONDS - t0)) s"
}

status() {
    local pid
    if pid=$(qemu_pid); then
        printf 'state=running\nqemu=%s\n' "$pid"
    else
        echo "state=stopped"
    fi
    printf 'ssh=127.0.0.1:%s\ndir=%s\ndisk=%s\nkey=%s\nconsole=%s\n' \
        "$PORT" "$VM_DIR" "$DISK" "$KEY" "$LOGS/console.log"
    [ -n "${pid:-}" ] || exit 3
}

vexec() {
    [ $# -gt 0 ] || die "usage: $0 exec CMD..."
    running
    exec ssh "${SSH_OPTS[@]}" -- root@127.0.0.1 "$(quoted "$@")"
}

shell() {
    running
    exec ssh -t "${SSH_OPTS[@]}" -- root@127.0.0.1
}

# shellcheck disable=SC2016 # the remote shell's $0 $1 $2
copy() { # SRC DST
    local src=${1:-} dst=${2:-} name mode
    if [ -z "$src" ] || [ -z "$dst" ]; then die "usage: $0 copy SRC DST"; fi
    running
    if [ -d "$src" ]; then
        tar -C "$src" -c . | ssh_ "$(quoted sh -c 'mkdir -p "$0" && tar -C "$0" -x' "$dst")"
    elif [ -f "$src" ]; then
        name=$(basename "$src")
        mode=$(stat -c %a "$src")
        ssh_ "$(quoted sh -c 'd=$0; [ ! -d "$d" ] || d=$d/$1; cat >"$d" && chmod "$2" "$d"' \
            "$dst" "$name" "$mode")" <"$src"
    else
        die "no such file or directory: $src"
    fi
}

install_deb() {
    [ -f "${1:-}" ] || die "usage: $0 install PATH.deb"
    running
    # One package at a time in there: earlier copies would only pile up.
    tssh 60 'rm -rf /root/debs && mkdir -p /root/debs'
    copy "$1" /root/debs/
    # --force-confnew: tests rewrite /etc/composectl/networks.toml, and dpkg would otherwise ask
    # what to do with it when the package's version of it changes.
    ssh_ "$(quoted dpkg -i --force-confnew "/root/debs/$(basename "$1")")" </dev/null
}

# Lifecycle commands take the VM's lock, so two of them (e.g. two test runs) never boot, stop or
# rebuild the same VM at once. Bounded: a build and a boot fit in it many times over.
locked() {
    mkdir -p "$VM_DIR"
    exec 9>"$VM_DIR/lock"
    flock -w 3600 9 || die "another scripts/vm.sh held $VM_DIR/lock for an hour"
    "$@"
}

case "${1:-}" in
build) locked build ;;
start) locked start ;;
stop) locked stop ;;
reboot) locked stop && locked start ;;
status) status ;;
exec) shift; vexec "$@" ;;
shell) shell ;;
copy) copy "${2:-}" "${3:-}" ;;
install) locked install_deb "${2:-}" ;;
*) echo "usage: $0 build|start|stop|reboot|status|exec CMD...|shell|copy SRC DST|install DEB" >&2; exit 2 ;;
esac
