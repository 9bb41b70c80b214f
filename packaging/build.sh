#!/usr/bin/env bash
# Builds the .deb and the .rpm of composectl from a clean checkout into dist/.
#
#   packaging/build.sh
#
# Needs: a Rust toolchain (cargo), git (optional, for the list of example files), gzip.
# Installs cargo-deb and cargo-generate-rpm with `cargo install --locked` when they are missing.
# Everything the packages carry besides the binary is generated here, into target/assets/:
#   man/*.[15].gz, completions/{bash,zsh,fish}/ from the clap definition and the key reference
#                                             (examples/gen_assets.rs)
#   units/{system,user}/                       from `composectl render` (the shared units only)
#   examples/                                  the example root (networks.toml, stacks/)
# The package metadata in Cargo.toml ([package.metadata.deb], [package.metadata.generate-rpm])
# refers to these paths.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# cargo-deb and cargo-generate-rpm -------------------------------------------------------------
need_tool() { # SUBCOMMAND CRATE
    if ! cargo "$1" --version >/dev/null 2>&1; then
        log "installing $2"
        cargo install --locked "$2"
    fi
}
need_tool deb cargo-deb
need_tool generate-rpm cargo-generate-rpm

# The binaries --------------------------------------------------------------------------------
# composectl for speed, the supervisor (what each stack's unit runs, installed beside composectl)
# for size: see the profiles in Cargo.toml. The two share no artifact (other opt-levels) and each
# ends in a long single-threaded LTO link, so they build side by side, the supervisor in its own
# target directory (cargo locks one per build): one links while the other compiles.
supervisor_target="$repo/target/supervisor-build"
supervisor_log="$repo/target/supervisor-build.log"
mkdir -p "$supervisor_target"
log "cargo build --profile supervisor --locked --bin composectl-supervisor (alongside, log: $supervisor_log)"
CARGO_TARGET_DIR=$supervisor_target cargo build --profile supervisor --locked \
    --bin composectl-supervisor >"$supervisor_log" 2>&1 &
supervisor_build=$!
log "cargo build --release --locked --bin composectl"
if ! cargo build --release --locked --bin composectl; then
    kill "$supervisor_build" 2>/dev/null || true
    die "the release build failed"
fi
bin="$repo/target/release/composectl"
[ -x "$bin" ] || die "no binary at $bin"
wait "$supervisor_build" || { cat "$supervisor_log" >&2; die "the supervisor build failed"; }
# Where the package metadata (Cargo.toml) takes it from.
mkdir -p "$repo/target/supervisor"
install -m 0755 "$supervisor_target/supervisor/composectl-supervisor" "$repo/target/supervisor/"
supervisor="$repo/target/supervisor/composectl-supervisor"
[ -x "$supervisor" ] || die "no binary at $supervisor"

assets="$repo/target/assets"
rm -rf "$assets"
mkdir -p "$assets"

# Man pages and completions, from the clap definition -----------------------------------------
log "generating man pages and completions"
cargo run --quiet --locked --example gen_assets -- "$assets"
# Debian policy (and lintian) want man pages gzipped at maximum compression without a timestamp;
# the rpm carries the same files so both packages list the same paths.
gzip -9n "$assets"/man/*.[15]

# The default /etc/composectl layout, also the root the shipped units are rendered from -------
etc="$assets/etc/composectl"
mkdir -p "$etc/stacks"
install -m 0644 packaging/etc/networks.toml "$etc/networks.toml"

# The shared units -----------------------------------------------------------------------------
# `render --out` also writes per-stack drop-in directories (*.d/): those belong to an installation
# (`composectl enable` writes them), so only the regular files at the top level are shipped.
# The units are rendered against the default layout the package installs; the root given with
# --root is the mode's default at run time, so it is taken out of ExecStart= if rendered in.
for mode in system user; do
    log "rendering the $mode units"
    scratch="$assets/render-$mode"
    COMPOSECTL_EXEC=/usr/bin/composectl "$bin" --"$mode" --root "$etc" --quiet \
        render --out "$scratch" >/dev/null
    out="$assets/units/$mode"
    mkdir -p "$out"
    for f in "$scratch"/*; do
        if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
        contents=$(<"$f")
        contents=${contents//" --root $etc"/}
        printf '%s\n' "$contents" >"$out/$(basename "$f")"
        chmod 0644 "$out/$(basename "$f")"
    done
    rm -rf "$scratch"
    [ -n "$(ls -A "$out")" ] || die "render wrote no unit for --$mode"
    if grep -rlF -e "$repo" "$out" >/dev/null; then
        die "the $mode units mention the build directory $repo: $(grep -rlF -e "$repo" "$out" | tr '\n' ' ')"
    fi
done

# The example root, as documentation ----------------------------------------------------------
# Only files under version control: never a developer's .env.local (secrets).
log "staging the example root"
examples="$assets/examples"
mkdir -p "$examples"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$repo" ls-files -z -- networks.toml stacks \
        | while IFS= read -r -d '' f; do install -D -m 0644 "$f" "$examples/$f"; done
else
    install -m 0644 networks.toml "$examples/networks.toml"
    (cd stacks && find . -type f ! -name '*.local' -print0) \
        | while IFS= read -r -d '' f; do install -D -m 0644 "stacks/$f" "$examples/stacks/$f"; done
fi
[ -f "$examples/networks.toml" ] || die "the example root was not staged"

# The Debian changelog (Debian policy 12.7; lintian's no-changelog is an error) -----------------
# One entry for the version being packaged; the project's history is in git. The rpm carries the
# same file, so both packages list the same paths.
log "writing the changelog"
version=$("$bin" --version | awk '{print $2}')
[ -n "$version" ] || die "cannot read the version from $bin --version"
maintainer=$(sed -n '/^\[package\.metadata\.deb\]/,/^\[/ s/^maintainer *= *"\(.*\)"$/\1/p' Cargo.toml)
[ -n "$maintainer" ] || die "no maintainer in [package.metadata.deb] of Cargo.toml"
when=$(git -C "$repo" log -1 --format=%aD 2>/dev/null || true)
[ -n "$when" ] || when=$(date -R)
cat >"$assets/changelog.Debian" <<EOF
composectl ($version-1) unstable; urgency=medium

  * Release $version.

 -- $maintainer  $when
EOF
gzip -9n "$assets/changelog.Debian"

# The packages ---------------------------------------------------------------------------------
dist="$repo/dist"
rm -rf "$dist"
mkdir -p "$dist"

log "cargo deb"
cargo deb --no-build --output "$dist/"
log "cargo generate-rpm"
cargo generate-rpm --output "$dist/"

# dist/ was emptied above, so it holds exactly one of each.
deb=$(ls "$dist"/*.deb)
rpm=$(ls "$dist"/*.rpm)
printf '%s\n%s\n' "$deb" "$rpm"
