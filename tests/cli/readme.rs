//! The README cannot rot: its main job runs as written, and the unit it shows is the one
//! `render` writes (its quick start runs in tests/e2e/quick_start.rs).

use std::path::PathBuf;
use std::process::Command;

use composectl_testkit::harness::{Test, example_root, readme, readme_block as block};

#[test]
fn the_readme_stays_a_readme() {
    let lines = readme().lines().count();
    assert!(
        lines <= 450,
        "README.md has {lines} lines; move reference material to docs/"
    );
}

/// The drop-in the README shows for the example's genai is what `enable` writes.
#[test]
fn the_readme_shows_the_unit_render_writes() {
    let shown = block("rendered genai");
    let output = Test::new()
        .at(&example_root())
        .args(["--system", "render", "genai"])
        .run();
    let rendered = String::from_utf8_lossy(&output.stdout);
    let path = shown.lines().next().expect("the block names its file");
    let file = rendered
        .split_once(&format!("{path}\n"))
        .unwrap_or_else(|| panic!("render genai wrote no {path}"))
        .1
        .split("\n# /")
        .next()
        .expect("the file");
    assert_eq!(
        shown.trim_end(),
        format!("{path}\n{}", file.trim_end()),
        "README.md's drop-in differs from what render writes"
    );
}

/// The contributors' first command, as written, in a fresh checkout's directory.
#[test]
fn the_readme_main_job_runs_as_written() {
    let cargo = PathBuf::from(env!("CARGO"));
    let path = format!(
        "{}:{}",
        cargo.parent().expect("cargo's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block("main job")])
        .current_dir(example_root())
        .env("PATH", path)
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "the README's main job failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok (5 stacks: auth, database, genai, metrics, panel)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("compose@genai.service.d/20-composectl.conf"),
        "{stdout}"
    );
}
