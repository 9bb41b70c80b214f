//! The supervisor end to end: real systemd user manager, journald, dockerd, Compose v2 and the
//! local busybox image. Stack, project and network names are unique per test, since the engine
//! is shared by every test running at once.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::e2e::{UserManager, environment, free_subnet, remove_leftover_networks, wait_until};
use crate::harness::Test;
use crate::layered::{compose_file, ready_after};

static NEXT: AtomicU8 = AtomicU8::new(0);
/// A root of busybox stacks whose engine objects are removed when it is dropped.
pub struct Stacks {
    test: Test,
    prefix: String,
    networks: Vec<String>,
}

/// Quick restarts and a short grace, so faults play out in seconds.
pub const FAST_DEFAULTS: &str = r#"[defaults]
restart_sec = "300ms"
failure_grace = "2s"
start_limit_burst = 3
start_timeout = "90s"
stop_timeout = "30s"
"#;

impl Stacks {
    pub fn new() -> Stacks {
        Stacks::with_settings(FAST_DEFAULTS)
    }

    /// Stacks under this composectl.toml.
    pub fn with_settings(settings: &str) -> Stacks {
        remove_leftover_networks();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("e{}x{n}", std::process::id());
        let test = Test::new().file("composectl.toml", settings);
        Stacks {
            test,
            prefix,
            networks: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.test.root()
    }

    pub fn name(&self, stack: &str) -> String {
        format!("{}-{stack}", self.prefix)
    }

    /// A network in networks.toml with a subnet that no network on the engine and no other test
    /// of this run uses.
    pub fn network(&mut self, net: &str) -> String {
        let name = self.name(net);
        let subnet = free_subnet();
        let spec = format!("[networks.{name}]\nsubnet = \"{subnet}\"\ninternal = true\n");
        let path = self.root().join("networks.toml");
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&spec);
        fs::write(path, text).expect("networks.toml");
        self.networks.push(name.clone());
        name
    }

    /// A one-service stack that turns healthy `delay` seconds after it starts.
    pub fn stack(&self, stack: &str, delay: &str, requires: &[&str], network: &str) -> String {
        let requires: Vec<String> = requires.iter().map(|r| self.name(r)).collect();
        let meta = format!("x-composectl:\n  requires: [{}]\n", requires.join(", "));
        self.custom(stack, &meta, &self.healthy_after(stack, delay), network)
    }

    /// The service settings of [`stack`](Self::stack): see [`healthy_after`].
    pub fn healthy_after(&self, stack: &str, delay: &str) -> String {
        healthy_after(&self.name(stack), delay)
    }

    /// A stack with one busybox service `app` on `network`: `meta` goes before `services:`,
    /// `service` holds the service's own settings (indented four spaces).
    pub fn custom(&self, stack: &str, meta: &str, service: &str, network: &str) -> String {
        let name = self.name(stack);
        let compose = compose_file(meta, service, network, "");
        let dir = self.root().join("stacks").join(&name);
        fs::create_dir_all(&dir).expect("stack dir");
        fs::write(dir.join("compose.yaml"), compose).expect("compose.yaml");
        name
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("name={}-", self.prefix))
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
        for network in &self.networks {
            let _ = Command::new("docker")
                .args(["network", "rm", network])
                .output();
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker network ls -q --filter name={}- | xargs -r docker network rm",
                self.prefix
            ))
            .output();
        // Named volumes of the stacks (compose names them PROJECT_VOLUME).
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker volume ls -q --filter name={}- | xargs -r docker volume rm",
                self.prefix
            ))
            .output();
    }
}

/// A busybox service's settings (indented four spaces): says "NAME ready" and turns healthy
/// `delay` seconds after it starts; no restart policy.
pub fn healthy_after(name: &str, delay: &str) -> String {
    ready_after(name, delay, "")
}

pub fn composectl(manager: &UserManager, root: &Path, args: &[&str]) -> Output {
    manager.composectl(root, args)
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// (action, project, time in ns) of the engine's container events between two times.
pub fn engine_events(since: &str) -> Vec<(String, String, i64)> {
    let output = Command::new("docker")
        .args([
            "events",
            "--since",
            since,
            "--until",
            &format!("{}", now_secs() + 1),
            "--filter",
            "type=container",
            "--format",
            "{{json .}}",
        ])
        .output()
        .expect("docker events");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|event| {
            (
                event["Action"].as_str().unwrap_or_default().to_string(),
                event["Actor"]["Attributes"]["com.docker.compose.project"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                event["timeNano"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// No container of `dependent` started before every stack it requires was healthy.
pub fn assert_ordered(events: &[(String, String, i64)], dependent: &str, required: &[&str]) {
    let start = events
        .iter()
        .filter(|(action, project, _)| action == "start" && project == dependent)
        .map(|(_, _, t)| *t)
        .min()
        .unwrap_or_else(|| panic!("{dependent} never started: {events:?}"));
    for required in required {
        let healthy = events
            .iter()
            .filter(|(action, project, _)| {
                action == "health_status: healthy" && project == required
            })
            .map(|(_, _, t)| *t)
            .min()
            .unwrap_or_else(|| panic!("{required} never turned healthy: {events:?}"));
        assert!(
            start > healthy,
            "{dependent} started {} ms before {required} was healthy",
            (healthy - start) / 1_000_000
        );
    }
}

pub fn wait_for(
    manager: &UserManager,
    unit: &str,
    property: &str,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    let found = wait_until(timeout, || {
        last = manager.property(unit, property);
        ok(&last)
    });
    assert!(
        found,
        "{unit} {property} stayed {last:?}\n{}",
        manager.journal_lines(unit, &[]).join("\n")
    );
    last
}

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

    // Once it is removed, `composectl networks` creates it as specified.
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
