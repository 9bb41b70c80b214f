//! The Docker engine, through its API on the unix socket (bollard): networks, the containers of
//! a compose project, their events and their logs; `swarm` adds a swarm's services, tasks and
//! nodes. Nothing here parses CLI output.
//!
//! Every request is bounded ([`REQUEST_TIMEOUT`]): an engine that hangs (a socket-activated
//! dockerd that is not coming back, a wedged daemon) must never hold a stop or a failure path
//! for minutes. Streams (events, logs) are bounded only until their headers arrive.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bollard::query_parameters::{
    EventsOptions, InspectNetworkOptions, ListContainersOptions, LogsOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::{Stream, StreamExt};

use crate::config::networks::NetworkSpec;
use crate::mode::Mode;

mod swarm_api;
mod volumes;

pub use swarm_api::{HEALTHCHECK_LABEL, Kind, StackObject, SwarmService, SwarmTask, UPDATE_LABEL};
pub use volumes::{Source, VolumeInfo};

/// Compose's labels on the containers it creates.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The hash of the service's configuration the container was created from: compose recreates
/// the container when the files give another one.
pub const CONFIG_HASH_LABEL: &str = "com.docker.compose.config-hash";

/// The oldest API with everything composectl uses (Docker 20.10); newer engines accept it.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// How long any one request may take before the engine counts as not answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the engine may take to answer a probe before it counts as gone.
pub const PROBE: Duration = Duration::from_secs(3);
/// The longest pause between two probes while waiting for the engine.
const RETRY_MAX: Duration = Duration::from_secs(2);

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
    /// The ID of the image it runs (`sha256:...`).
    pub image: String,
    #[serde(skip)]
    pub config_hash: Option<String>,
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

/// Containers summarised: running of total, healthy of those with a healthcheck. The one format
/// for both the supervisor's STATUS= and `composectl status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerSummary {
    pub running: usize,
    pub total: usize,
    pub healthy: usize,
    pub with_healthcheck: usize,
}

impl ContainerSummary {
    pub fn add(&mut self, container: &Container) {
        self.total += 1;
        self.running += usize::from(container.running);
        self.with_healthcheck += usize::from(container.health.is_some());
        self.healthy += usize::from(container.healthy());
    }
}

impl std::fmt::Display for ContainerSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} running", self.running, self.total)?;
        if self.with_healthcheck > 0 {
            write!(f, ", {}/{} healthy", self.healthy, self.with_healthcheck)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ContainerSummary {
    type Err = ();

    /// The summary back from its text (a supervisor's STATUS=), so `status` need not ask the
    /// engine for what a running supervisor already reports.
    fn from_str(text: &str) -> std::result::Result<Self, ()> {
        fn fraction(text: &str, label: &str) -> Option<(usize, usize)> {
            let (of, total) = text.strip_suffix(label)?.split_once('/')?;
            Some((of.parse().ok()?, total.parse().ok()?))
        }
        let (running, healthy) = match text.split_once(", ") {
            Some((running, healthy)) => (running, Some(healthy)),
            None => (text, None),
        };
        let (running, total) = fraction(running, " running").ok_or(())?;
        let (healthy, with_healthcheck) = match healthy {
            Some(healthy) => fraction(healthy, " healthy").ok_or(())?,
            None => (0, 0),
        };
        Ok(ContainerSummary {
            running,
            total,
            healthy,
            with_healthcheck,
        })
    }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<bytes::Bytes>> + Send>>;

/// An image ID as people compare them (`docker images`): the first 12 hex digits.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// An image present on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    pub id: String,
    /// `name@sha256:...` for each registry it came from; empty for built or imported images.
    pub repo_digests: Vec<String>,
}

/// What the engine says about a container that stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    pub oom_killed: bool,
    /// Its restart policy brings it back (not stopped by hand, retries left): the engine is
    /// restarting it, or has already started it again.
    pub restarting: bool,
    /// It runs again already.
    pub running: bool,
}

/// A container event of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    /// The compose project (stack) of the container.
    pub project: String,
    pub name: String,
    pub service: String,
    /// `start`, `die`, `oom`, `health_status: healthy`, ...
    pub action: String,
    pub time_nano: i64,
    /// The exit code a `die` event carries; the container's state may already hold a newer run's.
    pub exit_code: Option<i64>,
}

impl From<bollard::models::EventMessage> for Event {
    fn from(message: bollard::models::EventMessage) -> Self {
        let actor = message.actor.unwrap_or_default();
        let attributes = actor.attributes.unwrap_or_default();
        let attribute = |key: &str| attributes.get(key).cloned().unwrap_or_default();
        Event {
            id: actor.id.unwrap_or_default(),
            project: attribute(PROJECT_LABEL),
            service: attribute(SERVICE_LABEL),
            name: attribute("name"),
            action: message.action.unwrap_or_default(),
            time_nano: message.time_nano.unwrap_or(0),
            exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
        }
    }
}

/// Where the networks of networks.toml live: on one engine, as compose uses them (their
/// driver, bridge by default), or across a swarm as attachable overlay networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Local,
    Swarm,
}

impl Scope {
    fn driver(self, spec: &NetworkSpec) -> &str {
        match self {
            Scope::Local => &spec.driver,
            Scope::Swarm => "overlay",
        }
    }

    /// The command that creates the networks as networks.toml says.
    fn creator(self) -> &'static str {
        match self {
            Scope::Local => "composectl networks",
            Scope::Swarm => "composectl swarm deploy",
        }
    }
}

/// What `ensure_networks` found or did for one network of networks.toml.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkCheck {
    pub name: String,
    pub subnet: String,
    pub state: NetworkState,
    /// How the engine's network differs from networks.toml, as sentences (state `drifted`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    #[serde(skip)]
    scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkState {
    Ok,
    Created,
    Drifted,
}

impl NetworkState {
    pub fn word(self) -> &'static str {
        match self {
            NetworkState::Ok => "ok",
            NetworkState::Created => "created",
            NetworkState::Drifted => "drifted",
        }
    }
}

impl NetworkCheck {
    /// Why a drifted network stops the stack, and how to fix it.
    pub fn problem(&self) -> Option<String> {
        (self.state == NetworkState::Drifted).then(|| {
            format!(
                "network {name} differs from networks.toml: {}. Containers may use it, so composectl will not \
                 recreate it: stop what uses it, `docker network rm {name}`, then run `{creator}` \
                 (or change networks.toml to match)",
                self.drift.join("; "),
                name = self.name,
                creator = self.scope.creator()
            )
        })
    }
}

/// The problems of a set of network checks as one error, if any network drifted.
pub fn drift_error(checks: &[NetworkCheck]) -> Result<()> {
    let problems: Vec<String> = checks.iter().filter_map(NetworkCheck::problem).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", problems.join("\n")))
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;
pub type LogStream = Pin<Box<dyn Stream<Item = Result<(bool, Vec<u8>)>> + Send>>;

/// How a network on the engine differs from networks.toml, as sentences.
pub fn network_drift(
    spec: &NetworkSpec,
    actual: &bollard::models::NetworkInspect,
    scope: Scope,
) -> Vec<String> {
    let mut drift = Vec::new();
    let driver = actual.driver.clone().unwrap_or_default();
    if driver != scope.driver(spec) {
        let wanted = match scope {
            Scope::Local => format!("networks.toml says {}", spec.driver),
            Scope::Swarm => "a swarm needs overlay".to_string(),
        };
        drift.push(format!("driver is {driver}, {wanted}"));
    }
    // Containers outside the swarm's services (compose on a node, `docker run`) may join.
    if scope == Scope::Swarm && actual.attachable != Some(true) {
        drift.push("it is not attachable, composectl creates it attachable".into());
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

/// Where a stack's containers run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In the stack's slice (`cgroup_parent`), under its resources.
    Slice,
    /// Where the engine puts every container; why they cannot go into the slice.
    Engine(String),
}

fn placement(mode: Mode, driver: &str, rootless: bool) -> Placement {
    if driver != "systemd" {
        return Placement::Engine(format!(
            "the Docker engine uses the {} cgroup driver, which cannot put containers into a systemd slice; \
             set \"exec-opts\": [\"native.cgroupdriver=systemd\"] in /etc/docker/daemon.json (the default on cgroup v2) and restart docker",
            if driver.is_empty() { "unknown" } else { driver }
        ));
    }
    match (mode, rootless) {
        (Mode::System, false) | (Mode::User, true) => Placement::Slice,
        (Mode::User, false) => Placement::Engine(
            "the Docker engine runs as root: its containers' scopes belong to the system manager and cannot enter a slice of your user manager; \
             use system mode, or a rootless engine (dockerd-rootless)".into(),
        ),
        (Mode::System, true) => Placement::Engine(
            "the Docker engine is rootless: its containers' scopes belong to a user manager and cannot enter a slice of the system manager; \
             use user mode, or the system's engine".into(),
        ),
    }
}

impl Engine {
    /// Connects to `$DOCKER_HOST` (unix sockets only) or /var/run/docker.sock.
    pub fn connect() -> Result<Engine> {
        let socket = Engine::socket_path()?;
        let docker = Docker::connect_with_unix(&socket, REQUEST_TIMEOUT.as_secs(), &API_VERSION)
            .with_context(|| format!("cannot use the Docker engine socket {socket}"))?;
        Ok(Engine { docker, socket })
    }

    /// Returns the engine once it answers; `waiting` hears that it waits. A late engine (a user
    /// manager at boot, dockerd restarting, its socket not even there yet) delays the caller
    /// instead of failing it, for up to `limit`.
    pub async fn wait(limit: Duration, mut waiting: impl FnMut(&str)) -> Result<Engine> {
        let socket = Engine::socket_path()?;
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(100);
        loop {
            // Connecting fails while the socket does not exist yet.
            if let Ok(engine) = Engine::connect()
                && engine.answers(PROBE).await
            {
                return Ok(engine);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!(
                    "the Docker engine did not answer on {socket} within {}; is dockerd running (systemctl start docker)?",
                    crate::duration::format(limit)
                ));
            }
            waiting(&format!("waiting for the Docker engine on {socket}"));
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// The socket `connect` uses: `$DOCKER_HOST` (unix sockets only) or /var/run/docker.sock.
    pub fn socket_path() -> Result<String> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => host
                .strip_prefix("unix://")
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "DOCKER_HOST={host}: composectl talks to the engine over a unix socket only"
                    )
                }),
            _ => Ok("/var/run/docker.sock".to_string()),
        }
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

    /// Whether the engine answers within `limit`; a socket-activated engine that is down accepts
    /// the connection and never replies, so only a reply counts.
    pub async fn answers(&self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.docker.ping()).await,
            Ok(Ok(_))
        )
    }

    /// Whether the engine can create a stack's containers in the stack's slice of the `mode`
    /// manager: only an engine on the systemd cgroup driver asks systemd for their scopes, and
    /// only of its own manager (the system's for a rootful engine, the user's for a rootless one).
    pub async fn placement(&self, mode: Mode) -> Result<Placement> {
        let info = self.docker.info().await.with_context(|| {
            format!(
                "cannot read the Docker engine's settings on {}",
                self.socket
            )
        })?;
        let driver = info
            .cgroup_driver
            .map(|d| d.to_string())
            .unwrap_or_default();
        let rootless = info
            .security_options
            .unwrap_or_default()
            .iter()
            .any(|option| option.split(',').any(|part| part == "name=rootless"));
        Ok(placement(mode, &driver, rootless))
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

    pub async fn create_network(&self, spec: &NetworkSpec, scope: Scope) -> Result<()> {
        let request = bollard::models::NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(scope.driver(spec).to_string()),
            attachable: (scope == Scope::Swarm).then_some(true),
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

    /// Creates the networks that are missing; compares the others with their spec (never
    /// recreating one: containers may use it).
    pub async fn ensure_networks(
        &self,
        specs: &[&NetworkSpec],
        scope: Scope,
    ) -> Result<Vec<NetworkCheck>> {
        let mut checks = Vec::new();
        for spec in specs {
            let existing = match self.network(&spec.name).await? {
                Some(actual) => Some(actual),
                None => match self.create_network(spec, scope).await {
                    Ok(()) => None,
                    // Another stack's supervisor created it meanwhile (stacks start together).
                    Err(e) => Some(self.network(&spec.name).await?.ok_or(e)?),
                },
            };
            let (state, drift) = match existing {
                None => (NetworkState::Created, Vec::new()),
                Some(actual) => {
                    let drift = network_drift(spec, &actual, scope);
                    let state = if drift.is_empty() {
                        NetworkState::Ok
                    } else {
                        NetworkState::Drifted
                    };
                    (state, drift)
                }
            };
            checks.push(NetworkCheck {
                name: spec.name.clone(),
                subnet: spec.subnet.to_string(),
                state,
                drift,
                scope,
            });
        }
        Ok(checks)
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
                    image: c.image_id.unwrap_or_default(),
                    config_hash: labels.get(CONFIG_HASH_LABEL).cloned(),
                }
            })
            .collect())
    }

    /// Removes a project's containers that have stopped (exited, created, dead); running,
    /// paused and restarting ones stay. Returns how many went.
    pub async fn remove_stopped(&self, project: &str) -> Result<usize> {
        let mut filters = project_filter(Some(project));
        filters.insert(
            "status".into(),
            vec!["exited".into(), "created".into(), "dead".into()],
        );
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let stopped = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list containers: {e}"))?;
        self.remove_containers(stopped.iter().filter_map(|c| c.id.as_deref()))
            .await?;
        Ok(stopped.len())
    }

    /// Removes containers, running or not, one after another.
    async fn remove_containers<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Result<()> {
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        for id in ids {
            self.docker
                .remove_container(id, Some(options.clone()))
                .await
                .map_err(|e| anyhow!("cannot remove container {}: {e}", short_id(id)))?;
        }
        Ok(())
    }

    /// Removes what a compose project left on the engine (containers, the project's own
    /// networks), never its volumes: what `compose down` does, without needing the compose file.
    /// Returns how many containers went.
    pub async fn remove_project(&self, project: &str) -> Result<usize> {
        let containers = self.containers(Some(project)).await?;
        self.remove_containers(containers.iter().map(|c| c.id.as_str()))
            .await?;
        let options = bollard::query_parameters::ListNetworksOptions {
            filters: Some(project_filter(Some(project))),
        };
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list networks: {e}"))?;
        for network in networks.into_iter().filter_map(|n| n.name) {
            self.docker
                .remove_network(&network)
                .await
                .map_err(|e| anyhow!("cannot remove network {network}: {e}"))?;
        }
        Ok(containers.len())
    }

    /// What a local image reference (`name:tag`, an ID) names: its ID and the registry digests
    /// it was pulled or pushed as. None when there is no such image here.
    pub async fn image(&self, reference: &str) -> Result<Option<LocalImage>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(LocalImage {
                id: image.id.unwrap_or_default(),
                repo_digests: image.repo_digests.unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(anyhow!("cannot inspect image {reference}: {e}")),
        }
    }

    /// The digest a registry gives for `reference` now, without pulling it.
    pub async fn registry_digest(&self, reference: &str) -> Result<String> {
        let found = self
            .docker
            .inspect_registry_image(reference, None)
            .await
            .map_err(|e| anyhow!("cannot ask the registry about {reference}: {e}"))?;
        Ok(found.descriptor.digest.unwrap_or_default())
    }

    /// The output of a container's last healthcheck probes, newest last.
    pub async fn health_log(&self, id: &str) -> Vec<String> {
        let Ok(detail) = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        else {
            return Vec::new();
        };
        detail
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.log)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|probe| probe.output)
            .map(|output| output.trim().to_string())
            .filter(|output| !output.is_empty())
            .collect()
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
        let running = state.running.unwrap_or(false);
        let has_policy = detail
            .host_config
            .and_then(|host| host.restart_policy)
            .and_then(|policy| policy.name)
            .is_some_and(|name| {
                name != bollard::models::RestartPolicyNameEnum::NO
                    && name != bollard::models::RestartPolicyNameEnum::EMPTY
            });
        // The engine has decided by the time it reports the death: `restarting` is set when its
        // policy applies, and never after `docker kill`/`docker stop` (stopped by hand). The
        // first restart comes at once, so by the time of this inspect it may already run again,
        // and the state's exit code is then the new run's 0.
        Ok(Exit {
            code: state.exit_code.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false) || (running && has_policy),
            running,
        })
    }

    /// Container events of `projects` from `since` (unix seconds) on, only `actions` when given.
    /// The request is only made when the stream is first polled; `since` makes the engine replay
    /// what happened before. One project is filtered by the engine; several share one stream of
    /// every compose project's events, filtered here (the engine ANDs label filters), so a stack
    /// requiring a dozen others holds one connection, not a dozen.
    pub fn events(&self, projects: &[&str], since: i64, actions: &[&str]) -> EventStream {
        let mut filters = project_filter(match projects {
            [project] => Some(project),
            _ => None,
        });
        filters.insert("type".into(), vec!["container".into()]);
        if !actions.is_empty() {
            filters.insert(
                "event".into(),
                actions.iter().map(|a| a.to_string()).collect(),
            );
        }
        let options = EventsOptions {
            filters: Some(filters),
            since: Some(since.to_string()),
            ..Default::default()
        };
        let projects: BTreeSet<String> = projects.iter().map(|p| p.to_string()).collect();
        let events = self.docker.events(Some(options)).map(|message| {
            message
                .map(Event::from)
                .map_err(|e| anyhow!("the engine's event stream failed: {e}"))
        });
        Box::pin(events.filter(move |event: &Result<Event>| {
            std::future::ready(match event {
                Ok(event) => projects.contains(&event.project),
                Err(_) => true,
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
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn containers_enter_a_slice_only_of_the_manager_the_engine_asks() {
        assert_eq!(placement(Mode::System, "systemd", false), Placement::Slice);
        assert_eq!(placement(Mode::User, "systemd", true), Placement::Slice);
        for (mode, driver, rootless, why) in [
            (Mode::System, "cgroupfs", false, "cgroupfs cgroup driver"),
            (Mode::User, "cgroupfs", true, "cgroupfs cgroup driver"),
            (Mode::User, "systemd", false, "runs as root"),
            (Mode::System, "systemd", true, "is rootless"),
            (Mode::System, "", false, "unknown cgroup driver"),
        ] {
            match placement(mode, driver, rootless) {
                Placement::Engine(reason) => assert!(reason.contains(why), "{reason}"),
                Placement::Slice => panic!("{mode:?} {driver} {rootless}: placed"),
            }
        }
    }

    #[test]
    fn a_summary_reads_back_from_its_text_and_nothing_else_does() {
        for summary in [
            ContainerSummary {
                running: 2,
                total: 3,
                healthy: 1,
                with_healthcheck: 2,
            },
            ContainerSummary {
                running: 1,
                total: 1,
                healthy: 0,
                with_healthcheck: 0,
            },
        ] {
            assert_eq!(summary.to_string().parse(), Ok(summary));
        }
        for text in [
            "",
            "starting containers (compose up)",
            "waiting for app: starting",
            "1/1 running, waiting",
            "x/1 running",
            "updating: 1/1 running, 0/1 healthy",
        ] {
            assert_eq!(text.parse::<ContainerSummary>(), Err(()), "{text}");
        }
    }

    #[test]
    fn a_die_event_keeps_the_exit_code_it_carries() {
        let attributes = [
            (PROJECT_LABEL, "web"),
            (SERVICE_LABEL, "app"),
            ("name", "web-app-1"),
            ("exitCode", "137"),
        ];
        let message = bollard::models::EventMessage {
            action: Some("die".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            time_nano: Some(7),
            ..Default::default()
        };
        assert_eq!(
            Event::from(message),
            Event {
                id: "abc".into(),
                project: "web".into(),
                name: "web-app-1".into(),
                service: "app".into(),
                action: "die".into(),
                time_nano: 7,
                exit_code: Some(137),
            }
        );
        let start = bollard::models::EventMessage {
            action: Some("start".into()),
            ..Default::default()
        };
        assert_eq!(Event::from(start).exit_code, None);
    }

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
        let drift = network_drift(&spec, &actual, Scope::Local);
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
