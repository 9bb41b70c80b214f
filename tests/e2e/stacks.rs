//! The supervisor end to end: real systemd user manager, journald, dockerd, Compose v2 and the
//! local busybox image.

use std::process::Command;
use std::time::Duration;

use composectl_testkit::e2e::{UserManager, environment, wait_until};
use composectl_testkit::stacks::{
    Stacks, assert_ordered, composectl, engine_events, now_secs, text, wait_for,
};
#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn layered_stacks_start_in_order_log_to_the_journal_restart_and_survive_a_reboot() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let mut stacks = Stacks::new();
    let mut manager = UserManager::start();
    let net = stacks.network("net");
    let panel = stacks.stack("panel", "1", &[], &net);
    let database = stacks.stack("database", "2", &[], &net);
    let genai = stacks.stack("genai", "1", &["panel", "database"], &net);
    let root = stacks.root().to_path_buf();
    let since = format!("{}", now_secs());

    let enabled = composectl(&manager, &root, &["enable", "--now", &genai]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    for stack in [&panel, &database, &genai] {
        assert_eq!(
            manager.property(&format!("compose@{stack}.service"), "ActiveState"),
            "active",
            "{stack}"
        );
    }
    assert_ordered(&engine_events(&since), &genai, &[&panel, &database]);

    // Status: unit, STATUS= from the supervisor, containers from the engine.
    let status = composectl(&manager, &root, &["status", &genai]);
    assert!(status.status.success(), "{}", text(&status));
    let shown = String::from_utf8_lossy(&status.stdout);
    // One container summary, the same in the supervisor's STATUS= and from the engine.
    assert!(
        shown.contains("status:     1/1 running, 1/1 healthy")
            && shown.contains("containers: 1/1 running, 1/1 healthy"),
        "{shown}"
    );

    // compose's own verbs, with the supervisor's project and files.
    let ps = composectl(
        &manager,
        &root,
        &[
            "compose",
            &genai,
            "--",
            "ps",
            "--format",
            "{{.Name}} {{.State}}",
        ],
    );
    assert!(ps.status.success(), "{}", text(&ps));
    assert_eq!(
        String::from_utf8_lossy(&ps.stdout).trim(),
        format!("{genai}-app-1 running"),
        "composectl compose {genai} -- ps"
    );

    // The container's own lines, filterable by service.
    let unit = format!("compose@{genai}.service");
    assert!(
        wait_until(Duration::from_secs(10), || manager
            .journal_lines(&unit, &["COMPOSE_SERVICE=app"])
            .iter()
            .any(|l| l == &format!("{genai} ready"))),
        "{:?}",
        manager.journal_lines(&unit, &[])
    );

    // A container without a restart policy dies: systemd restarts the stack.
    let killed = Command::new("docker")
        .args(["kill", &format!("{genai}-app-1")])
        .output()
        .expect("docker kill");
    assert!(killed.status.success(), "{}", text(&killed));
    wait_for(&manager, &unit, "NRestarts", Duration::from_secs(30), |n| {
        n != "0"
    });
    wait_for(
        &manager,
        &unit,
        "ActiveState",
        Duration::from_secs(30),
        |s| s == "active",
    );
    assert!(
        manager
            .journal_lines(&unit, &[])
            .iter()
            .any(|l| l.contains("exited with code 137"))
    );

    // A reboot: a new manager on the same directories brings every enabled stack back, in order.
    let since = format!("{}", now_secs());
    manager.restart();
    for stack in [&panel, &database, &genai] {
        wait_for(
            &manager,
            &format!("compose@{stack}.service"),
            "ActiveState",
            Duration::from_secs(60),
            |s| s == "active",
        );
    }
    assert_ordered(&engine_events(&since), &genai, &[&panel, &database]);

    let disabled = composectl(
        &manager,
        &root,
        &["disable", "--now", &genai, &database, &panel],
    );
    assert!(disabled.status.success(), "{}", text(&disabled));
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={genai}"),
        ])
        .output()
        .expect("docker ps");
    assert!(left.stdout.is_empty(), "stop left containers behind");
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_stack_that_always_fails_ends_failed_with_the_reason() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let name = stacks.custom(
        "broken",
        "",
        "    command: [\"sh\", \"-c\", \"echo giving up; exit 3\"]
",
        &net,
    );
    let root = stacks.root().to_path_buf();
    // Without a healthcheck the container counts as ready while it runs, so the first start may
    // still be reported as done; either way systemd must give up after the start limit.
    let enabled = composectl(&manager, &root, &["enable", "--now", &name]);
    assert!(
        matches!(enabled.status.code(), Some(0 | 1)),
        "{}",
        text(&enabled)
    );
    let unit = format!("compose@{name}.service");
    wait_for(
        &manager,
        &unit,
        "ActiveState",
        Duration::from_secs(60),
        |s| s == "failed",
    );
    // StartLimitBurst=3: three starts, two of them automatic restarts, then systemd gives up.
    let restarts: u32 = manager
        .property(&unit, "NRestarts")
        .parse()
        .expect("NRestarts");
    assert!(restarts >= 2, "NRestarts={restarts}");
    let status = composectl(&manager, &root, &["status", &name]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let shown = text(&status);
    assert!(shown.contains("exited with code 3"), "{shown}");
    // The table of every installed stack asks systemd for fewer properties; its line says the same.
    let table = composectl(&manager, &root, &["status"]);
    assert_eq!(table.status.code(), Some(3), "{}", text(&table));
    let line = text(&table)
        .lines()
        .find(|l| l.starts_with(name.as_str()))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.contains("failed/failed")
            && line.contains("last failure: ")
            && line.contains("exited with code 3"),
        "{}",
        text(&table)
    );
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_network_that_drifted_stops_the_stack_with_the_difference() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let name = stacks.stack("app", "0", &[], &net);
    let created = Command::new("docker")
        .args(["network", "create", "--subnet", "10.199.250.0/24", &net])
        .output()
        .expect("docker network create");
    assert!(created.status.success(), "{}", text(&created));
    let root = stacks.root().to_path_buf();

    let networks = composectl(&manager, &root, &["networks"]);
    assert_eq!(networks.status.code(), Some(1), "{}", text(&networks));
    let enabled = composectl(&manager, &root, &["enable", "--now", &name]);
    assert_eq!(enabled.status.code(), Some(1), "{}", text(&enabled));
    let shown = text(&enabled);
    assert!(
        shown.contains(&format!("network {net} differs from networks.toml"))
            && shown.contains("subnet is 10.199.250.0/24"),
        "{shown}"
    );
    assert!(shown.contains("internal is false"), "{shown}");

    // Once it is removed, `composectl networks` creates it as specified. The stack is stopped
    // first: systemd keeps restarting it, and its supervisor would create the network itself.
    let stopped = composectl(&manager, &root, &["stop", &name]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let removed = Command::new("docker")
        .args(["network", "rm", &net])
        .output()
        .expect("docker network rm");
    assert!(removed.status.success());
    let networks = composectl(&manager, &root, &["networks"]);
    assert!(networks.status.success(), "{}", text(&networks));
    assert!(String::from_utf8_lossy(&networks.stdout).contains(&format!("{net}: created")));
    let inspect = Command::new("docker")
        .args([
            "network",
            "inspect",
            "-f",
            "{{.Internal}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
            &net,
        ])
        .output()
        .expect("inspect");
    assert!(
        String::from_utf8_lossy(&inspect.stdout).starts_with("true 10."),
        "{}",
        text(&inspect)
    );
}

/// A container its own restart policy brings back does not restart the stack; one that stays
/// unhealthy past the grace period does.
#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn restart_policies_are_given_a_grace_and_unhealthy_containers_are_not() {
    environment();
    // Stacks before the manager: dropped after it, so their units are stopped before cleanup.
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let flaky = stacks.custom(
        "flaky",
        "",
        "    init: true
    restart: always
    command: [\"sh\", \"-c\", \"if [ -e /crashed ]; then exec sleep 100000; fi; sleep 2; touch /crashed; exit 1\"]
",
        &net,
    );
    let sick = stacks.stack("sick", "0", &[], &net);
    let root = stacks.root().to_path_buf();

    let enabled = composectl(&manager, &root, &["enable", "--now", &flaky, &sick]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // flaky's container exits once after 2 s and its policy restarts it: the stack stays up.
    let flaky_unit = format!("compose@{flaky}.service");
    assert!(
        wait_until(Duration::from_secs(20), || manager
            .journal_lines(&flaky_unit, &[])
            .iter()
            .any(|l| l.contains("its restart policy brings it back"))),
        "{:?}",
        manager.journal_lines(&flaky_unit, &[])
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(manager.property(&flaky_unit, "NRestarts"), "0");
    assert_eq!(manager.property(&flaky_unit, "ActiveState"), "active");

    // sick's healthcheck starts failing and keeps failing: after the grace, systemd restarts it.
    let sick_unit = format!("compose@{sick}.service");
    let broke = Command::new("docker")
        .args(["exec", &format!("{sick}-app-1"), "rm", "/tmp/ready"])
        .output()
        .expect("docker exec");
    assert!(broke.status.success(), "{}", text(&broke));
    wait_for(
        &manager,
        &sick_unit,
        "NRestarts",
        Duration::from_secs(60),
        |n| n != "0",
    );
    wait_for(
        &manager,
        &sick_unit,
        "ActiveState",
        Duration::from_secs(30),
        |s| s == "active",
    );
    assert!(
        manager
            .journal_lines(&sick_unit, &[])
            .iter()
            .any(|l| l.contains("is unhealthy and did not recover within 2s")),
        "{:?}",
        manager.journal_lines(&sick_unit, &[])
    );
}
