//! check, render, diff and graph on valid roots.

use indoc::{formatdoc, indoc};

use crate::harness::{Test, example_root};

#[test]
fn check_accepts_the_example_root() {
    Test::new()
        .at(&example_root())
        .args(["check"])
        .stdout_has("ok (5 stacks: auth, database, genai, metrics, panel)")
        .run();
}

#[test]
fn check_of_named_stacks_ignores_unrelated_broken_ones() {
    Test::valid()
        .file("stacks/broken/compose.yaml", "services: [\n")
        .args(["check", "app"])
        .stdout_has("ok (2 stacks: app, db)")
        .run();
    Test::valid()
        .file("stacks/broken/compose.yaml", "services: [\n")
        .args(["check", "broken"])
        .code(2)
        .stderr_has("stacks/broken/compose.yaml")
        .run();
}

#[test]
fn check_json_lists_diagnostics() {
    let output = Test::valid()
        .file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires: [nosuch]
                services: {db: {image: x}}
            "#},
        )
        .args(["-o", "json", "check"])
        .code(2)
        .run();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(value["error"]["kind"], "invalid");
    assert_eq!(value["error"]["exit_code"], 2);
    assert_eq!(value["error"]["diagnostics"][0]["line"], 2);
    assert_eq!(value["error"]["diagnostics"][0]["severity"], "error");
}

#[test]
fn readable_secrets_are_a_warning_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let test = Test::valid()
        .file("stacks/db/.env.local", "POSTGRES_PASSWORD=x\n")
        .with(|root| {
            let path = root.join("stacks/db/.env.local");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        });
    let fix = format!(
        "chmod 600 {}",
        test.root().join("stacks/db/.env.local").display()
    );
    test.args(["check"])
        .stderr_has("warning: holds secrets but is readable by others (mode 644)")
        .stderr_has(&fix)
        .run();
}

#[test]
fn render_of_a_stack_includes_what_it_requires() {
    let output = Test::new()
        .at(&example_root())
        .args(["--system", "render", "genai"])
        .run();
    let text = String::from_utf8_lossy(&output.stdout);
    for stack in ["genai", "database", "panel", "metrics"] {
        assert!(
            text.contains(&format!("compose@{stack}.service.d/20-composectl.conf")),
            "{stack}"
        );
    }
    assert!(!text.contains("compose@auth.service.d"));
}

#[test]
fn render_quotes_and_escapes_hostile_root_paths() {
    let test = Test::valid();
    let odd = test.dir.path().join("my 100% $HOME root");
    std::fs::rename(test.root(), &odd).expect("rename");
    let output = Test::new().at(&odd).args(["--system", "render"]).run();
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "--root \"{}\" run %i",
        odd.display()
            .to_string()
            .replace('%', "%%")
            .replace('$', "$$")
    );
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn graph_prints_text_dot_mermaid_and_json() {
    let root = example_root();
    Test::new()
        .at(&root)
        .args(["graph"])
        .stdout_has(indoc! {r#"
            layer 2:
              genai  requires: database, panel  wants: metrics
        "#})
        .run();
    Test::new()
        .at(&root)
        .args(["graph", "--format", "dot"])
        .stdout_has("\"genai\" -> \"metrics\" [label=\"wants\", style=dashed];")
        .run();
    Test::new()
        .at(&root)
        .args(["graph", "--format", "mermaid"])
        .stdout_has("genai -->|requires| database")
        .run();
    let output = Test::new()
        .at(&root)
        .args(["-o", "json", "graph", "metrics"])
        .run();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(value["layers"], serde_json::json!([["panel"], ["metrics"]]));
}

#[test]
fn diff_shows_new_changed_and_removed_units() {
    let test = Test::valid();
    let units = test.dir.path().join("units");
    let units_arg = units.to_str().expect("utf-8").to_string();
    Test::new()
        .at(test.root())
        .args(["--system", "render", "--out", &units_arg])
        .run();
    Test::new()
        .at(test.root())
        .args(["--system", "diff", "--unit-dir", &units_arg])
        .stdout_has("up to date")
        .run();

    std::fs::create_dir_all(units.join("compose@gone.service.d")).expect("mkdir");
    std::fs::write(
        units.join("compose@gone.service.d/20-composectl.conf"),
        "[Unit]\n",
    )
    .expect("write");
    std::fs::write(
        units.join("compose@app.service.d/20-composectl.conf"),
        "[Unit]\n",
    )
    .expect("write");
    std::fs::remove_file(units.join("composectl.target")).expect("rm");
    Test::new()
        .at(test.root())
        .args(["--system", "diff", "--unit-dir", &units_arg])
        .stdout_has("changed ")
        .stdout_has(
            "+X-Composectl-Requires=db\n+Wants=compose@db.service\n+After=compose@db.service",
        )
        .stdout_has("new ")
        .stdout_has("removed ")
        .stdout_has("stack gone is no longer in the root")
        .run();
}

#[test]
fn quiet_hides_warnings_but_not_errors() {
    let warned = Test::valid().file("stacks/notes.txt", "x");
    let notes = warned.root().join("stacks/notes.txt");
    let warning = formatdoc! {"
        {}: warning: not a directory; ignored
          hint: stacks/ holds one directory per stack
    ", notes.display()};
    warned
        .args(["check"])
        .stdout_has(": ok (2 stacks")
        .stderr(&warning)
        .run();
    // Exactly empty stderr and stdout: the warning and the summary are both left out.
    Test::valid()
        .file("stacks/notes.txt", "x")
        .args(["-q", "check"])
        .stdout("")
        .run();
    Test::valid()
        .file("stacks/db/compose.yaml", "oops: [")
        .args(["-q", "check"])
        .code(2)
        .stderr_has("error:")
        .run();
}

#[test]
fn version_and_usage_errors() {
    Test::new()
        .args(["--version"])
        .stdout_has("composectl ")
        .run();
    Test::new()
        .args(["frobnicate"])
        .code(2)
        .stderr_has("unrecognized subcommand")
        .run();
    Test::new()
        .args(["--user", "--system", "check"])
        .code(2)
        .stderr_has("cannot be used with")
        .run();
}

#[test]
fn doctor_names_what_is_missing_and_how_to_fix_it() {
    let output = Test::valid()
        .args(["--user", "doctor"])
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .code(1)
        .stdout_has("ok       root")
        .stdout_has("MISSING  systemd manager")
        .stdout_has("fix: log in through a session, or `loginctl enable-linger $USER`")
        .run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("/nonexistent/bus"), "{stdout}");
}

/// `-o json` prints one JSON document for every command, failures included (an error object
/// with the exit code the command exits with). Commands that need systemd or the engine are
/// checked against an unreachable manager and engine here, and for real in systemd.rs.
#[test]
fn every_command_speaks_json_even_when_it_fails() {
    let unreachable = |test: Test| {
        test.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .env("XDG_RUNTIME_DIR", "/nonexistent")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    };
    let cases: &[(&[&str], i32)] = &[
        (&["check"], 0),
        (&["render"], 0),
        (&["diff", "--unit-dir", "/nonexistent"], 0),
        (&["graph", "--format", "dot"], 0),
        (&["doctor"], 1),
        (&["enable", "app"], 1),
        (&["disable", "app"], 2),
        (&["start", "app"], 2),
        (&["stop", "app"], 2),
        (&["restart", "app"], 2),
        (&["update", "app"], 1),
        (&["status", "app"], 1),
        (&["list"], 1),
        (&["networks"], 1),
        (&["swarm", "render"], 0),
        (&["swarm", "deploy", "app"], 1),
        (&["swarm", "update"], 1),
        (&["swarm", "status"], 1),
        (&["swarm", "rm", "app"], 1),
        (&["swarm", "render", "nosuch"], 2),
        (&["logs", "nosuch"], 2),
        (&["run", "nosuch"], 2),
        (&["check", "Bad/Name"], 2),
        (&["frobnicate"], 2),
    ];
    for (args, code) in cases {
        let output = unreachable(Test::valid())
            .args(["--user", "-o", "json"])
            .args(args.iter().copied())
            .code(*code)
            .stderr_has("")
            .run();
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        if *code != 0 && args[0] != "doctor" {
            assert_eq!(value["error"]["exit_code"], *code, "{args:?}: {value}");
            assert!(value["error"]["message"].is_string(), "{args:?}: {value}");
        }
    }
}

/// A reader that goes away (`composectl render | head`) ends the command quietly with exit 0.
#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &["render"][..],
        &["graph"],
        &["check"],
        &["-o", "json", "render"],
    ] {
        let mut child = Test::new()
            .at(&example_root())
            .args(args.iter().copied())
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn composectl");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
    }
}

/// Command files use the context and the layers below, never each other.
#[test]
fn command_modules_do_not_import_each_other() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cmd");
    for entry in std::fs::read_dir(&dir).expect("src/cmd") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        for line in source.lines() {
            assert!(
                !line.contains("crate::cmd") && !line.contains("super::"),
                "{}: {line}",
                path.display()
            );
        }
    }
}
