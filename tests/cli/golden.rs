//! The units rendered for the repository's example root, in both modes: golden files, and
//! `systemd-analyze verify` with no complaint at all.

use std::path::Path;
use std::process::Command;

use composectl_testkit::bin;
use composectl_testkit::harness::{Test, example_root};

fn render(mode: &str) -> String {
    let output = Test::new()
        .at(&example_root())
        .args([mode, "render"])
        .env("HOME", "/home/alice")
        .env("XDG_CONFIG_HOME", "/home/alice/.config")
        .run();
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn system_units_match_golden_file() {
    let text =
        render("--system").replace(example_root().to_str().expect("utf-8"), "/etc/composectl");
    insta::assert_snapshot!("system_units", text);
}

#[test]
fn user_units_match_golden_file() {
    let text = render("--user").replace(
        example_root().to_str().expect("utf-8"),
        "/home/alice/.config/composectl",
    );
    insta::assert_snapshot!("user_units", text);
}

/// A root's units written into a temporary directory, ExecStart naming the real binary
/// (systemd-analyze checks that it exists).
fn render_root(mode: &str, root: &Path) -> (Test, std::path::PathBuf) {
    let test = Test::new().at(root);
    let out = test.dir.path().join("units");
    let mut render = test.command();
    render
        .args([mode, "render", "--out"])
        .arg(&out)
        .env("COMPOSECTL_EXEC", bin());
    assert!(render.status().expect("render").success());
    (test, out)
}

/// Runs `systemd-analyze verify` over every unit rendered for `root`, with ExecStart naming the
/// real binary, and fails on any output: systemd reports unknown keys and bad values as
/// warnings, not errors.
fn verify(mode: &str, root: &Path) {
    let analyze = composectl_testkit::tools::tool("systemd-analyze", "systemd");
    let (test, out) = render_root(mode, root);

    let runtime = test.dir.path().join("runtime");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let mut units: Vec<String> = [
        "compose@.service",
        "composectl.target",
        "composectl-networks.service",
        "composectl-update.service",
        "composectl-update.timer",
        "composectl-backup@.service",
    ]
    .map(String::from)
    .to_vec();
    // Each stack's unit brings its slice, with the slice's drop-in, into the check; the
    // backup and notify templates are checked as instances of a stack.
    for stack in std::fs::read_dir(root.join("stacks")).expect("stacks") {
        let name = stack
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        units.push(format!("compose@{name}.service"));
        units.push(format!("composectl-backup@{name}.timer"));
        units.push(format!("composectl-notify@{name}.service"));
    }
    let mut command = Command::new(analyze);
    if mode == "--user" {
        command.arg("--user");
    }
    let output = command
        .args(["verify", "--man=no"])
        .args(units.iter().map(|u| out.join(u)))
        .env("XDG_RUNTIME_DIR", &runtime)
        .current_dir(&out)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {mode}:\n{text}"
    );
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); scripts/test.sh runs it"]
fn system_units_pass_systemd_analyze_verify() {
    verify("--system", &example_root());
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); scripts/test.sh runs it"]
fn user_units_pass_systemd_analyze_verify() {
    verify("--user", &example_root());
}

/// Required mounts (quoted, with specifiers escaped) and log rate limits, in both modes.
#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); scripts/test.sh runs it"]
fn units_with_required_mounts_pass_systemd_analyze_verify() {
    let test = Test::valid();
    let disk = test.dir.path().join("disk 100%");
    std::fs::create_dir_all(disk.join("media")).expect("mkdir");
    let test = test.file(
        "stacks/db/compose.yaml",
        &format!(
            "x-composectl:\n  log_rate_limit: {{interval: 10s, burst: 500}}\nservices:\n  db:\n    image: x\n    volumes: [\"{}/media:/media\", \"/srv:/srv\"]\n",
            disk.display()
        ),
    );
    for mode in ["--system", "--user"] {
        verify(mode, test.root());
    }
}

/// Resources (a slice's settings), a notify command (OnFailure=) and a stack whose name has a
/// dash (escaped in its slice's name), in both modes.
#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); scripts/test.sh runs it"]
fn units_with_resources_and_notify_pass_systemd_analyze_verify() {
    let test = Test::valid()
        .file(
            "composectl.toml",
            "[resources]\ntasks_max = 4096\n\n[notify]\ncommand = 'curl -fsS --data-binary @- http://127.0.0.1:9/$COMPOSECTL_STACK'\n",
        )
        .file(
            "stacks/my-app/compose.yaml",
            "x-composectl:\n  resources: {memory_max: 8G, memory_high: 7G, cpu_weight: 50, cpu_quota: 200%, io_weight: 10}\nservices:\n  web:\n    image: x\n",
        );
    let (_test, out) = render_root("--system", test.root());
    let slice = std::fs::read_to_string(out.join("compose-my\\x2dapp.slice.d/20-composectl.conf"))
        .expect("my-app's slice drop-in");
    for line in [
        "MemoryMax=8G",
        "MemoryHigh=7G",
        "CPUWeight=50",
        "CPUQuota=200%",
        "IOWeight=10",
        "TasksMax=4096",
    ] {
        assert!(
            slice.contains(&format!("\n{line}\n")),
            "{line} in:\n{slice}"
        );
    }
    let dropin = std::fs::read_to_string(out.join("compose@my-app.service.d/20-composectl.conf"))
        .expect("my-app's drop-in");
    assert!(
        dropin.contains("\nSlice=compose-my\\x2dapp.slice\n"),
        "{dropin}"
    );
    assert!(
        dropin.contains("\nOnFailure=composectl-notify@my-app.service\n"),
        "{dropin}"
    );
    for mode in ["--system", "--user"] {
        verify(mode, test.root());
    }
}

/// The system template's sandbox keeps `systemd-analyze security` exposure low (2.5 at most).
#[test]
#[ignore = "needs systemd-analyze (Debian package systemd); scripts/test.sh runs it"]
fn system_units_keep_the_security_exposure_low() {
    let analyze = composectl_testkit::tools::tool("systemd-analyze", "systemd");
    let (_test, out) = render_root("--system", &example_root());
    let output = Command::new(analyze)
        .args([
            "security",
            "--offline=true",
            "--no-pager",
            "compose@genai.service",
        ])
        .current_dir(&out)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for compose@genai.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(exposure <= 2.5, "exposure {exposure}:\n{text}");
}
