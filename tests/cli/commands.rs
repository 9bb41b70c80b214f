//! check, render, diff and graph on valid roots.

use std::fs;

use indoc::{formatdoc, indoc};

use composectl_testkit::harness::{Test, example_root};

#[test]
fn check_accepts_the_example_root() {
    Test::new()
        .at(&example_root())
        .args(["check"])
        .stdout_has("ok (5 stacks: auth, database, genai, metrics, panel)")
        .run();
}

/// The selection rule: the named stacks and what they require must be valid; another stack's
/// errors do not stop the command, which says so.
#[test]
fn check_of_named_stacks_ignores_unrelated_broken_ones() {
    Test::valid()
        .file("stacks/broken/compose.yaml", "services: [\n")
        .args(["check", "app"])
        .stdout_has("ok (2 stacks: app, db)")
        .stderr(indoc! {"
            warning: stack broken has errors and is not part of this selection: left as it is
              hint: composectl check broken shows them
        "})
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
        (&["reload", "app"], 2),
        (&["update", "app"], 1),
        (&["update", "--check", "app"], 1),
        (&["update"], 2),
        (&["secrets"], 0),
        (&["backup", "app"], 1),
        (&["restore", "app", "/nonexistent.tar"], 2),
        (&["run", "app", "--reload"], 1),
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

/// Units run `composectl-supervisor` from composectl's directory: `enable` says when it is not
/// there, before it writes a unit (which would fail at every start).
#[test]
fn enable_refuses_without_the_supervisor_beside_composectl_and_writes_nothing() {
    let test = Test::valid();
    let config = test.dir.path().join("config");
    // Only its directory matters: the supervisor is looked for beside it.
    let exec = test.dir.path().join("bin").join("composectl");
    test.env("COMPOSECTL_EXEC", exec.to_str().expect("utf-8 path"))
        .args(["--user", "enable", "app"])
        .code(1)
        .stderr_has("composectl-supervisor is missing")
        .run();
    assert!(!config.join("systemd").exists(), "enable wrote units");
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
        // A file's own unit tests may use what the file defines.
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines() {
            assert!(
                !line.contains("crate::cmd") && !line.contains("super::"),
                "{}: {line}",
                path.display()
            );
        }
    }
}

/// Bind-mount sources outside the root become `RequiresMountsFor=` (deduplicated, the runtime
/// filesystems and paths covered by a deeper one left out); missing ones are warned about.
#[test]
fn bind_mounts_are_required_mounts_and_missing_sources_are_warned_about() {
    let test = Test::valid();
    let outside = test.dir.path().join("disk");
    std::fs::create_dir_all(outside.join("media/films")).expect("mkdir");
    std::fs::create_dir_all(outside.join("my data")).expect("mkdir");
    std::fs::create_dir_all(test.root().join("stacks/db/conf")).expect("mkdir");
    let disk = outside.display().to_string();
    let test = test
        .file(
            "stacks/db/compose.yaml",
            &formatdoc! {r#"
            services:
              db:
                image: postgres:16
                volumes:
                  - {disk}/media:/media
                  - {disk}/media/films:/films
                  - "{disk}/my data:/data"
                  - {disk}/gone:/gone
                  - ./conf:/etc/db
                  - /var/run/docker.sock:/var/run/docker.sock
                  - type: bind
                    source: ${{MEDIA}}/films
                    target: /again
                  - data:/var/lib/postgresql/data
            volumes:
              data:
        "#},
        )
        .file("stacks/db/.env", &format!("MEDIA={disk}/media\n"));
    let compose = test.root().join("stacks/db/compose.yaml");
    let output = test
        .args(["--system", "render", "db"])
        .stderr(&formatdoc! {"
            {}:8: warning: bind mount source {disk}/gone does not exist
              hint: compose would create it as an empty directory owned by root: create it, fix the path, or mount the disk that holds it
        ", compose.display()})
        .run();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!(
            "RequiresMountsFor={disk}/gone {disk}/media/films \"{disk}/my data\"\n"
        )),
        "{text}"
    );
}

/// The valid root with db given 2 min of grace (composectl's drop-in then says
/// TimeoutStopSec=150s: the grace and compose's 30 s), its drop-in installed, and an operator's
/// drop-in `name` holding `text`; `--user check`, which must say ok. Returns the test and the
/// operator's file.
fn check_with_stop_drop_in(name: &str, text: &str) -> (Test, std::path::PathBuf) {
    let test = Test::valid().file(
        "stacks/db/compose.yaml",
        "services:\n  db:\n    image: postgres:16\n    stop_grace_period: 2m\n",
    );
    let drop_ins = test
        .root()
        .parent()
        .expect("the test's directory")
        .join("config/systemd/user/compose@db.service.d");
    fs::create_dir_all(&drop_ins).expect("mkdir");
    fs::write(
        drop_ins.join("20-composectl.conf"),
        "[Service]\nTimeoutStopSec=150s\n",
    )
    .expect("composectl's drop-in");
    let path = drop_ins.join(name);
    fs::write(&path, text).expect("the operator's drop-in");
    (
        test.args(["--user", "check"]).stdout_has("ok (2 stacks"),
        path,
    )
}

#[test]
fn an_operator_drop_in_that_cuts_the_derived_stop_timeout_is_warned_about() {
    // What `systemctl edit` writes sorts after composectl's drop-ins, so it takes effect.
    let (test, path) = check_with_stop_drop_in("override.conf", "[Service]\nTimeoutStopSec=30s\n");
    test.stderr(&formatdoc! {"
            {}:2: warning: TimeoutStopSec=30s gives compose@db.service 30s to stop, less than the 2min 30s its containers' stop_grace_period and compose need: systemd would kill what is still shutting down
              hint: remove the line, or set TimeoutStopSec=150s or more
        ", path.display()})
        .run();
    // Enough time, or a file that composectl's own drop-in overrides: nothing to say.
    check_with_stop_drop_in("override.conf", "[Service]\nTimeoutSec=5min\n")
        .0
        .run();
    check_with_stop_drop_in("05-early.conf", "[Service]\nTimeoutStopSec=30s\n")
        .0
        .run();
}

#[test]
fn a_start_timeout_shorter_than_a_healthcheck_needs_is_warned_about() {
    let test = Test::valid().file(
        "stacks/db/compose.yaml",
        indoc! {r#"
            x-composectl:
              start_timeout: 1min
            services:
              db:
                image: postgres:16
                healthcheck:
                  test: ["CMD", "pg_isready"]
                  interval: 10s
                  start_period: 1m30s
              cache:
                image: redis
                healthcheck:
                  test: ["CMD", "true"]
                  interval: 5s
        "#},
    );
    let compose = test.root().join("stacks/db/compose.yaml");
    test.args(["check"])
        .stdout_has("ok (2 stacks")
        .stderr(&formatdoc! {"
            {}:2: warning: start_timeout 1min is shorter than service db's healthcheck may take to report healthy (start_period 90s + interval 10s × retries 3 = 2min)
              hint: the start would time out before the service is healthy: set x-composectl.start_timeout to 2min or more, or shorten the healthcheck
        ", compose.display()})
        .run();
    // Without start_timeout in the stack, the default (5min) applies and the warning points at
    // the healthcheck; `ready: running` does not wait for health at all.
    let test = Test::valid().file(
        "stacks/db/compose.yaml",
        "services:\n  db:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n      interval: 2m\n",
    );
    test.args(["check"])
        .stderr_has(
            "compose.yaml:4: warning: start_timeout 5min is shorter than service db's healthcheck",
        )
        .run();
    Test::valid()
        .file(
            "stacks/db/compose.yaml",
            "x-composectl:\n  ready: running\nservices:\n  db:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n      interval: 2m\n",
        )
        .args(["check"])
        .run();
}

/// Declared secrets are generated once into `.env.local` at 0600 (the root's when shared),
/// never overwrite a value an env file sets, and are printed only with --show.
#[test]
fn secrets_are_generated_once_private_and_printed_only_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let test = Test::valid()
        .file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  secrets:
                    DB_PASSWORD: {shared: true}
                    API_KEY: {length: 40, charset: hex}
                    PRESET:
                services:
                  db:
                    image: postgres:16
                    environment:
                      POSTGRES_PASSWORD: ${DB_PASSWORD:?generated by composectl}
            "#},
        )
        .file("stacks/db/.env", "PRESET=chosen-by-hand\n")
        .file(
            "stacks/app/compose.yaml",
            "x-composectl:\n  secrets:\n    DB_PASSWORD: {shared: true}\nservices:\n  web:\n    image: nginx\n",
        );
    let root = test.root().to_path_buf();
    let at = |args: &[&str]| Test::new().at(&root).args(args.iter().copied());
    at(&["check"])
        .stdout_has(
            "db: secrets to generate: DB_PASSWORD, API_KEY (composectl secrets db, or enable)",
        )
        .stdout_has("app: secrets to generate: DB_PASSWORD")
        .run();
    let first = at(&["secrets"]).run();
    let shown = String::from_utf8_lossy(&first.stdout);
    let shared = root.join(".env.local");
    let own = root.join("stacks/db/.env.local");
    assert!(
        shown.contains(&format!(
            "app: DB_PASSWORD (generated, plaintext in {})",
            shared.display()
        )) && shown.contains(&format!(
            "db: DB_PASSWORD (plaintext in {})",
            shared.display()
        )) && shown.contains(&format!(
            "db: API_KEY (generated, plaintext in {})",
            own.display()
        )) && shown.contains("db: PRESET (plaintext in "),
        "{shown}"
    );
    for file in [&shared, &own] {
        let mode = std::fs::metadata(file)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let values = std::fs::read_to_string(&own).expect("read")
        + &std::fs::read_to_string(&shared).expect("read");
    let value_of = |name: &str| {
        values
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {values}"))
            .to_string()
    };
    let (password, key) = (value_of("DB_PASSWORD"), value_of("API_KEY"));
    assert_eq!(password.len(), 32);
    assert!(key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        !shown.contains(&password) && !shown.contains(&key),
        "{shown}"
    );

    // Again: nothing changes; --show prints the values, JSON too.
    let why = "(sudo composectl secrets encrypt seals them with this host's key)";
    at(&["check"])
        .stdout(&formatdoc! {"
            {}: ok (2 stacks: app, db)
            app: secrets in plaintext env files (mode 0600): DB_PASSWORD {why}
            db: secrets in plaintext env files (mode 0600): DB_PASSWORD, API_KEY, PRESET {why}
        ", root.display()})
        .run();
    at(&["secrets", "--show", "db"])
        .stdout_has(&format!("db: DB_PASSWORD = {password} (plaintext in"))
        .stdout_has("db: PRESET = chosen-by-hand (plaintext in")
        .run();
    let json = at(&["-o", "json", "secrets", "db"]).run();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value[0]["variable"], "DB_PASSWORD");
    assert_eq!(value[0]["generated"], false);
    assert!(value[0].get("value").is_none(), "{value}");
    assert_eq!(value_of("DB_PASSWORD"), password);
    assert_eq!(
        std::fs::read_to_string(&own)
            .expect("read")
            .matches("API_KEY=")
            .count(),
        1
    );
}

/// The bash completion script the packages ship asks composectl, which lists the root's stacks.
#[test]
fn bash_completes_stack_names_from_the_root() {
    let test = Test::valid();
    let script = test.dir.path().join("composectl.bash");
    let registration = test
        .command()
        .env("COMPOSECTL_COMPLETE", "bash")
        .output()
        .expect("composectl");
    std::fs::write(&script, &registration.stdout).expect("script");
    let bin_dir = std::path::Path::new(composectl_testkit::bin())
        .parent()
        .expect("bin dir");
    let root = test.root().display().to_string();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let current = words[words.len() - 1];
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9; \
                 _clap_complete_composectl composectl {current} {previous}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script = script.display(),
                words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
                cword = words.len() - 1,
                current = format_args!("'{current}'"),
                previous = words[words.len() - 2],
            ))
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .output()
            .expect("bash");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        complete(&format!("composectl --root {root} start a")),
        "app\n"
    );
    assert_eq!(
        complete(&format!("composectl --root {root} logs "))
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["app", "db"]
    );
    assert!(complete("composectl sta").lines().any(|w| w == "status"));
}

#[test]
fn compose_refuses_verbs_that_would_fight_the_supervisor() {
    for (verb, instead) in [
        ("up", "composectl start app"),
        ("down", "composectl stop app"),
        ("restart", "composectl restart app"),
        ("rm", "composectl stop, start, restart or reload app"),
        ("run", "composectl compose app -- exec SERVICE COMMAND"),
    ] {
        Test::valid()
            .args(["compose", "app", "--", verb])
            .code(2)
            .stderr_has(&format!("composectl compose does not run `{verb}`"))
            .stderr_has(instead)
            .run();
    }
    Test::valid()
        .args(["compose", "app", "--", "-p", "other", "ps"])
        .code(2)
        .stderr_has("-p is composectl's to set")
        .run();
}

/// `compose` hands compose the supervisor's project, files and env layers; a stand-in for
/// compose prints what it got.
#[test]
fn compose_runs_compose_with_the_supervisors_arguments() {
    let test = Test::valid()
        .file(".env", "A=1\n")
        .file("stacks/app/.env", "B=2\n")
        .file(
            "composectl.toml",
            "compose = [\"/bin/echo\", \"compose\"]\n",
        );
    let root = test.root().display().to_string();
    test.args(["compose", "app", "--", "ps", "-a"])
        .stdout(&format!(
            "compose --project-name app --file {root}/stacks/app/compose.yaml --project-directory {root}/stacks/app --env-file {root}/.env --env-file {root}/stacks/app/.env ps -a\n"
        ))
        .run();
}

#[test]
fn an_external_network_no_service_uses_is_a_warning_not_an_error() {
    Test::valid()
        .with(|root| {
            // db's file, with a network none of its services joins.
            let file = root.join("stacks/db/compose.yaml");
            let text = std::fs::read_to_string(&file).expect("db's compose file");
            std::fs::write(&file, text + "  legacy:\n    external: true\n").expect("write");
        })
        .args(["check", "db"])
        .stderr_has(r#"warning: network "legacy" is external and not in networks.toml, but no running service uses it: compose leaves it out"#)
        .run();
}

/// A stack declaring one secret, for the `secrets` commands in user mode (plaintext there).
fn secret_stack() -> Test {
    Test::valid().file(
        "stacks/db/compose.yaml",
        indoc! {r#"
            x-composectl:
              secrets: [DB_PASSWORD]
            services:
              db:
                image: postgres:16
                environment:
                  POSTGRES_PASSWORD: ${DB_PASSWORD}
                networks: [back]
            networks:
              back:
                external: true
        "#},
    )
}

#[test]
fn a_secret_value_on_the_command_line_is_refused_with_how_to_pass_it() {
    secret_stack()
        .args(["--user", "secrets", "set", "db", "DB_PASSWORD", "hunter2"])
        .code(2)
        .stderr_has("secret values are not taken from the command line")
        .stderr_has("systemd-ask-password -n | composectl secrets set db DB_PASSWORD")
        .run();
    secret_stack()
        .args(["--user", "secrets", "set", "db", "DB_PASWORD"])
        .code(2)
        .stderr_has("stack db declares no secret DB_PASWORD")
        .stderr_has("did you mean DB_PASSWORD?")
        .run();
    secret_stack()
        .args(["--user", "secrets", "encrypt", "db"])
        .code(2)
        .stderr_has("encrypted credentials are for system mode")
        .run();
}

#[test]
fn a_secret_set_from_stdin_replaces_the_plaintext_one_and_check_says_it_is_plaintext() {
    use std::io::Write;
    let test = secret_stack();
    let root = test.root().to_path_buf();
    let mut command = test.command();
    command.args(["--user", "secrets", "set", "db", "DB_PASSWORD"]);
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run composectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret with spaces $HOME #x\n")
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = root.join("stacks/db/.env.local");
    assert!(
        stdout.contains(&format!(
            "set DB_PASSWORD of db (plaintext in {})",
            file.display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "never printed");
    let text = std::fs::read_to_string(&file).expect(".env.local");
    assert!(
        text.ends_with("DB_PASSWORD='s3cret with spaces $HOME #x'\n"),
        "{text}"
    );

    Test::new()
        .at(&root)
        .args(["--user", "secrets", "db", "--reveal"])
        .stdout_has(&format!(
            "db: DB_PASSWORD = s3cret with spaces $HOME #x (plaintext in {})",
            file.display()
        ))
        .stdout_has("plaintext secrets: user mode")
        .run();
    Test::new()
        .at(&root)
        .args(["--user", "check", "db"])
        .stdout_has("db: secrets in plaintext env files (mode 0600): DB_PASSWORD (user mode: a user manager of systemd before 256 cannot decrypt credentials)")
        .run();
}
