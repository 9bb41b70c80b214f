//! Deploying translated stacks to a swarm, layer by layer, and reading or removing them again.
//!
//! A layer is deployed once every service of the stacks it depends on has its tasks running;
//! swarm reports a task with a healthcheck as running only once it is healthy (until then it
//! stays `starting`), so "running" is "ready" here, read from the manager's task list. Within a
//! stack, services are deployed in waves by `depends_on`. All waiting is bounded by each stack's
//! start timeout (stop timeout for removal); the engine is polled, since the task states a
//! manager keeps are not in its event stream.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, anyhow};
use bollard::models::TaskState;
use futures_util::future::join_all;
use serde::Serialize;
use tokio::time::Instant;

use super::stack_cli;
use super::translate::Translation;
use crate::engine::{Engine, Kind, StackObject, SwarmService, SwarmTask};

/// How often task states are read while waiting.
const POLL: Duration = Duration::from_millis(200);
/// Tasks of one service that may fail during a deploy before it counts as failed (swarm would
/// go on replacing them): a crash or a failing healthcheck shows by the third.
const FAILED_TASKS: usize = 3;
/// How long the tasks of a service without a healthcheck must keep running before it counts as
/// ready (swarm's own default `update_config.monitor`): one that crashes at once would
/// otherwise look ready between its restarts.
const STABLE: Duration = Duration::from_secs(5);

/// A service as `status` and `deploy` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub service: String,
    pub mode: String,
    /// Tasks running (healthy, where there is a healthcheck) of those desired.
    pub running: u64,
    pub desired: u64,
    pub healthcheck: bool,
    pub ready: bool,
    /// The nodes the running tasks are on.
    pub nodes: Vec<String>,
    /// Why it is not ready: the state or error of a task, a stopped update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}/{} running",
            self.service, self.running, self.desired
        )?;
        if self.healthcheck {
            write!(f, " and healthy")?;
        }
        if let Some(problem) = &self.problem {
            write!(f, "; {problem}")?;
        }
        Ok(())
    }
}

/// A stack's services as the swarm has them, from one read of its services and tasks.
pub struct Snapshot {
    services: Vec<SwarmService>,
    tasks: Vec<SwarmTask>,
    nodes: BTreeMap<String, String>,
}

impl Snapshot {
    pub async fn read(
        engine: &Engine,
        stack: &str,
        nodes: &BTreeMap<String, String>,
    ) -> Result<Snapshot> {
        Ok(Snapshot {
            services: engine.stack_services(Some(stack)).await?,
            tasks: engine.stack_tasks(stack, true).await?,
            nodes: nodes.clone(),
        })
    }

    pub fn services(&self) -> impl Iterator<Item = &SwarmService> {
        self.services.iter()
    }

    fn node(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.chars().take(12).collect())
    }

    fn tasks_of<'s>(&'s self, service: &'s SwarmService) -> impl Iterator<Item = &'s SwarmTask> {
        self.tasks
            .iter()
            .filter(move |t| t.service_id == service.id)
    }

    /// A task in words: `task app.1 on swarm-2 failed: task: non-zero exit (3)`.
    fn describe(&self, service: &SwarmService, task: &SwarmTask) -> String {
        let slot = task.slot.map(|s| format!(".{s}")).unwrap_or_default();
        let node = if task.node_id.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.node(&task.node_id))
        };
        let state = task.state.to_string();
        let detail = match task.error.as_deref() {
            Some(error) => format!(": {error}"),
            None if !task.message.is_empty() && task.message != state => {
                format!(": {}", task.message)
            }
            None => String::new(),
        };
        format!("task {}{slot}{node} {state}{detail}", service.service)
    }

    pub fn state(&self, service: &SwarmService) -> ServiceState {
        let current: Vec<&SwarmTask> = self
            .tasks_of(service)
            .filter(|t| t.desired == TaskState::RUNNING || t.desired == TaskState::COMPLETE)
            .collect();
        let running = current.iter().filter(|t| t.running()).count() as u64;
        let mut nodes: Vec<String> = current
            .iter()
            .filter(|t| t.running())
            .map(|t| self.node(&t.node_id))
            .collect();
        nodes.sort();
        nodes.dedup();
        let updating = matches!(
            service.update.as_deref(),
            Some("updating" | "paused" | "rollback_started" | "rollback_paused")
        );
        let ready = if service.mode.ends_with("-job") {
            !current.is_empty() && current.iter().all(|t| t.state == TaskState::COMPLETE)
        } else {
            running >= service.desired && !updating
        };
        let problem = if ready {
            None
        } else if let (true, Some(message)) = (updating, &service.update_message) {
            Some(format!(
                "update {}: {message}",
                service.update.as_deref().unwrap_or("")
            ))
        } else {
            current
                .iter()
                .find(|t| !t.running())
                .map(|t| self.describe(service, t))
                .or_else(|| {
                    self.tasks_of(service)
                        .find(|t| t.failed())
                        .map(|t| self.describe(service, t))
                })
        };
        ServiceState {
            service: service.service.clone(),
            mode: service.mode.clone(),
            running,
            desired: service.desired,
            healthcheck: service.healthcheck,
            ready,
            nodes,
            problem,
        }
    }

    /// Why the deploy of `service` has failed, if it has: its tasks keep failing (counting only
    /// tasks that are not in `before`), or swarm stopped or rolled back its update.
    fn failure(&self, service: &SwarmService, before: &BTreeSet<String>) -> Option<String> {
        if let Some(state @ ("paused" | "rollback_completed" | "rollback_paused")) =
            service.update.as_deref()
        {
            return Some(format!(
                "service {}: update {state}: {}",
                service.service,
                service.update_message.as_deref().unwrap_or("")
            ));
        }
        let failed: Vec<&SwarmTask> = self
            .tasks_of(service)
            .filter(|t| t.failed() && !before.contains(&t.id))
            .collect();
        let limit = if service.never_restarts {
            1
        } else {
            FAILED_TASKS
        };
        (failed.len() >= limit).then(|| {
            format!(
                "service {}: {} ({} failed task{})",
                service.service,
                self.describe(service, failed[failed.len() - 1]),
                failed.len(),
                if failed.len() == 1 { "" } else { "s" }
            )
        })
    }
}

/// How one stack's deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ready,
    Failed,
    /// Not deployed: a stack it requires failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackResult {
    pub stack: String,
    pub layer: usize,
    pub outcome: Outcome,
    /// From the first `docker stack deploy` of the stack until every service was ready.
    pub seconds: f64,
    pub services: Vec<ServiceState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stack to deploy: its translation, the stacks it requires, its start timeout.
pub struct Planned {
    pub translation: Translation,
    pub requires: Vec<String>,
    pub timeout: Duration,
}

/// A layer's stacks, deployed together.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub layer: usize,
    /// Until its last stack was ready (or failed).
    pub seconds: f64,
    pub stacks: Vec<StackResult>,
}

/// Deploys `layers` in order; each stack of a layer once every stack it requires is ready.
/// `update`: every service gets new tasks (the nodes pull its image again), not only those
/// whose spec changed. A stack whose required stack failed is skipped; one that only wants it
/// is deployed.
pub async fn deploy(
    engine: &Engine,
    layers: &[Vec<Planned>],
    update: bool,
    progress: &dyn Fn(&str),
) -> Result<Vec<LayerResult>> {
    let nodes = engine.node_names().await?;
    let mut done: Vec<LayerResult> = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let started = Instant::now();
        let results: Vec<&StackResult> = done.iter().flat_map(|l| &l.stacks).collect();
        let runs = layer.iter().map(|planned| {
            let blocked = planned.requires.iter().find(|r| {
                results
                    .iter()
                    .any(|done| &done.stack == *r && done.outcome != Outcome::Ready)
            });
            let nodes = &nodes;
            async move {
                let stack = planned.translation.stack.clone();
                if let Some(required) = blocked {
                    return StackResult {
                        stack,
                        layer: index + 1,
                        outcome: Outcome::Skipped,
                        seconds: 0.0,
                        services: Vec::new(),
                        error: Some(format!(
                            "not deployed: it requires {required}, which is not ready"
                        )),
                    };
                }
                let started = Instant::now();
                let deployed = deploy_stack(engine, planned, update, nodes, progress).await;
                let seconds = started.elapsed().as_secs_f64();
                let (outcome, error) = match &deployed {
                    Ok(()) => (Outcome::Ready, None),
                    Err(e) => (Outcome::Failed, Some(format!("{e:#}"))),
                };
                let services = match Snapshot::read(engine, &stack, nodes).await {
                    Ok(snapshot) => snapshot.services().map(|s| snapshot.state(s)).collect(),
                    Err(_) => Vec::new(),
                };
                progress(&match &error {
                    None => format!("  {stack}: ready in {seconds:.1}s"),
                    Some(e) => format!("  {stack}: failed after {seconds:.1}s: {e}"),
                });
                StackResult {
                    stack,
                    layer: index + 1,
                    outcome,
                    seconds,
                    services,
                    error,
                }
            }
        });
        let stacks = join_all(runs).await;
        done.push(LayerResult {
            layer: index + 1,
            seconds: started.elapsed().as_secs_f64(),
            stacks,
        });
    }
    Ok(done)
}

async fn deploy_stack(
    engine: &Engine,
    planned: &Planned,
    update: bool,
    nodes: &BTreeMap<String, String>,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let translation = &planned.translation;
    let stack = translation.stack.as_str();
    let deadline = Instant::now() + planned.timeout;
    for object in &translation.objects {
        engine
            .create_stack_object(
                object.kind,
                stack,
                &object.name,
                &object.data,
                &object.labels,
            )
            .await?;
    }
    let dir = translation
        .file
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string();
    let mut deployed = BTreeSet::new();
    for (index, wave) in translation.waves.iter().enumerate() {
        deployed.extend(wave.iter().cloned());
        let before: BTreeSet<String> = engine
            .stack_tasks(stack, false)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        // A deploy keeps the services' update stamps (a changed one would replace their
        // tasks); an update gives this wave's services a new one.
        let mut stamps: BTreeMap<String, String> = engine
            .stack_services(Some(stack))
            .await?
            .into_iter()
            .filter_map(|s| Some((s.service, s.update_stamp?)))
            .collect();
        if update {
            for service in wave {
                stamps.insert(service.clone(), stamp.clone());
            }
        }
        let last = index + 1 == translation.waves.len();
        progress(&format!("  {stack}: deploying {}", wave.join(", ")));
        let remaining = deadline.saturating_duration_since(Instant::now());
        stack_cli::deploy(
            engine.socket(),
            stack,
            dir,
            &translation.yaml(Some(&deployed), &stamps),
            translation.local_images,
            last,
            remaining,
        )
        .await?;
        wait_ready(
            engine,
            stack,
            wave,
            &before,
            deadline,
            planned.timeout,
            nodes,
            progress,
        )
        .await?;
    }
    // Earlier versions of the stack's configs and secrets, now that no task uses them.
    let current: BTreeSet<&str> = translation
        .objects
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    for object in engine.stack_objects(stack).await? {
        if object.kind != Kind::Network && !current.contains(object.name.as_str()) {
            engine.remove_stack_object(&object).await?;
        }
    }
    Ok(())
}

/// Waits until every service of `wave` is ready; fails early when one keeps failing.
#[allow(clippy::too_many_arguments)]
async fn wait_ready(
    engine: &Engine,
    stack: &str,
    wave: &[String],
    before: &BTreeSet<String>,
    deadline: Instant,
    timeout: Duration,
    nodes: &BTreeMap<String, String>,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let mut said = String::new();
    let mut running_since: BTreeMap<&str, Instant> = BTreeMap::new();
    loop {
        let snapshot = tokio::time::timeout_at(deadline, Snapshot::read(engine, stack, nodes))
            .await
            .map_err(|_| {
                anyhow!(
                    "stack {stack} was not ready within {}: the engine did not answer",
                    crate::duration::format(timeout)
                )
            })??;
        let mut waiting = Vec::new();
        for name in wave {
            let Some(service) = snapshot.services().find(|s| &s.service == name) else {
                waiting.push(format!("{name}: not created yet"));
                continue;
            };
            if let Some(failure) = snapshot.failure(service, before) {
                return Err(anyhow!("{failure}"));
            }
            let state = snapshot.state(service);
            if !state.ready {
                running_since.remove(name.as_str());
                waiting.push(state.to_string());
            } else if !state.healthcheck {
                let since = *running_since.entry(name).or_insert_with(Instant::now);
                if since.elapsed() < STABLE {
                    waiting.push(format!(
                        "{name}: running, no healthcheck: watching it for {}s",
                        STABLE.as_secs()
                    ));
                }
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "stack {stack} was not ready within {}: {}",
                crate::duration::format(timeout),
                waiting.join("; ")
            ));
        }
        let text = format!("  {stack}: waiting for {}", waiting.join("; "));
        if text != said {
            progress(&text);
            said = text;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What `remove` took away from one stack.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub stack: String,
    pub services: Vec<String>,
    pub objects: Vec<StackObject>,
}

/// Removes a stack: its services, then (once their tasks are gone) its networks, configs and
/// secrets. Bounded by `limit`.
pub async fn remove(engine: &Engine, stack: &str, limit: Duration) -> Result<Removed> {
    let deadline = Instant::now() + limit;
    let services = engine.stack_services(Some(stack)).await?;
    for service in &services {
        engine.remove_service(service).await?;
    }
    loop {
        let live = engine
            .stack_tasks(stack, false)
            .await?
            .into_iter()
            .filter(|t| {
                !matches!(
                    t.state,
                    TaskState::COMPLETE
                        | TaskState::SHUTDOWN
                        | TaskState::FAILED
                        | TaskState::REJECTED
                        | TaskState::REMOVE
                        | TaskState::ORPHANED
                )
            })
            .count();
        if live == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "{live} task(s) of stack {stack} were still running after {}",
                crate::duration::format(limit)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let objects = engine.stack_objects(stack).await?;
    remove_objects(engine, &objects, deadline, limit).await?;
    Ok(Removed {
        stack: stack.to_string(),
        services: services.into_iter().map(|s| s.service).collect(),
        objects,
    })
}

/// Removes objects, retrying those still in use (a network whose endpoints the nodes have not
/// released yet) until `deadline`.
pub async fn remove_objects(
    engine: &Engine,
    objects: &[StackObject],
    deadline: Instant,
    limit: Duration,
) -> Result<()> {
    let mut left: Vec<&StackObject> = objects.iter().collect();
    loop {
        let mut busy = Vec::new();
        for object in left {
            if !engine.remove_stack_object(object).await? {
                busy.push(object);
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = busy
                .iter()
                .map(|o| format!("{} {}", o.kind.word(), o.name))
                .collect();
            return Err(anyhow!(
                "still in use after {}: {}",
                crate::duration::format(limit),
                names.join(", ")
            ));
        }
        left = busy;
        tokio::time::sleep(POLL).await;
    }
}
