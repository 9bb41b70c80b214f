//! A swarm through the engine API: whether the engine manages one, a stack's services and their
//! tasks, the nodes, and what else a stack owns (its networks, configs and secrets). Only
//! `docker stack deploy` needs the docker CLI (`swarm::stack_cli`); everything read or removed
//! here goes through the API, bounded like every other request.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Result, anyhow};
use base64::Engine as _;
use bollard::models::{TaskSpecRestartPolicyConditionEnum, TaskState};
use bollard::query_parameters::{
    ListConfigsOptions, ListNetworksOptions, ListNodesOptions, ListSecretsOptions,
    ListServicesOptions, ListTasksOptions,
};

use super::Engine;

/// The label `docker stack deploy` puts on everything of a stack: services, networks, configs,
/// secrets, and the containers of its tasks.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// A service label composectl sets on services whose compose file has a healthcheck. The API
/// has the healthcheck itself, but bollard's model misses it (the engine writes `Healthcheck`,
/// the model reads `HealthCheck`).
pub const HEALTHCHECK_LABEL: &str = "org.composectl.healthcheck";
/// A container label `composectl swarm update` changes to give a service new tasks: a changed
/// container spec is what makes swarm replace tasks (a spec read and written back through
/// bollard's model would lose its healthcheck).
pub const UPDATE_LABEL: &str = "org.composectl.update";

/// Where an engine stands in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmState {
    /// inactive, pending, active, error, locked.
    pub state: String,
    pub manager: bool,
    pub nodes: i64,
    pub managers: i64,
}

/// A service of a stack, as the swarm's manager reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwarmService {
    #[serde(skip)]
    pub id: String,
    /// The stack it belongs to.
    #[serde(skip)]
    pub stack: String,
    /// The compose service's name (the swarm's name without `STACK_`).
    pub service: String,
    /// replicated, global, replicated-job or global-job.
    pub mode: String,
    /// How many tasks should run (replicas; for global services, the eligible nodes).
    pub desired: u64,
    pub healthcheck: bool,
    /// The value of [`UPDATE_LABEL`], which a deploy keeps.
    #[serde(skip)]
    pub update_stamp: Option<String>,
    /// Its restart policy never restarts a task, so one failure is final.
    #[serde(skip)]
    pub never_restarts: bool,
    /// A rolling update in progress or stopped: updating, paused, rollback_started, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    #[serde(skip)]
    pub update_message: Option<String>,
}

/// A task of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmTask {
    pub id: String,
    pub service_id: String,
    pub slot: Option<i64>,
    pub node_id: String,
    /// What the swarm wants: running, shutdown, ...
    pub desired: TaskState,
    /// Where the task is: pending, starting (health not yet passed), running, failed, ...
    pub state: TaskState,
    pub error: Option<String>,
    pub message: String,
}

impl SwarmTask {
    pub fn running(&self) -> bool {
        self.state == TaskState::RUNNING && self.desired == TaskState::RUNNING
    }

    /// Ended badly: the task failed (exit, unhealthy) or no node would take it.
    pub fn failed(&self) -> bool {
        matches!(self.state, TaskState::FAILED | TaskState::REJECTED)
    }
}

/// Something else a stack owns on the swarm: a network, config or secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackObject {
    pub kind: Kind,
    pub name: String,
    #[serde(skip)]
    id: String,
}

impl StackObject {
    /// A network by name (the API takes names where it takes ids).
    pub fn network(name: &str) -> StackObject {
        StackObject {
            kind: Kind::Network,
            name: name.to_string(),
            id: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Network,
    Config,
    Secret,
}

fn stack_filter(stack: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match stack {
        Some(stack) => format!("{STACK_LABEL}={stack}"),
        None => STACK_LABEL.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

fn mode_of(mode: Option<&bollard::models::ServiceSpecMode>) -> String {
    match mode {
        Some(m) if m.global.is_some() => "global",
        Some(m) if m.replicated_job.is_some() => "replicated-job",
        Some(m) if m.global_job.is_some() => "global-job",
        _ => "replicated",
    }
    .to_string()
}

impl Engine {
    /// Where this engine stands in a swarm.
    pub async fn swarm_state(&self) -> Result<SwarmState> {
        let info = self.docker.info().await.map_err(|e| {
            anyhow!(
                "the Docker engine does not answer on {}: {e}; is dockerd running?",
                self.socket
            )
        })?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(SwarmState {
            state: swarm
                .local_node_state
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "inactive".into()),
            manager: swarm.control_available == Some(true),
            nodes: swarm.nodes.unwrap_or(0),
            managers: swarm.managers.unwrap_or(0),
        })
    }

    /// The swarm this engine is a manager of; otherwise an error that says how to get one.
    pub async fn swarm_manager(&self) -> Result<SwarmState> {
        let swarm = self.swarm_state().await?;
        if swarm.state != "active" {
            return Err(anyhow!(
                "the Docker engine on {} is not part of a swarm (state: {}): `docker swarm init` makes it \
                 a single-node swarm manager, or point DOCKER_HOST at a manager of your swarm",
                self.socket,
                swarm.state
            ));
        }
        if !swarm.manager {
            return Err(anyhow!(
                "the Docker engine on {} is a swarm worker; composectl deploys through a manager: \
                 point DOCKER_HOST at one (`docker node ls` on a manager lists them)",
                self.socket
            ));
        }
        Ok(swarm)
    }

    /// The services of one stack, or of every stack, with their desired task counts.
    pub async fn stack_services(&self, stack: Option<&str>) -> Result<Vec<SwarmService>> {
        let options = ListServicesOptions {
            filters: Some(stack_filter(stack)),
            status: Some(true),
        };
        let services = self
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list the swarm's services: {e}"))?;
        Ok(services
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                let labels = spec.labels.clone().unwrap_or_default();
                let name = spec.name.clone().unwrap_or_default();
                let namespace = labels.get(STACK_LABEL).cloned().unwrap_or_default();
                let task = spec.task_template.unwrap_or_default();
                let update_stamp = task
                    .container_spec
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(UPDATE_LABEL).cloned());
                let update = s
                    .update_status
                    .and_then(|u| Some((u.state?.to_string(), u.message.unwrap_or_default())));
                SwarmService {
                    id: s.id.unwrap_or_default(),
                    stack: namespace.clone(),
                    service: name
                        .strip_prefix(&format!("{namespace}_"))
                        .unwrap_or(&name)
                        .to_string(),
                    mode: mode_of(spec.mode.as_ref()),
                    desired: s
                        .service_status
                        .and_then(|st| st.desired_tasks)
                        .unwrap_or(0),
                    healthcheck: labels.get(HEALTHCHECK_LABEL).is_some_and(|v| v == "true"),
                    update_stamp,
                    never_restarts: task.restart_policy.and_then(|r| r.condition)
                        == Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    update_message: update.as_ref().map(|(_, m)| m.clone()),
                    update: update.map(|(state, _)| state).filter(|s| !s.is_empty()),
                }
            })
            .collect())
    }

    /// The stacks that have services on the swarm.
    pub async fn stacks(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .stack_services(None)
            .await?
            .into_iter()
            .map(|s| s.stack)
            .collect())
    }

    /// The tasks of a stack's services, the finished ones too (failures are among them).
    /// `current`: only tasks of each service's current spec (what the docker CLI waits for with
    /// the engine's `_up-to-date` filter), so a spec just changed is never judged by the tasks
    /// it replaces.
    pub async fn stack_tasks(&self, stack: &str, current: bool) -> Result<Vec<SwarmTask>> {
        let mut filters = stack_filter(Some(stack));
        if current {
            filters.insert("_up-to-date".into(), vec!["true".into()]);
        }
        let options = ListTasksOptions {
            filters: Some(filters),
        };
        let tasks = self
            .docker
            .list_tasks(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list the tasks of stack {stack}: {e}"))?;
        Ok(tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                SwarmTask {
                    id: t.id.unwrap_or_default(),
                    service_id: t.service_id.unwrap_or_default(),
                    slot: t.slot,
                    node_id: t.node_id.unwrap_or_default(),
                    desired: t.desired_state.unwrap_or(TaskState::NEW),
                    state: status.state.unwrap_or(TaskState::NEW),
                    error: status.err.filter(|e| !e.is_empty()),
                    message: status.message.unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The swarm's nodes: id to hostname.
    pub async fn node_names(&self) -> Result<BTreeMap<String, String>> {
        let nodes = self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| anyhow!("cannot list the swarm's nodes: {e}"))?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let hostname = n
                    .description
                    .and_then(|d| d.hostname)
                    .unwrap_or_else(|| "?".into());
                (n.id.unwrap_or_default(), hostname)
            })
            .collect())
    }

    pub async fn remove_service(&self, service: &SwarmService) -> Result<()> {
        match self.docker.delete_service(&service.id).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(anyhow!("cannot remove service {}: {e}", service.service)),
        }
    }

    /// Creates a config or secret of a stack unless one of that name exists (its name carries a
    /// hash of its data, so an existing one holds the same data).
    pub async fn create_stack_object(
        &self,
        kind: Kind,
        stack: &str,
        name: &str,
        data: &[u8],
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut labels: HashMap<String, String> = labels.clone().into_iter().collect();
        labels.insert(STACK_LABEL.into(), stack.into());
        let data = Some(base64::engine::general_purpose::STANDARD.encode(data));
        let created = match kind {
            Kind::Config => self
                .docker
                .create_config(bollard::models::ConfigSpec {
                    name: Some(name.into()),
                    labels: Some(labels),
                    data,
                    ..Default::default()
                })
                .await
                .map(drop),
            Kind::Secret => self
                .docker
                .create_secret(bollard::models::SecretSpec {
                    name: Some(name.into()),
                    labels: Some(labels),
                    data,
                    ..Default::default()
                })
                .await
                .map(drop),
            Kind::Network => return Err(anyhow!("networks are not created here")),
        };
        match created {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(anyhow!("cannot create {} {name}: {e}", kind.word())),
        }
    }

    /// The networks, configs and secrets labelled as the stack's.
    pub async fn stack_objects(&self, stack: &str) -> Result<Vec<StackObject>> {
        let filters = Some(stack_filter(Some(stack)));
        let mut objects = Vec::new();
        let object = |kind, id: Option<String>, name: Option<String>| StackObject {
            kind,
            id: id.unwrap_or_default(),
            name: name.unwrap_or_default(),
        };
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: filters.clone(),
            }))
            .await
            .map_err(|e| anyhow!("cannot list networks: {e}"))?;
        objects.extend(
            networks
                .into_iter()
                .map(|n| object(Kind::Network, n.id, n.name)),
        );
        let configs = self
            .docker
            .list_configs(Some(ListConfigsOptions {
                filters: filters.clone(),
            }))
            .await
            .map_err(|e| anyhow!("cannot list configs: {e}"))?;
        objects.extend(
            configs
                .into_iter()
                .map(|c| object(Kind::Config, c.id, c.spec.and_then(|s| s.name))),
        );
        let secrets = self
            .docker
            .list_secrets(Some(ListSecretsOptions { filters }))
            .await
            .map_err(|e| anyhow!("cannot list secrets: {e}"))?;
        objects.extend(
            secrets
                .into_iter()
                .map(|s| object(Kind::Secret, s.id, s.spec.and_then(|s| s.name))),
        );
        Ok(objects)
    }

    /// Removes one object of a stack; false when it is still in use (a network with endpoints,
    /// a config a task still mounts), which the caller may retry.
    pub async fn remove_stack_object(&self, object: &StackObject) -> Result<bool> {
        let id = &object.id;
        let removed = match object.kind {
            Kind::Network => self.docker.remove_network(id).await,
            Kind::Config => self.docker.delete_config(id).await,
            Kind::Secret => self.docker.delete_secret(id).await,
        };
        match removed {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400 | 403 | 409,
                ..
            }) => Ok(false),
            Err(e) => Err(anyhow!(
                "cannot remove {} {}: {e}",
                object.kind.word(),
                object.name
            )),
        }
    }
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Config => "config",
            Kind::Secret => "secret",
        }
    }
}
