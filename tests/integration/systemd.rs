//! enable, start, status, stop and disable against a real private `systemd --user` manager.
//! The units run a stand-in for `composectl run` (tests/e2e/standin-run.sh) until the supervisor
//! exists: these tests are about units, ordering and D-Bus, not containers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::e2e::{UserManager, environment};
use crate::harness::{BIN, Test};

fn standin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/standin-run.sh")
}

fn composectl(manager: &UserManager, root: &Path, args: &[&str]) -> Output {
    let mut command = manager.command(BIN);
    command
        .arg("--user")
        .arg("--root")
        .arg(root)
        .args(args)
        .env("COMPOSECTL_EXEC", standin())
        .env("NO_COLOR", "1");
    command.output().expect("run composectl")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file composectl installed, read through its links, by relative path.
fn installed(unit_dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in fs::read_dir(unit_dir).expect("unit dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name.starts_with('.') || name.ends_with(".wants") {
            continue;
        }
        if path.is_dir() {
            for inner in fs::read_dir(&path).expect("drop-in dir").flatten() {
                let inner_name = inner.file_name().to_string_lossy().to_string();
                let contents = fs::read_to_string(inner.path()).expect("drop-in");
                // Staged links and placeholders are composectl's bookkeeping: systemd skips
                // hidden files, and a placeholder holds no settings.
                if inner_name.starts_with('.')
                    || contents.starts_with("# composectl: not installed")
                {
                    continue;
                }
                files.push((format!("{name}/{inner_name}"), contents));
            }
        } else {
            files.push((name, fs::read_to_string(&path).expect("unit")));
        }
    }
    files.sort();
    files
}

fn layered_root() -> Test {
    Test::valid()
        .file("stacks/db/DELAY", "1\n")
        .file(
            "stacks/broken/compose.yaml",
            "services:\n  x:\n    image: busybox\n",
        )
        .file("stacks/broken/FAIL", "")
}

#[test]
fn enable_start_status_stop_disable_on_a_real_manager() {
    let Some(_env) = environment() else { return };
    let manager = UserManager::start();
    let test = layered_root();
    let root = test.root().to_path_buf();

    let enabled = composectl(&manager, &root, &["enable", "--now", "app"]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // What enable installed is what render prints.
    let rendered = test.dir.path().join("rendered");
    let out = composectl(
        &manager,
        &root,
        &["render", "app", "--out", rendered.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(installed(&manager.unit_dir()), installed(&rendered));

    for unit in [
        "compose@app.service",
        "compose@db.service",
        "composectl.target",
    ] {
        let state = manager.systemctl(&["is-enabled", unit]);
        assert_eq!(
            String::from_utf8_lossy(&state.stdout).trim(),
            "enabled",
            "{unit}"
        );
    }
    assert!(
        manager
            .property("compose@app.service", "Requires")
            .contains("compose@db.service")
    );
    assert!(
        manager
            .property("compose@app.service", "After")
            .contains("compose@db.service")
    );
    assert_eq!(
        manager.property("compose@app.service", "ActiveState"),
        "active"
    );

    // app began only after db was ready (db takes a second).
    let log = fs::read_to_string(root.join("starts.log")).expect("starts.log");
    let time = |what: &str| -> f64 {
        log.lines()
            .find(|l| l.starts_with(what))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{what} missing from\n{log}"))
    };
    assert!(time("app begin") >= time("db ready"), "{log}");

    let status = composectl(&manager, &root, &["-o", "json", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(value[0]["unit"]["active_state"], "active");
    assert_eq!(value[0]["unit"]["status_text"], "stand-in ready");

    let list = composectl(&manager, &root, &["list"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("app") && l.contains("enabled") && l.contains("active")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("broken") && l.contains("not installed")),
        "{listed}"
    );
    let logs = composectl(&manager, &root, &["logs", "db", "-n", "50"]);
    assert!(logs.status.success(), "{}", text(&logs));
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("stand-in: db ready"),
        "{}",
        text(&logs)
    );

    // A stack that cannot start: exit 1, with its own log lines quoted.
    let failed = composectl(&manager, &root, &["enable", "--now", "broken"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("compose@broken.service")
            && stderr.contains("stand-in: broken cannot start"),
        "{stderr}"
    );
    let status = composectl(&manager, &root, &["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));

    // db cannot go while app requires it; together they can.
    let refused = composectl(&manager, &root, &["disable", "db"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("enabled stack app requires it"));

    let stopped = composectl(&manager, &root, &["stop", "app"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(
        manager.property("compose@app.service", "ActiveState"),
        "inactive"
    );

    let disabled = composectl(
        &manager,
        &root,
        &["disable", "--now", "app", "db", "broken"],
    );
    assert!(disabled.status.success(), "{}", text(&disabled));
    assert_eq!(
        installed(&manager.unit_dir()),
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        manager.property("compose@db.service", "ActiveState"),
        "inactive"
    );
}

#[test]
fn not_enabled_and_unknown_stacks_are_usage_errors() {
    let Some(_env) = environment() else { return };
    let manager = UserManager::start();
    let test = layered_root();
    let start = composectl(&manager, test.root(), &["start", "db"]);
    assert_eq!(start.status.code(), Some(2), "{}", text(&start));
    assert!(String::from_utf8_lossy(&start.stderr).contains("run composectl enable db"));
    let enable = composectl(&manager, test.root(), &["enable", "nosuch"]);
    assert_eq!(enable.status.code(), Some(2), "{}", text(&enable));
    assert!(
        !manager.unit_dir().join("compose@.service").exists(),
        "a refused enable wrote units"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// SIGKILL at every rename, symlink, unlink and mkdir `enable` makes (strace injects the signal)
/// leaves the unit directory exactly as before or exactly as after.
#[test]
fn killing_enable_midway_leaves_old_or_new_units() {
    let Some(_env) = environment() else { return };
    let Some(strace) = crate::environment::tool("strace") else {
        return;
    };
    let manager = UserManager::start();
    let test = layered_root().file("composectl.toml", "[defaults]\nrestart_sec = \"10s\"\n");
    let root = test.root().to_path_buf();
    let units = manager.unit_dir();
    let saved = test.dir.path().join("saved");

    let first = composectl(&manager, &root, &["enable", "db"]);
    assert!(first.status.success(), "{}", text(&first));
    copy_tree(&units, &saved.join("old"));
    let old = installed(&units);

    // The new state changes shared drop-ins, an installed stack's drop-in, and adds a stack.
    fs::write(
        root.join("composectl.toml"),
        "[defaults]\nrestart_sec = \"20s\"\n",
    )
    .expect("write");
    fs::write(root.join("stacks/db/compose.yaml"), "x-composectl:\n  description: the database\nservices:\n  db:\n    image: postgres\n    networks: [back]\nnetworks:\n  back:\n    external: true\n").expect("write");
    let second = composectl(&manager, &root, &["enable", "app"]);
    assert!(second.status.success(), "{}", text(&second));
    let new = installed(&units);
    assert_ne!(old, new);

    let mut kills = 0;
    for syscall in [
        "rename",
        "renameat",
        "renameat2",
        "symlink",
        "symlinkat",
        "unlink",
        "unlinkat",
        "mkdir",
        "mkdirat",
    ] {
        for when in 1.. {
            copy_tree(&saved.join("old"), &units);
            let mut command = manager.command(&strace);
            command
                .args(["-f", "-o", "/dev/null", "-e"])
                .arg(format!("inject={syscall}:signal=KILL:when={when}"))
                .arg(BIN)
                .args(["--user", "--root"])
                .arg(&root)
                .args(["enable", "app"])
                .env("COMPOSECTL_EXEC", standin());
            let output = command.output().expect("strace");
            let state = installed(&units);
            assert!(
                state == old || state == new,
                "{syscall} #{when} left a mix: {state:#?}\n{}",
                text(&output)
            );
            if output.status.success() {
                assert_eq!(state, new, "{syscall} #{when}");
                break;
            }
            kills += 1;
            // The next composectl finishes the job from whatever was left.
            let again = composectl(&manager, &root, &["enable", "app"]);
            assert!(again.status.success(), "{}", text(&again));
            assert_eq!(installed(&units), new);
            let leftovers: Vec<_> = fs::read_dir(units.join(".composectl"))
                .expect("state")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
                .collect();
            assert_eq!(leftovers.len(), 1, "old generations left behind");
        }
    }
    assert!(kills >= 5, "only {kills} kill points were exercised");
}
