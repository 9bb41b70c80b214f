//! composectl's test support, shared by the test targets (tests/cli, tests/e2e, tests/faults)
//! and the scale benchmark (bench/scale):
//!
//! - [`harness`]: a builder that runs the binary against a root on disk and checks what comes out;
//! - [`tools`]: host tools a test needs, or a panic that says what to install;
//! - [`e2e`]: a private `systemd --user` manager with its own D-Bus, on the host's journald and
//!   dockerd (provisioned by `scripts/provision-e2e.sh`);
//! - [`guest`]: the system-mode guest, systemd as PID 1 (`scripts/guest.sh`);
//! - [`layered`], [`stacks`]: busybox stacks that turn healthy after a delay, and PostgreSQL;
//! - [`database`]: a writer that remembers which commits PostgreSQL acknowledged;
//! - [`engine_proxy`]: a stand-in engine socket a test can hang or take away.
//!
//! The binaries under test are the ones cargo built beside the test executable.

pub mod database;
pub mod e2e;
pub mod engine_proxy;
pub mod guest;
pub mod harness;
pub mod layered;
pub mod stacks;
pub mod tools;

use std::path::PathBuf;
use std::sync::LazyLock;

/// `composectl`, as cargo built it for this test or bench target.
pub fn bin() -> &'static str {
    static BIN: LazyLock<String> = LazyLock::new(|| built("composectl"));
    &BIN
}

/// `composectl-supervisor`, as cargo built it for this test or bench target.
pub fn supervisor_bin() -> &'static str {
    static BIN: LazyLock<String> = LazyLock::new(|| built("composectl-supervisor"));
    &BIN
}

/// A binary of the package: cargo puts a test or bench executable in `target/PROFILE/deps/` and
/// the package's binaries, built first for every test target, in `target/PROFILE/`.
fn built(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test executable's path");
    let path: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .expect("the test executable lives in target/PROFILE/deps");
    assert!(
        path.is_file(),
        "{} is missing: run the tests through cargo, which builds it",
        path.display()
    );
    path.into_os_string()
        .into_string()
        .expect("a UTF-8 target directory")
}

/// The repository's root: its README, example root and scripts.
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .expect("the repository")
}
