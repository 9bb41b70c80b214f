//! System mode under systemd as PID 1: the installed .deb in the guest of scripts/guest.sh, as
//! root, on /etc/composectl, with the guest's own docker.service. The layered stacks of
//! testkit/src/layered.rs: panel and database, and genai requiring both.

use std::time::Duration;

use composectl_testkit::e2e::{TEST_IMAGE, stdout_of, wait_until};
use composectl_testkit::guest::{Guest, NETWORK, ROOT, guest, now_ns};
use composectl_testkit::layered::Layered;
use composectl_testkit::stacks::{assert_ordered, text};

/// The stacks' own start takes a few seconds; this is only a bound against hanging.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// `systemd-analyze security` exposure the shipped sandbox must stay at or below.
const MAX_EXPOSURE: f64 = 2.5;

fn unit(stack: &str) -> String {
    format!("compose@{stack}.service")
}

/// Waits until every stack's unit is active; fails with their state and journals.
fn assert_active(guest: &Guest, stacks: &[String]) {
    let units: Vec<String> = stacks.iter().map(|s| unit(s)).collect();
    let active = wait_until(START_TIMEOUT, || {
        units
            .iter()
            .all(|u| guest.property(u, "ActiveState") == "active")
    });
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    assert!(
        active,
        "not all of {names:?} became active\n{}",
        guest.diagnostics(&names)
    );
}

fn enable_now(guest: &Guest, stacks: &Layered) {
    let enabled = guest.composectl(&["enable", "--now", &stacks.genai()]);
    let units: Vec<String> = stacks.all().iter().map(|s| unit(s)).collect();
    let units: Vec<&str> = units.iter().map(String::as_str).collect();
    assert!(
        enabled.status.success(),
        "{}\n{}",
        text(&enabled),
        guest.diagnostics(&units)
    );
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn enable_now_starts_layered_stacks_in_order_with_status_logs_and_a_clean_disable() {
    let guest = guest();
    let stacks = guest.write_layered();
    let (panel, database, genai) = (stacks.panel(), stacks.database(), stacks.genai());
    let since = now_ns();

    enable_now(&guest, &stacks);
    assert_active(&guest, &stacks.all());
    // The engine's own timestamps: genai's container started after both were healthy.
    assert!(
        wait_until(Duration::from_secs(10), || guest
            .events(since)
            .iter()
            .any(|(action, project, _)| action == "start" && project == &genai)),
        "no start event of {genai}: {:?}",
        guest.events(since)
    );
    assert_ordered(&guest.events(since), &genai, &[&panel, &database]);

    let status = guest.composectl(&["status", &genai]);
    let shown = text(&status);
    assert_eq!(status.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("active/running") && shown.contains("1/1 running, 1/1 healthy"),
        "{shown}"
    );

    assert_in_slice(&guest, &genai);

    // The container's own lines, through composectl and through journalctl's field match.
    let line = format!("{genai} ready");
    let logs = guest.composectl(&["logs", &genai]);
    assert!(
        logs.status.success() && text(&logs).contains(&line),
        "{}",
        text(&logs)
    );
    assert!(
        wait_until(Duration::from_secs(10), || guest
            .journal(&unit(&genai), &["COMPOSE_SERVICE=app"])
            .contains(&line)),
        "journalctl -u {} COMPOSE_SERVICE=app lacks {line:?}\n{}",
        unit(&genai),
        guest.diagnostics(&[&unit(&genai)])
    );

    let disabled = guest.composectl(&["disable", "--now", &genai, &database, &panel]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    let left = stdout_of(&guest.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(
        left.trim().is_empty(),
        "disable --now left containers:\n{left}"
    );
    let unit_dir = guest.path("/etc/systemd/system");
    for stack in stacks.all() {
        for file in [
            unit(&stack),
            format!("{}.d", unit(&stack)),
            format!("{}.d", slice(&stack)),
        ] {
            assert!(
                !unit_dir.join(&file).exists(),
                "disable --now left {file} in /etc/systemd/system"
            );
        }
    }
}

/// The slice of a stack, as systemd names it (a dash of the stack's name escaped).
fn slice(stack: &str) -> String {
    format!("compose-{}.slice", stack.replace('-', "\\x2d"))
}

/// The stack's supervisor and its containers run in its slice (the guest's engine is on the
/// systemd cgroup driver), and systemd shows them there.
fn assert_in_slice(guest: &Guest, stack: &str) {
    let slice = slice(stack);
    let parent = format!("0::/compose.slice/{slice}/");
    let supervisor = guest.property(&unit(stack), "MainPID");
    let cgroup = guest.sh(&format!("cat /proc/{supervisor}/cgroup"));
    assert!(
        stdout_of(&cgroup).contains(&format!("{parent}{}", unit(stack))),
        "the supervisor of {stack} is not in {slice}: {}",
        text(&cgroup)
    );
    let pids = stdout_of(&guest.sh(&format!(
        "docker ps -q --filter label=com.docker.compose.project={stack} | xargs -r docker inspect -f '{{{{.State.Pid}}}}'"
    )));
    assert!(!pids.trim().is_empty(), "no container of {stack} runs");
    for pid in pids.split_whitespace() {
        let cgroup = stdout_of(&guest.sh(&format!("cat /proc/{pid}/cgroup")));
        assert!(
            cgroup.contains(&format!("{parent}docker-")),
            "a container of {stack} (pid {pid}) is not in {slice}: {cgroup}"
        );
    }
    let status = guest.systemctl(&["status", "--no-pager", &slice]);
    assert!(
        stdout_of(&status).contains("docker-") && stdout_of(&status).contains(&unit(stack)),
        "systemctl status {slice} does not show the stack:\n{}",
        text(&status)
    );
}

/// (mode, path) of every file composectl wrote into the unit directory, through the links
/// (drop-ins are links into composectl's generation directory), as the guest sees them.
fn composectl_unit_files(guest: &Guest) -> Vec<(String, String)> {
    let out = guest.exec(&[
        "find",
        "-L",
        "/etc/systemd/system",
        "-path",
        "*compose*",
        "-type",
        "f",
        "-printf",
        "%m %p\\n",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    stdout_of(&out)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(mode, path)| (mode.to_string(), path.to_string()))
        .collect()
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn unit_files_are_world_readable_and_reload_without_warnings() {
    let guest = guest();
    let stacks = guest.write_layered();
    let enabled = guest.composectl(&["enable", &stacks.genai()]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // Secrets never go into unit files, so nothing there needs hiding, and systemd warns on
    // every reload about each unit file others cannot read.
    let files = composectl_unit_files(&guest);
    assert!(
        files.iter().any(|(_, f)| f.ends_with("compose@.service")),
        "{files:?}"
    );
    let hidden: Vec<String> = files
        .iter()
        .filter(|(mode, _)| mode != "644")
        .map(|(mode, f)| format!("{f} {mode}"))
        .collect();
    let reload = guest.systemctl(&["daemon-reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
    let warnings: Vec<String> = guest
        .manager_journal()
        .into_iter()
        .filter(|l| l.contains("world-inaccessible"))
        .collect();
    assert!(
        hidden.is_empty() && warnings.is_empty(),
        "unit files not 0644: {hidden:?}\nsystemd on daemon-reload:\n{}",
        warnings.join("\n")
    );
}

/// The number in `→ Overall exposure level for UNIT: 2.2 OK :-)`.
fn exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    line.rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn the_shipped_sandbox_keeps_the_exposure_low() {
    let guest = guest();
    let stacks = guest.write_layered();
    enable_now(&guest, &stacks);
    for stack in stacks.all() {
        let out = guest.exec(&["systemd-analyze", "security", "--no-pager", &unit(&stack)]);
        let shown = text(&out);
        let level = exposure(&shown).unwrap_or_else(|| panic!("no exposure level:\n{shown}"));
        assert!(
            level <= MAX_EXPOSURE,
            "{} exposure {level} > {MAX_EXPOSURE}\n{shown}",
            unit(&stack)
        );
    }
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn a_stack_with_a_build_starts_under_the_sandbox() {
    let guest = guest();
    guest.write_layered(); // for networks.toml
    let dir = format!("{ROOT}/stacks/built");
    // Built from the local image: nothing to pull, no network needed.
    guest.write(
        &format!("{dir}/Dockerfile"),
        &format!("FROM {TEST_IMAGE}\nRUN echo built from a Dockerfile >/built\n"),
    );
    guest.write(
        &format!("{dir}/compose.yaml"),
        &format!(
            r#"services:
  app:
    build: .
    command: ["sh", "-c", "cat /built; exec sleep 100000"]
    networks: [{NETWORK}]
networks:
  {NETWORK}:
    external: true
"#
        ),
    );
    let built = unit("built");
    let enabled = guest.composectl(&["enable", "--now", "built"]);
    assert!(
        enabled.status.success(),
        "{}\n{}",
        text(&enabled),
        guest.diagnostics(&[&built])
    );
    assert_active(&guest, &["built".to_string()]);
    assert!(
        wait_until(Duration::from_secs(10), || guest
            .journal(&built, &["COMPOSE_SERVICE=app"])
            .iter()
            .any(|l| l == "built from a Dockerfile")),
        "journalctl -u {built} COMPOSE_SERVICE=app: {:?}\n{}",
        guest.journal(&built, &["COMPOSE_SERVICE=app"]),
        guest.diagnostics(&[&built])
    );
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn a_reboot_brings_every_enabled_stack_back_in_order() {
    let guest = guest();
    let stacks = guest.write_layered();
    enable_now(&guest, &stacks);
    let since = now_ns();
    guest.reboot();
    assert_active(&guest, &stacks.all());
    let events = guest.events(since);
    for stack in stacks.all() {
        assert!(
            events
                .iter()
                .any(|(action, project, _)| action == "start" && project == &stack),
            "{stack} did not start after the boot: {events:?}"
        );
    }
    assert_ordered(
        &events,
        &stacks.genai(),
        &[&stacks.panel(), &stacks.database()],
    );
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn a_reload_under_the_sandbox_recreates_only_the_changed_service_and_leaves_the_units_running() {
    let guest = guest();
    let stacks = guest.write_layered();
    let (panel, genai) = (stacks.panel(), stacks.genai());
    enable_now(&guest, &stacks);
    assert_active(&guest, &stacks.all());
    let main_pid = |stack: &str| guest.property(&unit(stack), "MainPID");
    let container = |stack: &str| {
        let filter = format!("label=com.docker.compose.project={stack}");
        stdout_of(&guest.docker(&["ps", "-q", "--no-trunc", "--filter", &filter]))
            .trim()
            .to_string()
    };
    let (panel_pid, genai_pid) = (main_pid(&panel), main_pid(&genai));
    let (panel_before, genai_before) = (container(&panel), container(&genai));

    // A changed environment: compose recreates panel's one service.
    let file = format!("{ROOT}/stacks/{panel}/compose.yaml");
    let compose = std::fs::read_to_string(guest.path(&file)).expect("panel's compose file");
    let changed = compose.replacen(
        "    init: true\n",
        "    init: true\n    environment:\n      RELOADED: \"yes\"\n",
        1,
    );
    assert_ne!(
        changed, compose,
        "the compose file has no `init: true` line to extend"
    );
    guest.write(&file, &changed);
    // systemd's own reload: ExecReload= asks the supervisor over its control socket, under
    // the shipped sandbox.
    let reloaded = guest.systemctl(&["reload", &unit(&panel)]);
    assert!(
        reloaded.status.success(),
        "{}\n{}",
        text(&reloaded),
        guest.diagnostics(&[&unit(&panel)])
    );

    assert_eq!(guest.property(&unit(&panel), "ActiveState"), "active");
    assert_eq!(
        main_pid(&panel),
        panel_pid,
        "panel's supervisor was replaced"
    );
    assert_eq!(
        main_pid(&genai),
        genai_pid,
        "genai, which requires panel, was touched"
    );
    assert_eq!(
        container(&genai),
        genai_before,
        "genai's container was recreated"
    );
    let panel_after = container(&panel);
    assert!(
        !panel_after.is_empty() && panel_after != panel_before,
        "panel's container was not recreated: {panel_before} → {panel_after}"
    );
    let env = stdout_of(&guest.docker(&[
        "inspect",
        "--format",
        "{{join .Config.Env \" \"}}",
        &panel_after,
    ]));
    assert!(env.contains("RELOADED=yes"), "{env}");
    let status = guest.composectl(&["status", &panel]);
    assert!(
        text(&status).contains("1/1 running, 1/1 healthy"),
        "{}",
        text(&status)
    );
}

#[test]
#[ignore = "end-to-end, system mode: needs root and the guest of scripts/guest.sh with the .deb installed (scripts/test.sh boots it)"]
fn encrypted_secrets_leave_no_plaintext_on_disk_and_reach_the_container_across_a_reboot() {
    let guest = guest();
    guest.write_layered(); // for networks.toml
    let password = "correct-horse-battery-staple-7431";
    let credential_dir = "/run/credentials/compose@vault.service";
    guest.write(
        &format!("{ROOT}/stacks/vault/compose.yaml"),
        &format!(
            r#"x-composectl:
  secrets: [DB_PASSWORD]
services:
  app:
    image: {TEST_IMAGE}
    command: ["sleep", "100000"]
    environment:
      PASSWORD: ${{DB_PASSWORD}}
    secrets: [db_password]
    networks: [{NETWORK}]
secrets:
  db_password:
    # The credential systemd decrypted for the unit: a file on a tmpfs, bind-mounted.
    file: ${{CREDENTIALS_DIRECTORY:-/nonexistent}}/composectl.vault.DB_PASSWORD
networks:
  {NETWORK}:
    external: true
"#
        ),
    );
    let grep = |dirs: &str| {
        stdout_of(&guest.sh(&format!("grep -rlF '{password}' {dirs} 2>/dev/null; true")))
    };

    // Set by hand (not on the command line), plaintext at first: the root has not opted in.
    let set = guest.sh(&format!(
        "printf %s '{password}' | composectl secrets set vault DB_PASSWORD"
    ));
    assert!(set.status.success(), "{}", text(&set));
    assert!(
        grep("/etc").contains("/etc/composectl/stacks/vault/.env.local"),
        "the plaintext is where secrets set said"
    );

    let encrypted = guest.composectl(&["secrets", "encrypt", "vault"]);
    assert!(encrypted.status.success(), "{}", text(&encrypted));
    assert!(
        text(&encrypted).contains(
            "vault: DB_PASSWORD encrypted in /etc/credstore.encrypted/composectl.vault.DB_PASSWORD, removed from /etc/composectl/stacks/vault/.env.local"
        ),
        "{}",
        text(&encrypted)
    );
    assert_eq!(grep("/etc /var/lib/composectl"), "", "no plaintext left");
    let listed = guest.composectl(&["secrets", "vault"]);
    assert!(
        text(&listed).contains(
            "vault: DB_PASSWORD (encrypted in /etc/credstore.encrypted/composectl.vault.DB_PASSWORD)"
        ) && !text(&listed).contains(password),
        "{}",
        text(&listed)
    );
    let revealed = guest.composectl(&["secrets", "--reveal", "vault"]);
    assert!(
        text(&revealed).contains(&format!("DB_PASSWORD = {password} (encrypted")),
        "{}",
        text(&revealed)
    );

    let vault = unit("vault");
    let seen = || {
        let container = stdout_of(&guest.docker(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.project=vault",
        ]));
        let container = container.trim().to_string();
        let env = stdout_of(&guest.docker(&["exec", &container, "sh", "-c", "echo $PASSWORD"]));
        let file =
            stdout_of(&guest.docker(&["exec", &container, "cat", "/run/secrets/db_password"]));
        (env.trim().to_string(), file)
    };
    let check_running = |when: &str| {
        assert_active(&guest, &["vault".to_string()]);
        assert_eq!(
            seen(),
            (password.to_string(), password.to_string()),
            "{when}"
        );
        // The engine keeps a container's environment in its own state (containerd's bundle
        // under /run, docker's under /var/lib/docker); composectl's part is the credential.
        assert_eq!(
            stdout_of(&guest.sh(&format!(
                "grep -rlF '{password}' --exclude-dir=containerd --exclude-dir=docker /run 2>/dev/null; true"
            )))
            .trim(),
            format!("{credential_dir}/composectl.vault.DB_PASSWORD"),
            "{when}: the plaintext is in the unit's credentials only"
        );
        assert_eq!(grep("/etc /var/lib/composectl"), "", "{when}");
    };
    let enabled = guest.composectl(&["enable", "--now", "vault"]);
    assert!(
        enabled.status.success(),
        "{}\n{}",
        text(&enabled),
        guest.diagnostics(&[&vault])
    );
    check_running("after enable --now");
    guest.reboot();
    check_running("after a reboot");

    let stopped = guest.composectl(&["stop", "vault"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(
        !guest
            .sh(&format!("test -e {credential_dir}"))
            .status
            .success(),
        "{credential_dir} is gone once the unit stopped"
    );
    assert_eq!(grep("/etc /var/lib/composectl"), "");
}
