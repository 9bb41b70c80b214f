//! A root of one-service busybox stacks for the end-to-end tests and the scale benchmark, and
//! what they check with: engine events, ordering, unit properties. Stack, project and network
//! names are unique per test, since the engine is shared by every test running at once.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::e2e::{UserManager, free_subnet, remove_leftover_networks, wait_until};
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

// No Default: `new` makes a temporary directory, which a default value should not.
#[allow(clippy::new_without_default)]
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
