#!/usr/bin/env bash
# Builds the distro packages and checks them (CI runs this; Debian or Ubuntu, as root):
#
#   packaging/check.sh            # build with packaging/build.sh, then check dist/*
#   packaging/check.sh --no-build # check the packages already in dist/
#
# Checks: lintian reports no error on the .deb (overrides: packaging/lintian-overrides); dpkg -i
# installs it; composectl --version and man composectl work; the default /etc/composectl passes
# `composectl check`; an upgrade keeps a locally changed conffile; dpkg -r removes it (binary
# gone) and dpkg -P purges it; the .rpm lists the same files as the .deb (directories aside) and
# marks the configuration noreplace, and installs into a scratch root.
# Installs lintian, rpm and man-db with apt-get when missing. Leaves the package uninstalled.
# Exits non-zero when a check fails.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo" || exit 2

build=1
case "${1:-}" in
    --no-build) build=0 ;;
    "") ;;
    *) echo "usage: packaging/check.sh [--no-build]" >&2; exit 2 ;;
esac

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/      /'; }
finish() {
    printf 'packaging: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit
}
die() { echo "check.sh: $*" >&2; fail "$*"; finish; }

[ "$(id -u)" -eq 0 ] || die "must run as root (dpkg -i)"
command -v dpkg >/dev/null || die "needs a Debian-based system (dpkg)"
if dpkg-query -W -f='${Status}' composectl 2>/dev/null | grep -q 'installed\|config-files'; then
    die "composectl is already installed here; remove it first (dpkg -P composectl)"
fi

# Tools ----------------------------------------------------------------------------------------
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v rpm >/dev/null || missing+=(rpm)
command -v man >/dev/null || missing+=(man-db)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}" >&2
    if ! { apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        die "cannot install ${missing[*]}"
    fi
fi

# 1. Build -------------------------------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    start=$SECONDS
    if packaging/build.sh; then
        pass "build.sh built both packages ($((SECONDS - start))s)"
    else
        die "packaging/build.sh failed"
    fi
fi
shopt -s nullglob
debs=(dist/*.deb)
rpms=(dist/*.rpm)
if [ "${#debs[@]}" -ne 1 ] || [ "${#rpms[@]}" -ne 1 ]; then
    die "expected exactly one .deb and one .rpm in dist/, found: ${debs[*]} ${rpms[*]}"
fi
deb=${debs[0]}
rpm=${rpms[0]}

# 2. lintian -----------------------------------------------------------------------------------
# Overrides ship in the package (/usr/share/lintian/overrides/composectl) and are justified in
# packaging/lintian-overrides; --show-overrides prints the ones used. lintian complains when run
# as root but works.
# (--show-overrides makes lintian exit non-zero for overridden errors, hence the second run.)
lintian --show-overrides "$deb" 2>&1 | grep -v 'running with root privileges' | sed 's/^/      lintian: /'
lintian_out=$(lintian --fail-on error "$deb" 2>&1)
lintian_rc=$?
if [ "$lintian_rc" -eq 0 ] && ! grep -q '^E: ' <<<"$lintian_out"; then
    pass "lintian: no errors, $(grep -c '^W: ' <<<"$lintian_out") warnings ($(grep -c '^composectl: ' packaging/lintian-overrides) overrides)"
else
    fail "lintian reports errors (exit $lintian_rc)" "$lintian_out"
fi

# 3. dpkg -i -----------------------------------------------------------------------------------
installed=0
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [ "$installed" -eq 1 ]; then
        dpkg -P composectl >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
# Minimal container images exclude /usr/share/man from dpkg (path-exclude in dpkg.cfg.d);
# re-include our pages so `man composectl` can be tested there too.
dpkg_i() {
    dpkg --path-include='/usr/share/man/man1/composectl*' --path-include='/usr/share/man/man5/*' -i "$1"
}
if out=$(dpkg_i "$deb" 2>&1); then
    installed=1
    if [ "$(dpkg-query -W -f='${Status}' composectl)" = "install ok installed" ]; then
        pass "dpkg -i installs $(basename "$deb")"
    else
        fail "dpkg -i: composectl is not 'install ok installed'" "$out"
    fi
else
    installed=1
    fail "dpkg -i failed" "$out"
fi

# 4. composectl --version ----------------------------------------------------------------------
want_version=$(dpkg-deb -f "$deb" Version)
want_version=${want_version%-*}
if out=$(/usr/bin/composectl --version 2>&1) && [ "$out" = "composectl $want_version" ] \
    && [ "$(command -v composectl)" = /usr/bin/composectl ]; then
    pass "composectl --version: $out"
else
    fail "composectl --version (want 'composectl $want_version' from /usr/bin)" "$out"
fi

# 4b. The supervisor stack units run -----------------------------------------------------------
sup_out=$(/usr/bin/composectl-supervisor run 2>&1); sup_rc=$?
exec_line='ExecStart=/usr/bin/composectl-supervisor --system --root /etc/composectl run %i'
if [ "$sup_rc" -eq 2 ] && grep -q "expected run STACK" <<<"$sup_out" \
    && grep -qxF "$exec_line" <<<"$(/usr/bin/composectl --system --root /etc/composectl render 2>&1)"; then
    pass "composectl-supervisor is installed, refuses a bad command line (exit 2), and rendered units run it"
else
    fail "composectl-supervisor (exit $sup_rc), or render without '$exec_line'" "$sup_out"
fi

# 5. man composectl ----------------------------------------------------------------------------
man_ok=1
man_out=""
pages=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed -n 's|^\./usr/share/man/man\([15]\)/\(.*\)\.[15]\.gz$|\1 \2|p')
while read -r section page; do
    # man 5 x-composectl: the page's title is the name in capitals.
    title=$page
    [ "$section" = 5 ] && title=${page^^}
    if ! out=$(MANWIDTH=100 man -P cat "$section" "$page" 2>&1) || ! grep -qF "$title" <<<"$out"; then
        man_ok=0
        man_out+="man $section $page: $out"$'\n'
    fi
done <<<"$pages"
# Captured first: with pipefail, `man | grep -q` fails when grep quits early and man gets SIGPIPE.
main_page=$(MANWIDTH=100 man -P cat composectl 2>&1)
format_page=$(MANWIDTH=100 man -P cat 5 x-composectl 2>&1)
if [ "$man_ok" -eq 1 ] && grep -q '^EXAMPLES' <<<"$main_page" \
    && grep -q 'requires.STACK.restart' <<<"$format_page"; then
    pass "man composectl, every composectl-*.1 page and the format pages (man 5 x-composectl, networks.toml, composectl.toml) render"
else
    fail "man pages" "${man_out:-man composectl has no EXAMPLES or man 5 x-composectl no requires.STACK.restart}"
fi

# 6. The default /etc/composectl layout --------------------------------------------------------
conf=/etc/composectl/networks.toml
if ! dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null | grep -qx "$conf"; then
    fail "$conf is not a conffile of the .deb"
elif [ ! -d /etc/composectl/stacks ]; then
    fail "/etc/composectl/stacks was not created"
elif ! out=$(/usr/bin/composectl --system --root /etc/composectl check 2>&1); then
    fail "composectl check rejects the default /etc/composectl" "$out"
else
    pass "default /etc/composectl: $conf is a conffile, stacks/ exists, check: $out"
fi

# 7. An upgrade keeps a locally changed conffile -----------------------------------------------
# The upgrade is the same package with the Debian revision bumped (dpkg-deb repack), so the
# shipped networks.toml is unchanged and dpkg must keep the local one without asking.
marker="# local change $$"
echo "$marker" >>"$conf"
work=$(mktemp -d)
next_deb="$work/next.deb"
next_version="$(dpkg-deb -f "$deb" Version).1"
if dpkg-deb -R "$deb" "$work/tree" \
    && sed -i "s/^Version: .*/Version: $next_version/" "$work/tree/DEBIAN/control" \
    && dpkg-deb --root-owner-group -b "$work/tree" "$next_deb" >/dev/null \
    && out=$(dpkg_i "$next_deb" 2>&1) \
    && [ "$(dpkg-query -W -f='${Version}' composectl)" = "$next_version" ] \
    && grep -qx "$marker" "$conf" && [ -x /usr/bin/composectl ]; then
    pass "upgrade to $next_version keeps the locally changed $conf"
else
    fail "upgrade to $next_version failed or overwrote $conf" "${out:-}"
fi
rm -rf "$work"

# 8. dpkg -r, dpkg -P --------------------------------------------------------------------------
if out=$(dpkg -r composectl 2>&1) && [ ! -e /usr/bin/composectl ] \
    && [ ! -e /usr/lib/systemd/system/compose@.service ] \
    && [ "$(dpkg-query -W -f='${Status}' composectl 2>/dev/null)" = "deinstall ok config-files" ]; then
    if out=$(dpkg -P composectl 2>&1) && [ ! -e /etc/composectl ]; then
        installed=0
        pass "dpkg -r removes it (binary and units gone), dpkg -P purges /etc/composectl"
    else
        fail "dpkg -P composectl left /etc/composectl or failed" "$out"
    fi
else
    fail "dpkg -r composectl did not remove it cleanly" "$out$(ls -l /usr/bin/composectl 2>&1)"
fi

# 9. The rpm lists the same files as the deb (directories aside) -------------------------------
deb_files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $NF}' | sed 's|^\./|/|' | sort)
rpm_files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null \
    | awk '$1 !~ /^d/ {print $2}' | sort)
if [ -n "$deb_files" ] && [ "$deb_files" = "$rpm_files" ] \
    && [ "$(rpm -qlp "$rpm" 2>/dev/null | sort)" = "$rpm_files" ]; then
    pass "rpm -qlp lists the same $(wc -l <<<"$rpm_files") files as dpkg-deb -c"
else
    fail "the .rpm and the .deb list different files (< deb only, > rpm only)" \
        "$(diff <(printf '%s\n' "$deb_files") <(printf '%s\n' "$rpm_files") | grep '^[<>]')"
fi

# 10. rpm: configuration noreplace, daemon-reload scriptlets ------------------------------------
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null | awk -v f="$conf" '$2 == f {print $1}')
scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
if [[ "$flags" == *c*n* ]] && grep -q 'postinstall scriptlet' <<<"$scripts" \
    && grep -q 'postuninstall scriptlet' <<<"$scripts" && grep -q 'daemon-reload' <<<"$scripts"; then
    pass "rpm: $conf is %config(noreplace); %post and %postun reload systemd"
else
    fail "rpm: $conf flags '$flags' (want c and n), or scriptlets missing" "$scripts"
fi

# 11. The rpm installs ---------------------------------------------------------------------------
# Into a scratch root with its own database (this host is not rpm-based: no dependencies, no
# scriptlets), then rpm -V checks every installed file against the package.
scratch=$(mktemp -d)
if out=$(rpm --root "$scratch" --dbpath "$scratch/var/lib/rpm" --initdb 2>&1 \
        && rpm --root "$scratch" --dbpath "$scratch/var/lib/rpm" -i --nodeps --noscripts "$rpm" 2>&1 \
        && rpm --root "$scratch" --dbpath "$scratch/var/lib/rpm" -V --nodeps composectl 2>&1) \
    && [ -x "$scratch/usr/bin/composectl" ] && "$scratch/usr/bin/composectl" --version >/dev/null; then
    pass "rpm -i installs the .rpm (scratch root), rpm -V verifies it"
else
    fail "rpm -i / rpm -V in a scratch root" "$(grep -v 'use Alien\|know what you are doing' <<<"$out")"
fi
rm -rf "$scratch"

finish
