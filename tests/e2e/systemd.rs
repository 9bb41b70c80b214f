//! enable, start, status, stop, disable, list and logs against a real private `systemd --user`
//! manager, with units running the real supervisor on the engine.

use std::fs;
use std::path::Path;

use composectl_testkit::bin;
use composectl_testkit::e2e::{UserManager, environment};
use composectl_testkit::stacks::{
    Stacks, assert_ordered, composectl, engine_events, now_secs, text,
};

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

/// db (healthy after a second), app (requires db) and broken (exits before it is healthy).
fn layered() -> (Stacks, String, String, String) {
    let mut stacks = Stacks::new();
    let net = stacks.network("net");
    let db = stacks.stack("db", "1", &[], &net);
    let app = stacks.stack("app", "0", &["db"], &net);
    let broken = stacks.custom(
        "broken",
        "",
        "    command: [\"sh\", \"-c\", \"sleep 0.5; exit 3\"]
    healthcheck:
      test: [\"CMD\", \"false\"]
      interval: 200ms
",
        &net,
    );
    (stacks, db, app, broken)
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn enable_start_status_stop_disable_on_a_real_manager() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let (stacks, db, app, broken) = layered();
    let manager = UserManager::start();
    let root = stacks.root().to_path_buf();
    let unit = |stack: &str| format!("compose@{stack}.service");
    let since = format!("{}", now_secs());

    let enabled = composectl(&manager, &root, &["enable", "--now", &app]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // What enable installed is what render prints.
    let rendered = stacks.root().join("../rendered");
    let out = composectl(
        &manager,
        &root,
        &["render", &app, "--out", rendered.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(installed(&manager.unit_dir()), installed(&rendered));

    for name in [unit(&app), unit(&db), "composectl.target".to_string()] {
        let state = manager.systemctl(&["is-enabled", &name]);
        assert_eq!(
            String::from_utf8_lossy(&state.stdout).trim(),
            "enabled",
            "{name}"
        );
    }
    // Wanted, not Requires=: the supervisor does the rest of "requires" (see units/).
    assert!(manager.property(&unit(&app), "Wants").contains(&unit(&db)));
    assert!(
        !manager
            .property(&unit(&app), "Requires")
            .contains(&unit(&db))
    );
    assert!(manager.property(&unit(&app), "After").contains(&unit(&db)));
    assert_eq!(manager.property(&unit(&app), "ActiveState"), "active");
    // app's container started only after db's was healthy (db takes a second).
    assert_ordered(&engine_events(&since), &app, &[&db]);

    let status = composectl(&manager, &root, &["-o", "json", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(value[0]["unit"]["active_state"], "active");
    assert_eq!(value[0]["unit"]["status_text"], "1/1 running, 1/1 healthy");
    assert_eq!(value[0]["containers"]["running"], 1);

    // update: pull (the test image has pull_policy: never, so nothing is fetched); no newer
    // image, so nothing is recreated and the unit keeps running.
    let before = manager.property(&unit(&app), "InvocationID");
    let updated = composectl(&manager, &root, &["update", &app]);
    assert!(updated.status.success(), "{}", text(&updated));
    assert!(
        text(&updated).contains("no newer images: nothing to recreate"),
        "{}",
        text(&updated)
    );
    assert_eq!(manager.property(&unit(&app), "InvocationID"), before);
    assert_eq!(manager.property(&unit(&app), "ActiveState"), "active");

    let list = composectl(&manager, &root, &["list"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&app) && l.contains("enabled") && l.contains("active")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&broken) && l.contains("not installed")),
        "{listed}"
    );
    let logs = composectl(&manager, &root, &["logs", &db, "app", "-n", "50"]);
    assert!(logs.status.success(), "{}", text(&logs));
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains(&format!("{db} ready")),
        "{}",
        text(&logs)
    );

    // A stack whose container exits before it is healthy: exit 1, with the reason quoted.
    let failed = composectl(&manager, &root, &["enable", "--now", &broken]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(&unit(&broken)) && stderr.contains("exited with code 3"),
        "{stderr}"
    );
    let status = composectl(&manager, &root, &["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));

    // db cannot go while app requires it; together they can.
    let refused = composectl(&manager, &root, &["disable", &db]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("enabled stack {app} requires it"))
    );

    let stopped = composectl(&manager, &root, &["stop", &app]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(manager.property(&unit(&app), "ActiveState"), "inactive");

    // A stack directory removed from the root is listed as an orphan until disabled.
    fs::rename(
        root.join("stacks").join(&broken),
        root.join("../broken-moved"),
    )
    .expect("mv");
    let list = composectl(&manager, &root, &["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("orphan"),
        "{}",
        text(&list)
    );

    let disabled = composectl(&manager, &root, &["disable", "--now", &app, &db, &broken]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    assert_eq!(
        installed(&manager.unit_dir()),
        Vec::<(String, String)>::new()
    );
    assert_eq!(manager.property(&unit(&db), "ActiveState"), "inactive");
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn not_enabled_and_unknown_stacks_are_usage_errors() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let (stacks, db, ..) = layered();
    let manager = UserManager::start();
    let start = composectl(&manager, stacks.root(), &["start", &db]);
    assert_eq!(start.status.code(), Some(2), "{}", text(&start));
    assert!(
        String::from_utf8_lossy(&start.stderr).contains(&format!("run composectl enable {db}"))
    );
    let enable = composectl(&manager, stacks.root(), &["enable", "nosuch"]);
    assert_eq!(enable.status.code(), Some(2), "{}", text(&enable));
    assert!(
        !manager.unit_dir().join("compose@.service").exists(),
        "a refused enable wrote units"
    );
    // Resources on an engine that cannot put the containers into the stack's slice (the host's
    // engine: rootful, on cgroupfs) would limit the supervisor alone: refused, nothing written.
    let compose = stacks.root().join("stacks").join(&db).join("compose.yaml");
    let yaml = fs::read_to_string(&compose).expect("compose.yaml");
    fs::write(
        &compose,
        yaml.replacen(
            "x-composectl:\n",
            "x-composectl:\n  resources: {memory_max: 1G}\n",
            1,
        ),
    )
    .expect("write");
    let enable = composectl(&manager, stacks.root(), &["enable", &db]);
    let shown = text(&enable);
    assert_eq!(enable.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains(&format!(
            "stack {db} sets resources, but its containers cannot run in its slice here"
        )),
        "{shown}"
    );
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
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn killing_enable_midway_leaves_old_or_new_units() {
    environment();
    let strace = composectl_testkit::tools::tool("strace", "strace");
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let (stacks, db, app, _) = layered();
    let manager = UserManager::start();
    let root = stacks.root().to_path_buf();
    let units = manager.unit_dir();
    let saved = root.join("../saved");

    let first = composectl(&manager, &root, &["enable", &db]);
    assert!(first.status.success(), "{}", text(&first));
    copy_tree(&units, &saved.join("old"));
    let old = installed(&units);

    // The new state changes shared drop-ins, an installed stack's drop-in, and adds a stack.
    let settings = fs::read_to_string(root.join("composectl.toml")).expect("settings");
    fs::write(
        root.join("composectl.toml"),
        settings.replace("300ms", "20s"),
    )
    .expect("write");
    let db_file = root.join("stacks").join(&db).join("compose.yaml");
    let compose = fs::read_to_string(&db_file).expect("compose");
    fs::write(
        &db_file,
        format!(
            "x-composectl:\n  description: the database\n{}",
            compose.replace("x-composectl:\n", "x-other:\n")
        ),
    )
    .expect("write");
    let second = composectl(&manager, &root, &["enable", &app]);
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
                .arg(bin())
                .args(["--user", "--root"])
                .arg(&root)
                .args(["enable", &app])
                .env("COMPOSECTL_EXEC", bin());
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
            let again = composectl(&manager, &root, &["enable", &app]);
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

/// Every command that drives systemd or the engine prints one JSON document with `-o json`
/// (`logs`: journald's JSON, one entry a line), and a reader that goes away ends it quietly.
#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn commands_on_a_real_manager_speak_json_and_survive_closed_pipes() {
    environment();
    let (stacks, db, app, _) = layered();
    let manager = UserManager::start();
    let root = stacks.root().to_path_buf();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let output = composectl(&manager, &root, &all);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&output)))
    };
    let enabled = json(&["enable", "--now", &app]);
    assert_eq!(enabled["started"], true);
    assert!(
        enabled["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().all(|j| j["result"] == "done")),
        "{enabled}"
    );
    assert_eq!(
        json(&["status", &app])[0]["status"],
        "1/1 running, 1/1 healthy"
    );
    assert!(json(&["list"]).as_array().is_some_and(|l| l.len() == 3));
    assert_eq!(json(&["networks"])[0]["state"], "ok");
    for action in ["stop", "start", "restart"] {
        let ran = json(&[action, &app]);
        assert_eq!(ran["action"], action, "{ran}");
        assert_eq!(
            ran["jobs"][0]["unit"],
            format!("compose@{app}.service"),
            "{ran}"
        );
    }
    // Four starts in a row: the next one would hit the stacks' StartLimitBurst=3.
    let reset = manager.systemctl(&["reset-failed", &format!("compose@{app}.service")]);
    assert!(reset.status.success(), "{}", text(&reset));
    let updated = json(&["update", &app]);
    assert_eq!(updated[0]["stack"], app.as_str(), "{updated}");
    assert_eq!(updated[0]["result"], "unchanged", "{updated}");
    let reloaded = json(&["reload", &app]);
    assert_eq!(reloaded["action"], "reload", "{reloaded}");
    assert_eq!(json(&["update", "--check", &app])[0]["state"], "up-to-date");

    let logs = composectl(&manager, &root, &["-o", "json", "logs", &db, "-n", "5"]);
    assert!(logs.status.success(), "{}", text(&logs));
    for line in String::from_utf8_lossy(&logs.stdout).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("a journal entry");
        assert!(
            entry["MESSAGE"].is_string() || entry["MESSAGE"].is_array(),
            "{entry}"
        );
    }

    for args in [&["status"][..], &["logs", &db], &["list"]] {
        let mut child = manager
            .command(bin())
            .args(["--user", "--root"])
            .arg(&root)
            .args(args.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
    }

    let disabled = json(&["disable", "--now", &app, &db]);
    assert_eq!(disabled["stopped"], true, "{disabled}");
}
