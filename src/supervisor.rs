//! `composectl run STACK`: the main process of `compose@STACK.service` (Type=notify).
//!
//! It makes sure the stack's networks match networks.toml, runs `compose up -d`, and watches the
//! engine's event stream: READY=1 once every service's containers run (and are healthy where
//! they have a healthcheck), STATUS= kept current, container output forwarded to the journal
//! with fields, and a container that dies or stays unhealthy ends the process with an error so
//! systemd's Restart=on-failure restarts the stack. SIGTERM brings the project down.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::compose::Ready;
use crate::engine::{Container, Engine, Event};
use crate::journal::{Journal, PRIORITY_INFO, PRIORITY_WARNING};
use crate::model::{Root, Stack};

/// sd_notify messages; silent when not started by systemd.
struct Notifier {
    enabled: bool,
    last_status: String,
}

impl Notifier {
    fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            last_status: String::new(),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if self.enabled {
            let _ = sd_notify::notify(states);
        }
    }

    fn status(&mut self, text: &str) {
        if text != self.last_status {
            tracing::info!("{text}");
            self.send(&[sd_notify::NotifyState::Status(text)]);
            self.last_status = text.to_string();
        }
    }
}

/// The compose command for this stack: project name, file, env layers in their fixed order.
fn compose(root: &Root, stack: &Stack, args: &[&str]) -> Command {
    let settings = &root.settings;
    let mut command = Command::new(&settings.compose[0]);
    command
        .args(&settings.compose[1..])
        .args(["--project-name", &stack.name, "--file"])
        .arg(&stack.compose_file)
        .arg("--project-directory")
        .arg(&stack.dir);
    for env_file in &stack.env_files {
        command.arg("--env-file").arg(env_file);
    }
    command
        .args(args)
        .current_dir(&stack.dir)
        .kill_on_drop(true);
    command
}

async fn run_compose(root: &Root, stack: &Stack, args: &[&str]) -> Result<()> {
    let program = root.settings.compose.join(" ");
    let status = compose(root, stack, args).status().await.map_err(|e| {
        anyhow!("cannot run `{program}`: {e}; install Compose v2 (docker compose) or set compose = [...] in composectl.toml")
    })?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `compose pull`, for `composectl update`.
pub async fn pull(root: &Root, stack: &Stack) -> Result<()> {
    run_compose(root, stack, &["pull"]).await
}

/// Creates the stack's missing networks; refuses networks that differ from networks.toml.
pub async fn ensure_networks(engine: &Engine, root: &Root, names: &[&str]) -> Result<Vec<String>> {
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let spec = root
            .networks
            .get(*name)
            .with_context(|| format!("network {name} is not in networks.toml"))?;
        match engine.network(name).await? {
            Some(actual) => {
                let drift = crate::engine::network_drift(spec, &actual);
                if drift.is_empty() {
                    report.push(format!("{name}: ok ({})", spec.subnet));
                } else {
                    problems.push(format!(
                        "network {name} differs from networks.toml: {}. Containers may use it, so composectl will not \
                         recreate it: stop what uses it, `docker network rm {name}`, then run `composectl networks` \
                         (or change networks.toml to match)",
                        drift.join("; ")
                    ));
                }
            }
            None => {
                engine.create_network(spec).await?;
                report.push(format!("{name}: created ({})", spec.subnet));
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(report)
}

/// Where the stack is on its way to ready.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    Ready(String),
    Waiting(String),
}

fn readiness(stack: &Stack, containers: &[Container]) -> Readiness {
    let mut waiting = Vec::new();
    let (mut running, mut total, mut healthy) = (0, 0, 0);
    for service in stack.services.iter().filter(|s| s.profiles.is_empty()) {
        let own: Vec<&Container> = containers
            .iter()
            .filter(|c| c.service == service.name)
            .collect();
        if own.is_empty() {
            waiting.push(format!("{} (not created)", service.name));
            total += 1;
        }
        for container in own {
            total += 1;
            if !container.running {
                if container.exit_code == Some(0) {
                    running += 1; // a one-shot service that completed
                } else {
                    waiting.push(format!("{} (exited)", service.name));
                }
                continue;
            }
            running += 1;
            match container.health.as_deref() {
                Some("healthy") => healthy += 1,
                Some(state) if stack.ready == Ready::Healthy => {
                    waiting.push(format!("{} ({state})", service.name))
                }
                _ => {}
            }
        }
    }
    if waiting.is_empty() {
        Readiness::Ready(format!("{running}/{total} running, {healthy} healthy"))
    } else {
        Readiness::Waiting(format!("waiting for {}", waiting.join(", ")))
    }
}

/// Forwards each container's output to the journal, one task per container.
struct LogForwarder {
    journal: Option<Arc<Journal>>,
    stack: String,
    tasks: HashMap<String, JoinHandle<()>>,
}

impl LogForwarder {
    /// Follows every running container not followed yet (new, recreated or restarted ones).
    fn follow(&mut self, engine: &Arc<Engine>, containers: &[Container], since: i32) {
        for container in containers.iter().filter(|c| c.running) {
            if self
                .tasks
                .get(&container.id)
                .is_some_and(|task| !task.is_finished())
            {
                continue;
            }
            // A restarted container's earlier lines were forwarded already.
            let since = if self.tasks.contains_key(&container.id) {
                unix_now()
            } else {
                since
            };
            let mut stream = engine.logs(&container.id, since);
            let journal = self.journal.clone();
            let fields = [
                ("COMPOSE_PROJECT".to_string(), self.stack.clone()),
                ("COMPOSE_SERVICE".to_string(), container.service.clone()),
                ("CONTAINER_NAME".to_string(), container.name.clone()),
                (
                    "CONTAINER_ID".to_string(),
                    container.id.chars().take(12).collect(),
                ),
                (
                    "SYSLOG_IDENTIFIER".to_string(),
                    format!("{}/{}", self.stack, container.service),
                ),
            ];
            let task = tokio::spawn(async move {
                let fields: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                while let Some(Ok((is_stderr, bytes))) = stream.next().await {
                    let buffer = &mut pending[usize::from(is_stderr)];
                    buffer.extend_from_slice(&bytes);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        emit(journal.as_deref(), is_stderr, trim_line(&line), &fields);
                    }
                }
                for (index, rest) in pending.iter().enumerate() {
                    if !rest.is_empty() {
                        emit(journal.as_deref(), index == 1, trim_line(rest), &fields);
                    }
                }
            });
            self.tasks.insert(container.id.clone(), task);
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn emit(journal: Option<&Journal>, is_stderr: bool, line: &[u8], fields: &[(&str, &str)]) {
    match journal {
        Some(journal) => {
            let priority = if is_stderr {
                PRIORITY_WARNING
            } else {
                PRIORITY_INFO
            };
            journal.send(priority, line, fields);
        }
        None => {
            let service = fields
                .iter()
                .find(|(k, _)| *k == "SYSLOG_IDENTIFIER")
                .map_or("", |(_, v)| *v);
            println!("{service} | {}", String::from_utf8_lossy(line));
        }
    }
}

fn unix_now() -> i32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
        .unwrap_or(0)
}

/// Containers that died or turned unhealthy and get a grace period to come back.
#[derive(Default)]
struct Trouble {
    deadlines: BTreeMap<String, (Instant, String)>,
}

impl Trouble {
    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().map(|(at, _)| *at).min()
    }
}

/// Why the stack cannot go on, or None when the event is harmless.
async fn judge(
    engine: &Engine,
    event: &Event,
    trouble: &mut Trouble,
    grace: Duration,
) -> Result<Option<String>> {
    let who = format!("container {} (service {})", event.name, event.service);
    match event.action.as_str() {
        "die" | "oom" => {
            // Gone already: a container of an earlier run, removed by its `compose down`.
            let Ok(exit) = engine.exit(&event.id).await else {
                return Ok(None);
            };
            let what = if exit.oom_killed || event.action == "oom" {
                format!("{who} was killed for lack of memory (OOM)")
            } else {
                format!("{who} exited with code {}", exit.code)
            };
            if exit.restarts {
                tracing::warn!("{what}; its restart policy should bring it back");
                trouble
                    .deadlines
                    .insert(event.id.clone(), (Instant::now() + grace, what));
            } else if exit.code != 0 || exit.oom_killed || event.action == "oom" {
                return Ok(Some(format!(
                    "{what} and its restart policy does not restart it"
                )));
            }
        }
        "health_status: unhealthy" => {
            trouble
                .deadlines
                .entry(event.id.clone())
                .or_insert_with(|| (Instant::now() + grace, format!("{who} is unhealthy")));
        }
        _ => {}
    }
    Ok(None)
}

/// Runs the stack until SIGTERM (Ok) or until it fails for good (Err).
pub fn run(root: &Root, stack: &Stack) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(supervise(root, stack))
}

async fn supervise(root: &Root, stack: &Stack) -> Result<()> {
    let since = unix_now();
    let mut notifier = Notifier::new();
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let engine = Arc::new(Engine::connect()?);
    engine.version().await?;

    notifier.status("checking networks");
    let networks: Vec<&str> = stack.external_networks().collect();
    for line in ensure_networks(&engine, root, &networks)
        .await
        .inspect_err(|e| {
            notifier.status(&format!("failed: {e}"));
        })?
    {
        tracing::info!("network {line}");
    }

    // Replayed from our start: no event of this run can slip by, whenever the stream connects.
    let mut events = engine.events(&stack.name, i64::from(since));
    notifier.status("starting containers (compose up)");
    tokio::select! {
        result = run_compose(root, stack, &["up", "--detach", "--remove-orphans"]) => {
            if let Err(e) = result {
                notifier.status(&format!("failed: {e}"));
                return Err(e);
            }
        }
        _ = terminate.recv() => return shut_down(root, stack, &mut notifier).await,
        _ = interrupt.recv() => return shut_down(root, stack, &mut notifier).await,
    }

    let mut logs = LogForwarder {
        journal: Journal::connect().map(Arc::new),
        stack: stack.name.clone(),
        tasks: HashMap::new(),
    };
    let watchdog = sd_notify::watchdog_enabled()
        .map(|usec| usec / 2)
        .filter(|half| !half.is_zero());
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let grace = root.settings.failure_grace;
    let mut trouble = Trouble::default();
    let mut ready = false;
    loop {
        let containers = engine.containers(Some(&stack.name)).await?;
        logs.follow(&engine, &containers, since);
        // Only containers that still exist and are still in trouble keep their grace period.
        trouble
            .deadlines
            .retain(|id, _| containers.iter().any(|c| &c.id == id && c.in_trouble()));
        match readiness(stack, &containers) {
            Readiness::Ready(summary) => {
                notifier.status(&summary);
                if !ready {
                    notifier.send(&[sd_notify::NotifyState::Ready]);
                    tracing::info!("ready: {summary}");
                    ready = true;
                }
            }
            Readiness::Waiting(text) => notifier.status(&text),
        }
        let deadline = trouble.next_deadline();
        let failure = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => judge(&engine, &event, &mut trouble, grace).await?,
                Some(Err(e)) => Some(format!("{e}")),
                None => Some("the engine closed its event stream".to_string()),
            },
            () = sleep_until(deadline) => {
                let now = Instant::now();
                let expired: Vec<(String, String)> = trouble
                    .deadlines
                    .iter()
                    .filter(|(_, (at, _))| *at <= now)
                    .map(|(id, (_, why))| (id.clone(), why.clone()))
                    .collect();
                for (id, _) in &expired {
                    trouble.deadlines.remove(id);
                }
                let containers = engine.containers(Some(&stack.name)).await?;
                expired
                    .into_iter()
                    .find(|(id, _)| containers.iter().any(|c| &c.id == id && c.in_trouble()))
                    .map(|(_, why)| format!("{why} and did not recover within {}", crate::duration::format(grace)))
            },
            _ = watchdog_tick.tick() => {
                if watchdog.is_some() {
                    notifier.send(&[sd_notify::NotifyState::Watchdog]);
                }
                None
            },
            _ = terminate.recv() => return shut_down(root, stack, &mut notifier).await,
            _ = interrupt.recv() => return shut_down(root, stack, &mut notifier).await,
        };
        if let Some(reason) = failure {
            notifier.status(&format!("failed: {reason}"));
            tracing::error!("{reason}; bringing the stack down so systemd can restart it");
            let _ = compose_down(root, stack).await;
            bail!("stack {}: {reason}", stack.name);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Stops and removes the project's containers and networks, never its volumes. By project name
/// alone, so it works even when the compose file changed or its directory is gone.
async fn compose_down(root: &Root, stack: &Stack) -> Result<()> {
    let settings = &root.settings;
    let status = Command::new(&settings.compose[0])
        .args(&settings.compose[1..])
        .args(["--project-name", &stack.name, "down", "--remove-orphans"])
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("cannot run `{}`", settings.compose.join(" ")))?;
    if !status.success() {
        bail!("`{} down` failed ({status})", settings.compose.join(" "));
    }
    Ok(())
}

/// SIGTERM: stop and remove the containers (never the volumes), then exit 0.
async fn shut_down(root: &Root, stack: &Stack, notifier: &mut Notifier) -> Result<()> {
    notifier.send(&[sd_notify::NotifyState::Stopping]);
    notifier.status("stopping (compose down)");
    compose_down(root, stack).await
}

/// Sets up composectl's own logging for `run`: to the journal with the stack as a field when
/// journald listens, else to stderr.
pub fn init_logging(stack: &str) {
    use tracing_subscriber::prelude::*;
    let journald = tracing_journald::layer().ok().map(|layer| {
        layer
            .with_syslog_identifier("composectl".into())
            .with_field_prefix(Some("COMPOSECTL".into()))
            .with_custom_fields([("COMPOSECTL_STACK", stack), ("COMPOSE_PROJECT", stack)])
    });
    let stderr = journald
        .is_none()
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    // Only composectl's own messages: the HTTP and D-Bus crates are chatty at debug level.
    let filter =
        tracing_subscriber::filter::Targets::new().with_target("composectl", tracing::Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(journald)
        .with(stderr)
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose::Service;

    fn stack(ready: Ready) -> Stack {
        let service = |name: &str, profiles: &[&str]| Service {
            name: name.into(),
            healthcheck: false,
            container_name: None,
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
            networks: Vec::new(),
            line: 1,
        };
        Stack {
            name: "s".into(),
            dir: "/r/stacks/s".into(),
            compose_file: "/r/stacks/s/compose.yaml".into(),
            description: String::new(),
            requires: Vec::new(),
            wants: Vec::new(),
            ready,
            start_timeout: Duration::from_secs(1),
            restart_sec: Duration::from_secs(1),
            services: vec![
                service("db", &[]),
                service("web", &[]),
                service("tools", &["debug"]),
            ],
            networks: Vec::new(),
            env_files: Vec::new(),
            dependency_lines: BTreeMap::new(),
        }
    }

    fn container(
        service: &str,
        running: bool,
        health: Option<&str>,
        exit_code: Option<i64>,
    ) -> Container {
        Container {
            id: format!("{service}-id"),
            name: format!("s-{service}-1"),
            project: "s".into(),
            service: service.into(),
            running,
            health: health.map(str::to_string),
            exit_code,
        }
    }

    #[test]
    fn ready_means_running_and_healthy_except_profiles() {
        let s = stack(Ready::Healthy);
        assert_eq!(
            readiness(&s, &[container("db", true, Some("starting"), None)]),
            Readiness::Waiting("waiting for db (starting), web (not created)".into())
        );
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", true, None, None)
                ]
            ),
            Readiness::Ready("2/2 running, 1 healthy".into())
        );
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", false, None, Some(1))
                ]
            ),
            Readiness::Waiting("waiting for web (exited)".into())
        );
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", false, None, Some(0))
                ]
            ),
            Readiness::Ready("2/2 running, 1 healthy".into())
        );
    }

    #[test]
    fn ready_running_ignores_health() {
        let s = stack(Ready::Running);
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("starting"), None),
                    container("web", true, None, None)
                ]
            ),
            Readiness::Ready("2/2 running, 0 healthy".into())
        );
    }
}
