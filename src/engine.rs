//! The Docker engine, through its API on the unix socket (bollard): networks, the containers of
//! a compose project, their events and their logs. Nothing here parses CLI output.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;

use anyhow::{Context, Result, anyhow};
use bollard::query_parameters::{
    EventsOptions, InspectNetworkOptions, ListContainersOptions, LogsOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::{Stream, StreamExt};

use crate::config::networks::NetworkSpec;

/// Compose's labels on the containers it creates.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// The oldest API with everything composectl uses (Docker 20.10); newer engines accept it.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

pub struct Engine {
    docker: Docker,
    socket: String,
}

/// A container of a compose project, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    pub running: bool,
    /// `None` without a healthcheck; else "starting", "healthy" or "unhealthy".
    pub health: Option<String>,
    /// The exit code of a stopped container.
    pub exit_code: Option<i64>,
}

impl Container {
    pub fn healthy(&self) -> bool {
        self.health.as_deref() == Some("healthy")
    }

    /// Stopped (for a reason other than finishing its job) or failing its healthcheck.
    pub fn in_trouble(&self) -> bool {
        (!self.running && self.exit_code != Some(0)) || self.health.as_deref() == Some("unhealthy")
    }
}

/// What the engine says about a container that stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    pub oom_killed: bool,
    /// The restart policy will bring it back (`always`, `unless-stopped`, `on-failure` after a
    /// non-zero exit).
    pub restarts: bool,
    pub running: bool,
    pub health: Option<String>,
}

/// A container event of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub service: String,
    /// `start`, `die`, `oom`, `health_status: healthy`, ...
    pub action: String,
    pub time_nano: i64,
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;
pub type LogStream = Pin<Box<dyn Stream<Item = Result<(bool, Vec<u8>)>> + Send>>;

/// How a network on the engine differs from networks.toml, as sentences.
pub fn network_drift(spec: &NetworkSpec, actual: &bollard::models::NetworkInspect) -> Vec<String> {
    let mut drift = Vec::new();
    let driver = actual.driver.clone().unwrap_or_default();
    if driver != spec.driver {
        drift.push(format!(
            "driver is {driver}, networks.toml says {}",
            spec.driver
        ));
    }
    let internal = actual.internal.unwrap_or(false);
    if internal != spec.internal {
        drift.push(format!(
            "internal is {internal}, networks.toml says {}",
            spec.internal
        ));
    }
    let configs = actual
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    match configs.iter().find(|c| {
        c.subnet
            .as_deref()
            .and_then(|s| s.parse::<ipnet::IpNet>().ok())
            == Some(spec.subnet)
    }) {
        None => {
            let subnets: Vec<_> = configs.iter().filter_map(|c| c.subnet.clone()).collect();
            drift.push(format!(
                "subnet is {}, networks.toml says {}",
                if subnets.is_empty() {
                    "unset".to_string()
                } else {
                    subnets.join(", ")
                },
                spec.subnet
            ));
        }
        Some(config) => {
            let gateway = config.gateway.clone().unwrap_or_default();
            if !gateway.is_empty() && gateway.parse().ok() != Some(spec.gateway) {
                drift.push(format!(
                    "gateway is {gateway}, networks.toml says {}",
                    spec.gateway
                ));
            }
        }
    }
    let labels = actual.labels.clone().unwrap_or_default();
    for (key, value) in &spec.labels {
        match labels.get(key) {
            Some(v) if v == value => {}
            Some(v) => drift.push(format!(
                "label {key} is {v:?}, networks.toml says {value:?}"
            )),
            None => drift.push(format!("label {key} is missing")),
        }
    }
    drift
}

fn project_filter(project: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match project {
        Some(project) => format!("{PROJECT_LABEL}={project}"),
        None => PROJECT_LABEL.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// The health word at the end of a list entry's status ("Up 3 seconds (healthy)"): the list
/// endpoint has no structured health before API 1.52.
fn health_from_status(status: &str) -> Option<String> {
    let inner = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let word = inner.strip_prefix("health: ").unwrap_or(inner);
    matches!(word, "healthy" | "unhealthy" | "starting").then(|| word.to_string())
}

/// The code in a stopped container's status ("Exited (137) 2 seconds ago").
fn exit_code_from_status(status: &str) -> Option<i64> {
    status
        .strip_prefix("Exited (")?
        .split_once(')')?
        .0
        .parse()
        .ok()
}

impl Engine {
    /// Connects to `$DOCKER_HOST` (unix sockets only) or /var/run/docker.sock.
    pub fn connect() -> Result<Engine> {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => host
                .strip_prefix("unix://")
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "DOCKER_HOST={host}: composectl talks to the engine over a unix socket only"
                    )
                })?,
            _ => "/var/run/docker.sock".to_string(),
        };
        let docker = Docker::connect_with_unix(&socket, 120, &API_VERSION)
            .with_context(|| format!("cannot use the Docker engine socket {socket}"))?;
        Ok(Engine { docker, socket })
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// The engine's version; fails with a hint when it does not answer.
    pub async fn version(&self) -> Result<String> {
        let version = self.docker.version().await.map_err(|e| {
            anyhow!(
                "the Docker engine does not answer on {}: {e}; is dockerd running (systemctl start docker)?",
                self.socket
            )
        })?;
        Ok(version.version.unwrap_or_default())
    }

    pub async fn network(&self, name: &str) -> Result<Option<bollard::models::NetworkInspect>> {
        match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(network) => Ok(Some(network)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(anyhow!("cannot inspect network {name}: {e}")),
        }
    }

    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<()> {
        let request = bollard::models::NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(spec.driver.clone()),
            internal: Some(spec.internal),
            enable_ipv6: Some(spec.subnet.addr().is_ipv6()),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some(spec.subnet.to_string()),
                    gateway: Some(spec.gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|e| anyhow!("cannot create network {} ({}): {e}", spec.name, spec.subnet))?;
        Ok(())
    }

    /// The containers of one compose project, or of every project, from one API call.
    pub async fn containers(&self, project: Option<&str>) -> Result<Vec<Container>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(project_filter(project)),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list containers: {e}"))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                Container {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    project: labels.get(PROJECT_LABEL).cloned().unwrap_or_default(),
                    service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                    health: c.status.as_deref().and_then(health_from_status),
                    exit_code: c.status.as_deref().and_then(exit_code_from_status),
                }
            })
            .collect())
    }

    /// Inspects one container for why it stopped and whether it comes back by itself.
    pub async fn exit(&self, id: &str) -> Result<Exit> {
        let detail = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| anyhow!("cannot inspect container {id}: {e}"))?;
        let state = detail.state.unwrap_or_default();
        let code = state.exit_code.unwrap_or(0);
        let policy = detail
            .host_config
            .and_then(|h| h.restart_policy)
            .and_then(|p| p.name)
            .unwrap_or(bollard::models::RestartPolicyNameEnum::NO);
        use bollard::models::RestartPolicyNameEnum as Policy;
        let restarts = match policy {
            Policy::ALWAYS | Policy::UNLESS_STOPPED => true,
            Policy::ON_FAILURE => code != 0,
            Policy::NO | Policy::EMPTY => false,
        };
        Ok(Exit {
            code,
            oom_killed: state.oom_killed.unwrap_or(false),
            restarts,
            running: state.running.unwrap_or(false) || state.restarting.unwrap_or(false),
            health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
        })
    }

    /// Container events of a project from `since` (unix seconds) on. The request is only made
    /// when the stream is first polled; `since` makes the engine replay what happened before.
    pub fn events(&self, project: &str, since: i64) -> EventStream {
        let mut filters = project_filter(Some(project));
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptions {
            filters: Some(filters),
            since: Some(since.to_string()),
            ..Default::default()
        };
        Box::pin(self.docker.events(Some(options)).map(|message| {
            let message = message.map_err(|e| anyhow!("the engine's event stream failed: {e}"))?;
            let actor = message.actor.unwrap_or_default();
            let attributes: BTreeMap<String, String> =
                actor.attributes.unwrap_or_default().into_iter().collect();
            Ok(Event {
                id: actor.id.unwrap_or_default(),
                service: attributes.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                name: attributes.get("name").cloned().unwrap_or_default(),
                action: message.action.unwrap_or_default(),
                time_nano: message.time_nano.unwrap_or(0),
            })
        }))
    }

    /// A container's output from `since` (unix seconds) on, following it: (is stderr, bytes).
    pub fn logs(&self, id: &str, since: i32) -> LogStream {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since,
            ..Default::default()
        };
        Box::pin(self.docker.logs(id, Some(options)).map(|chunk| {
            use bollard::container::LogOutput;
            match chunk.map_err(|e| anyhow!("log stream failed: {e}"))? {
                LogOutput::StdErr { message } => Ok((true, message.to_vec())),
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message } => Ok((false, message.to_vec())),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_read_from_the_status_text() {
        assert_eq!(
            health_from_status("Up 3 seconds (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(
            health_from_status("Up 2 minutes (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(health_from_status("Up 2 minutes"), None);
        assert_eq!(health_from_status("Exited (1) 3 seconds ago"), None);
        assert_eq!(
            exit_code_from_status("Exited (137) 3 seconds ago"),
            Some(137)
        );
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }

    #[test]
    fn drift_names_each_difference() {
        let spec = NetworkSpec {
            name: "db".into(),
            subnet: "172.22.0.0/24".parse().unwrap(),
            gateway: "172.22.0.1".parse().unwrap(),
            internal: true,
            driver: "bridge".into(),
            labels: BTreeMap::from([("purpose".into(), "db".into())]),
            line: 1,
        };
        let actual = bollard::models::NetworkInspect {
            driver: Some("bridge".into()),
            internal: Some(false),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some("172.29.0.0/24".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let drift = network_drift(&spec, &actual);
        assert_eq!(
            drift,
            [
                "internal is false, networks.toml says true",
                "subnet is 172.29.0.0/24, networks.toml says 172.22.0.0/24",
                "label purpose is missing"
            ]
        );
    }
}
