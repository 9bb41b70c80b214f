//! A stack's compose file translated for `docker stack deploy`, key by key.
//!
//! Swarm reads compose files, but ignores or rejects much of what a single-host file says:
//! `restart`, `container_name`, `depends_on` ordering, profiles, resource keys outside
//! `deploy:`; configs it cannot update. composectl translates what keeps its meaning on a swarm,
//! refuses what would change behaviour without saying so, and warns where the meaning survives
//! only in part. Every decision is a [`Change`] with the file and line it comes from: `swarm
//! render` shows them as a table, `swarm deploy` refuses to start while any is a refusal.
//! [`SERVICE_POLICY`] holds the decision for every service key compose knows (a test keeps it
//! complete and the table of docs/swarm.md in step).
//!
//! The values are interpolated with the stack's env layers here (the docker CLI would only see
//! the caller's environment), so the file the CLI reads is the one compose would run. Configs
//! and secrets are created by composectl under names that carry a hash of their content, because
//! swarm cannot change a config in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::document::{Map, Value, to_yaml};
use crate::config::compose_file;
use crate::config::env::{self, EnvLayers};
use crate::config::meta::META_KEY;
use crate::config::syntax;
use crate::config::yaml::{self, Node};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{HEALTHCHECK_LABEL, Kind, UPDATE_LABEL};
use crate::graph::Graph;
use crate::model::Stack;

/// What composectl did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Rewritten to what swarm honours, with the same meaning.
    Translated,
    /// Left out: it means nothing on a swarm.
    Dropped,
    /// Left out or kept, but its meaning is lost in part: a warning.
    Warned,
    /// The stack cannot be deployed faithfully: an error.
    Refused,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Translated => "translated",
            Action::Dropped => "dropped",
            Action::Warned => "warning",
            Action::Refused => "refused",
        }
    }
}

/// One decision, at the line of the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub line: usize,
    pub key: String,
    pub action: Action,
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A config or secret composectl creates before the stack is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub data: Vec<u8>,
    pub labels: BTreeMap<String, String>,
}

/// A stack's file for `docker stack deploy`, and how it came about.
#[derive(Debug, Clone)]
pub struct Translation {
    pub stack: String,
    pub file: PathBuf,
    doc: Map,
    /// The services in order of readiness (`depends_on`): each wave is deployed once the
    /// earlier ones are ready.
    pub waves: Vec<Vec<String>>,
    pub changes: Vec<Change>,
    pub objects: Vec<Object>,
    /// Every service says `pull_policy: never` (or missing): the nodes use their local images,
    /// and the CLI must not ask a registry for digests.
    pub local_images: bool,
}

impl Translation {
    /// The file's text, with all services or only `services`; `stamps` are the values of
    /// [`UPDATE_LABEL`] (a container label) for the services that have one.
    pub fn yaml(
        &self,
        services: Option<&BTreeSet<String>>,
        stamps: &BTreeMap<String, String>,
    ) -> String {
        let mut doc = self.doc.clone();
        let all = doc.map_mut("services");
        if let Some(keep) = services {
            all.retain(|name, _| keep.contains(name));
        }
        for (name, stamp) in stamps {
            if let Some(Value::Map(service)) = all.get_mut(name) {
                set_entry(service, "labels", UPDATE_LABEL, stamp, true);
            }
        }
        to_yaml(&doc)
    }

    /// The warnings and refusals, as diagnostics with file and line.
    pub fn diagnostics(&self) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for change in &self.changes {
            let message = format!("{}: {}", change.key, change.note);
            let diag = match change.action {
                Action::Refused => Diagnostic::error(self.file.clone(), message),
                Action::Warned => Diagnostic::warning(self.file.clone(), message),
                Action::Translated | Action::Dropped => continue,
            };
            let diag = diag.at_line(Some(change.line));
            diags.push(match &change.hint {
                Some(hint) => diag.hint(hint.clone()),
                None => diag,
            });
        }
        diags
    }
}

/// What swarm makes of a service key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Swarm honours it as written.
    Keep,
    /// composectl rewrites it (see the translation code for each key).
    Translate,
    /// It means nothing on a swarm: left out.
    Drop(&'static str),
    /// Left out, and the service loses what it did: a warning.
    Warn(&'static str),
    /// The service would behave differently without it: (why, what to do).
    Refuse(&'static str, &'static str),
}

const CPU_TUNING: Policy = Policy::Warn(
    "swarm cannot apply this CPU setting; it is left out (deploy.resources.limits.cpus is what swarm has)",
);
const START_HOOK: Policy = Policy::Refuse(
    "swarm runs no lifecycle hooks",
    "move the hook into the image's entrypoint",
);
const MEMORY_TUNING: Policy =
    Policy::Warn("swarm cannot apply this memory setting; it is left out");

/// Every service key of the compose specification and what swarm makes of it.
#[rustfmt::skip]
pub const SERVICE_POLICY: [(&str, Policy); 93] = [
    ("annotations", Policy::Warn("swarm has no container annotations; they are left out")),
    ("attach", Policy::Drop("compose's log attachment; swarm attaches nothing")),
    ("blkio_config", Policy::Warn("swarm cannot limit block I/O; it is left out")),
    ("build", Policy::Translate),
    ("cap_add", Policy::Keep),
    ("cap_drop", Policy::Keep),
    ("cgroup", Policy::Warn("swarm cannot set the cgroup namespace; it is left out")),
    ("cgroup_parent", Policy::Warn("swarm puts tasks in cgroups of its own; it is left out")),
    ("command", Policy::Keep),
    ("configs", Policy::Keep),
    ("container_name", Policy::Warn("swarm names containers STACK_SERVICE.SLOT.ID; other services reach this one by its service name")),
    ("cpu_count", CPU_TUNING),
    ("cpu_percent", CPU_TUNING),
    ("cpu_period", CPU_TUNING),
    ("cpu_quota", CPU_TUNING),
    ("cpu_rt_period", CPU_TUNING),
    ("cpu_rt_runtime", CPU_TUNING),
    ("cpu_shares", CPU_TUNING),
    ("cpus", Policy::Translate),
    ("cpuset", CPU_TUNING),
    ("credential_spec", Policy::Keep),
    ("depends_on", Policy::Translate),
    ("deploy", Policy::Translate),
    ("develop", Policy::Drop("compose watch; nothing to watch on a swarm")),
    ("device_cgroup_rules", Policy::Refuse("swarm cannot grant access to host devices", "run the service on its host with the single-host composectl, or drop device_cgroup_rules")),
    ("devices", Policy::Refuse("swarm cannot give a task host devices", "run the service on the host that has the device with the single-host composectl, or drop devices")),
    ("dns", Policy::Keep),
    ("dns_opt", Policy::Warn("docker stack deploy cannot set resolver options; they are left out")),
    ("dns_search", Policy::Keep),
    ("domainname", Policy::Warn("docker stack deploy cannot set the domain name; it is left out")),
    ("entrypoint", Policy::Keep),
    ("env_file", Policy::Translate),
    ("environment", Policy::Translate),
    ("expose", Policy::Drop("every port of a task is reachable on its networks")),
    ("extends", Policy::Refuse("docker stack deploy cannot extend services", "copy the settings of the extended service into this one")),
    ("external_links", Policy::Refuse("swarm tasks cannot link to containers outside the stack", "put both on a network of networks.toml and use the other service's name")),
    ("extra_hosts", Policy::Keep),
    ("gpus", Policy::Refuse("swarm has no GPU requests", "advertise the GPUs as generic resources on the nodes (dockerd --node-generic-resource) and reserve them in deploy.resources.reservations.generic_resources")),
    ("group_add", Policy::Refuse("swarm cannot add supplementary groups, which the service may need for its files or sockets", "run the service as a user that has the group, or drop group_add")),
    ("healthcheck", Policy::Keep),
    ("hostname", Policy::Keep),
    ("image", Policy::Keep),
    ("init", Policy::Keep),
    ("ipc", Policy::Translate),
    ("isolation", Policy::Keep),
    ("label_file", Policy::Translate),
    ("labels", Policy::Keep),
    ("links", Policy::Translate),
    ("logging", Policy::Keep),
    ("mac_address", Policy::Warn("swarm assigns the addresses of tasks; it is left out")),
    ("mem_limit", Policy::Translate),
    ("mem_reservation", Policy::Translate),
    ("mem_swappiness", MEMORY_TUNING),
    ("memswap_limit", MEMORY_TUNING),
    ("models", Policy::Refuse("swarm runs no models", "run the model as a service of its own")),
    ("network_mode", Policy::Translate),
    ("networks", Policy::Translate),
    ("oom_kill_disable", MEMORY_TUNING),
    ("oom_score_adj", Policy::Keep),
    ("pid", Policy::Translate),
    ("pids_limit", Policy::Translate),
    ("platform", Policy::Translate),
    ("ports", Policy::Translate),
    ("post_start", START_HOOK),
    ("pre_start", START_HOOK),
    ("pre_stop", Policy::Refuse("swarm runs no lifecycle hooks", "move the hook into the image's stop handling (stop_signal, the entrypoint)")),
    ("privileged", Policy::Refuse("swarm cannot run privileged tasks", "grant the capabilities the service needs with cap_add")),
    ("profiles", Policy::Translate),
    ("provider", Policy::Refuse("swarm runs no provider services", "run the provider's resource outside the stack")),
    ("pull_policy", Policy::Translate),
    ("pull_refresh_after", Policy::Drop("swarm nodes pull when they start a task")),
    ("read_only", Policy::Keep),
    ("restart", Policy::Translate),
    ("runtime", Policy::Refuse("swarm runs tasks with the engine's default runtime", "make the runtime the nodes' default (dockerd --default-runtime), or drop runtime")),
    ("scale", Policy::Translate),
    ("secrets", Policy::Keep),
    ("security_opt", Policy::Refuse("swarm cannot apply security options (seccomp, AppArmor, no-new-privileges): the task would run with fewer protections", "remove security_opt to accept running without it on the swarm")),
    ("shm_size", Policy::Translate),
    ("stdin_open", Policy::Keep),
    ("stop_grace_period", Policy::Keep),
    ("stop_signal", Policy::Keep),
    ("storage_opt", Policy::Warn("swarm cannot set storage options; they are left out")),
    ("sysctls", Policy::Keep),
    ("tmpfs", Policy::Translate),
    ("tty", Policy::Keep),
    ("ulimits", Policy::Keep),
    ("use_api_socket", Policy::Refuse("swarm cannot hand a task the engine's API socket", "bind-mount the socket in volumes: (it must exist on every node)")),
    ("user", Policy::Keep),
    ("userns_mode", Policy::Warn("swarm cannot set the user namespace mode; it is left out")),
    ("uts", Policy::Translate),
    ("volumes", Policy::Translate),
    ("volumes_from", Policy::Refuse("swarm tasks cannot mount another container's volumes", "declare a named volume and mount it in both services")),
    ("working_dir", Policy::Keep),
];

fn policy(key: &str) -> Policy {
    if key.starts_with("x-") {
        return Policy::Keep;
    }
    SERVICE_POLICY
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(Policy::Keep, |(_, p)| *p)
}

/// The keys `deploy:` may hold, as the docker CLI's compose schema has them.
const DEPLOY_KEYS: [&str; 9] = [
    "endpoint_mode",
    "labels",
    "mode",
    "placement",
    "replicas",
    "resources",
    "restart_policy",
    "rollback_config",
    "update_config",
];

/// Translates one stack's compose file. The root was validated, so the file parses.
pub fn translate(stack: &Stack) -> Translation {
    let text = std::fs::read_to_string(&stack.compose_file).unwrap_or_default();
    let mut t = Translator {
        stack,
        env: &stack.env,
        dir: stack.compose_file.parent().unwrap_or(Path::new(".")),
        changes: Vec::new(),
        objects: Vec::new(),
        pull_policies: Vec::new(),
        depends: BTreeMap::new(),
        host_networks: BTreeSet::new(),
    };
    let mut doc = Map::default();
    if let Ok(Some(root)) = yaml::parse(&text) {
        t.top_level(&root, &mut doc);
    }
    let services: BTreeSet<String> = doc
        .get("services")
        .and_then(Value::as_map)
        .map(|s| s.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    let waves = Graph::new(services.iter().map(|name| {
        let deps = t.depends.get(name).cloned().unwrap_or_default();
        (name.clone(), deps, Vec::new())
    }))
    .layers();
    let local_images = !t.pull_policies.is_empty()
        && t.pull_policies.len() == services.len()
        && t.pull_policies
            .iter()
            .all(|p| matches!(p.as_str(), "never" | "missing" | "if_not_present"));
    for name in &t.host_networks {
        doc.map_mut("networks")
            .insert(name.clone(), declared_external(Value::str(name.clone())));
    }
    // In the order of the file, whatever order the keys were translated in.
    t.changes.sort_by_key(|c| c.line);
    Translation {
        stack: stack.name.clone(),
        file: stack.compose_file.clone(),
        doc,
        waves,
        changes: t.changes,
        objects: t.objects,
        local_images,
    }
}

struct Translator<'a> {
    stack: &'a Stack,
    env: &'a EnvLayers,
    /// The compose file's directory: relative paths in the file are relative to it.
    dir: &'a Path,
    changes: Vec<Change>,
    objects: Vec<Object>,
    /// Each deployed service's pull_policy, when it has one.
    pull_policies: Vec<String>,
    /// Each service's dependencies within the stack (`depends_on`).
    depends: BTreeMap<String, Vec<String>>,
    /// The engine's own networks (`host`, `none`) services join through `network_mode`.
    host_networks: BTreeSet<String>,
}

/// Where a change to a service's `deploy:` comes from, applied once all keys are read: a
/// `deploy:` written in the file wins over what other keys translate to.
struct DeployAddition {
    line: usize,
    key: String,
    path: &'static [&'static str],
    value: Value,
    note: String,
}

impl Translator<'_> {
    fn push(&mut self, line: usize, key: &str, action: Action, note: String, hint: Option<String>) {
        self.changes.push(Change {
            line,
            key: key.to_string(),
            action,
            note,
            hint,
        });
    }

    fn change(&mut self, line: usize, key: &str, action: Action, note: impl Into<String>) {
        self.push(line, key, action, note.into(), None);
    }

    fn refuse(&mut self, line: usize, key: &str, why: impl Into<String>, hint: impl Into<String>) {
        self.push(line, key, Action::Refused, why.into(), Some(hint.into()));
    }

    fn warn(&mut self, line: usize, key: &str, why: impl Into<String>, hint: impl Into<String>) {
        self.push(line, key, Action::Warned, why.into(), Some(hint.into()));
    }

    /// A scalar's text after interpolation (None for null and collections).
    fn text(&self, node: &Node) -> Option<String> {
        env::interpolate(&yaml::scalar_text(node)?, self.env).ok()
    }

    /// A node as a value of the output, interpolated. Numbers and booleans written plain stay
    /// typed; everything else is a string.
    fn value(&self, node: &Node) -> Value {
        if yaml::is_mapping(node) {
            return Value::Map(
                yaml::entries(node)
                    .into_iter()
                    .map(|e| (e.key.into_owned(), self.value(e.value)))
                    .collect(),
            );
        }
        if let Some(items) = yaml::as_sequence(node) {
            return Value::Seq(items.iter().map(|i| self.value(i)).collect());
        }
        match yaml::kind(node) {
            "empty" => Value::null(),
            "a number" | "a boolean" => {
                Value::Plain(yaml::scalar_text(node).unwrap_or_default().into_owned())
            }
            _ => Value::Str(self.text(node).unwrap_or_default()),
        }
    }

    /// A path the file names, absolute (relative paths are the compose file's directory's).
    fn path(&self, text: &str) -> PathBuf {
        let path = match text.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(rest),
            None => PathBuf::from(text),
        };
        std::path::absolute(self.dir.join(path)).unwrap_or_default()
    }

    fn top_level(&mut self, root: &Node, doc: &mut Map) {
        for entry in yaml::entries(root) {
            let key = entry.key.as_ref();
            match key {
                "services" => {
                    let services = self.services(entry.value);
                    doc.insert("services", Value::Map(services));
                }
                "networks" => {
                    let networks = self.networks(entry.value);
                    doc.insert("networks", Value::Map(networks));
                }
                "volumes" => {
                    self.volumes(entry.value);
                    doc.insert("volumes", self.value(entry.value));
                }
                "configs" | "secrets" => {
                    let kind = if key == "configs" {
                        Kind::Config
                    } else {
                        Kind::Secret
                    };
                    let objects = self.objects(kind, key, entry.value);
                    doc.insert(key, Value::Map(objects));
                }
                "version" => self.change(entry.line, key, Action::Dropped, "obsolete; the docker CLI reads the file as its newest 3.x format"),
                "name" => self.change(
                    entry.line,
                    key,
                    Action::Dropped,
                    format!("the stack is deployed as {}", self.stack.name),
                ),
                "include" => self.refuse(
                    entry.line,
                    key,
                    "docker stack deploy cannot include other files",
                    "copy what the included files declare into this file",
                ),
                "models" => self.refuse(
                    entry.line,
                    key,
                    "swarm runs no models",
                    "run the model as a service of its own",
                ),
                META_KEY => self.change(
                    entry.line,
                    key,
                    Action::Dropped,
                    "composectl's own: it orders the stacks, which composectl deploys layer by layer",
                ),
                _ => self.change(
                    entry.line,
                    key,
                    Action::Dropped,
                    "an extension; what its anchors share is already in the services",
                ),
            }
        }
    }

    fn services(&mut self, node: &Node) -> Map {
        let mut out = Map::default();
        for entry in yaml::entries(node) {
            let name = entry.key.as_ref();
            if !self.stack.running.contains(name) {
                self.change(
                    entry.line,
                    &format!("services.{name}"),
                    Action::Dropped,
                    "not started: none of its profiles is in COMPOSE_PROFILES",
                );
                continue;
            }
            out.insert(name, Value::Map(self.service(name, entry.value)));
        }
        out
    }

    fn service(&mut self, name: &str, node: &Node) -> Map {
        let mut out = Map::default();
        let mut deploy = Vec::new();
        let mut from_files: Vec<(&'static str, Map)> = Vec::new();
        let mut extra_volumes = Vec::new();
        for entry in yaml::entries(node) {
            let key = entry.key.as_ref();
            let path = format!("services.{name}.{key}");
            let line = entry.line;
            match policy(key) {
                Policy::Keep => out.insert(key, self.value(entry.value)),
                Policy::Drop(note) => self.change(line, &path, Action::Dropped, note),
                Policy::Warn(note) => self.change(line, &path, Action::Warned, note),
                Policy::Refuse(why, hint) => self.refuse(line, &path, why, hint),
                Policy::Translate => match key {
                    "build" => self.build(line, &path, node),
                    "depends_on" => self.depends_on(name, line, &path, entry.value),
                    "deploy" => out.insert(key, self.deploy(&path, entry.value)),
                    "environment" => out.insert(key, Value::Map(self.environment(entry.value))),
                    "env_file" | "label_file" => {
                        let target = if key == "env_file" { "environment" } else { "labels" };
                        let vars = self.env_files(line, &path, target, entry.value);
                        from_files.push((target, vars));
                    }
                    "ipc" | "pid" | "uts" => self.namespace(line, &path, entry.value),
                    "links" => self.links(line, &path, entry.value),
                    "network_mode" => self.network_mode(line, &path, entry.value, &mut out),
                    "networks" => out.insert(key, self.service_networks(&path, entry.value)),
                    "ports" => out.insert(key, self.ports(&path, entry.value)),
                    "profiles" => self.change(line, &path, Action::Dropped, "the service is started (a profile of it is active); swarm knows no profiles"),
                    "pull_policy" => self.pull_policy(line, &path, entry.value),
                    "shm_size" => extra_volumes.extend(self.shm_size(line, &path, entry.value)),
                    "tmpfs" => extra_volumes.extend(self.tmpfs(line, &path, entry.value)),
                    "volumes" => out.insert(key, self.service_volumes(&path, entry.value)),
                    _ => deploy.extend(self.deploy_addition(line, &path, key, entry.value)),
                },
            }
        }
        // Variables and labels from files first; what the file writes itself wins, as in compose.
        for (target, vars) in from_files {
            for (key, value) in vars.iter() {
                set_entry(
                    &mut out,
                    target,
                    key,
                    value.text().unwrap_or_default(),
                    false,
                );
            }
        }
        if !extra_volumes.is_empty() {
            match out.get_mut("volumes") {
                Some(Value::Seq(items)) => items.extend(extra_volumes),
                _ => out.insert("volumes", Value::Seq(extra_volumes)),
            }
        }
        self.apply_deploy(&mut out, deploy);
        if self
            .stack
            .services
            .iter()
            .any(|s| s.name == name && s.healthcheck)
        {
            set_entry(
                out.map_mut("deploy"),
                "labels",
                HEALTHCHECK_LABEL,
                "true",
                true,
            );
        }
        out
    }

    fn build(&mut self, line: usize, path: &str, service: &Node) {
        match yaml::get(service, "image").and_then(|i| self.text(i.value)) {
            Some(image) => self.warn(
                line,
                path,
                format!("swarm builds nothing: every node pulls {image} from a registry"),
                format!("build and push {image} to a registry the nodes reach before deploying"),
            ),
            None => self.refuse(
                line,
                path,
                "swarm deploys images only, and this service has none",
                "build and push the image to a registry the nodes reach, and name it in image:",
            ),
        }
    }

    /// `depends_on` becomes order of readiness: composectl deploys a service once the services
    /// it depends on run (and are healthy where they have a healthcheck).
    fn depends_on(&mut self, name: &str, line: usize, path: &str, node: &Node) {
        let mut deps = Vec::new();
        let items: Vec<(String, Option<&Node>)> = if yaml::is_mapping(node) {
            yaml::entries(node)
                .into_iter()
                .map(|e| (e.key.into_owned(), Some(e.value)))
                .collect()
        } else {
            yaml::as_sequence(node)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| Some((self.text(i)?, None)))
                .collect()
        };
        for (dep, options) in items {
            let condition = options
                .and_then(|o| yaml::get(o, "condition"))
                .and_then(|c| self.text(c.value));
            if condition.as_deref() == Some("service_completed_successfully") {
                self.refuse(
                    line,
                    path,
                    format!("{dep} must finish first (service_completed_successfully), which swarm cannot wait for within a stack"),
                    format!("move {dep} into a stack of its own (deploy.mode: replicated-job) that this stack requires"),
                );
                continue;
            }
            if self.stack.running.contains(&dep) {
                deps.push(dep);
            }
        }
        if !deps.is_empty() {
            self.change(
                line,
                path,
                Action::Translated,
                format!("order of readiness: deployed once these run (healthy, where they have a healthcheck): {}", deps.join(", ")),
            );
        }
        self.depends.insert(name.to_string(), deps);
    }

    fn deploy(&mut self, path: &str, node: &Node) -> Value {
        for entry in yaml::entries(node) {
            if !DEPLOY_KEYS.contains(&entry.key.as_ref()) {
                self.refuse(
                    entry.line,
                    &format!("{path}.{}", entry.key),
                    "docker stack deploy does not know this deploy key",
                    format!("use one of: {}", DEPLOY_KEYS.join(", ")),
                );
            }
        }
        let devices = yaml::get(node, "resources")
            .and_then(|r| yaml::get(r.value, "reservations"))
            .and_then(|r| yaml::get(r.value, "devices"));
        if let Some(devices) = devices {
            self.refuse(
                devices.line,
                &format!("{path}.resources.reservations.devices"),
                "swarm cannot reserve devices (GPUs) for a task",
                "advertise the devices as generic resources on the nodes (dockerd --node-generic-resource) and reserve them in deploy.resources.reservations.generic_resources",
            );
        }
        let mut value = self.value(node);
        if let Value::Map(deploy) = &mut value
            && let Some(Value::Map(reservations)) =
                deploy.get_mut("resources").and_then(|r| match r {
                    Value::Map(r) => r.get_mut("reservations"),
                    _ => None,
                })
        {
            reservations.remove("devices");
        }
        value
    }

    /// `environment` as a mapping; a variable without a value takes it from the env layers, as
    /// compose takes it from the project's environment, and is left out when they do not set it.
    fn environment(&self, node: &Node) -> Map {
        let mut vars = Map::default();
        let mut set = |key: String, value: Option<Value>| {
            let value = value.or_else(|| self.env.get(&key).map(Value::str));
            if let Some(value) = value {
                vars.insert(key, value);
            }
        };
        if yaml::is_mapping(node) {
            for entry in yaml::entries(node) {
                let value = (!yaml::is_null(entry.value)).then(|| match self.value(entry.value) {
                    Value::Plain(text) => Value::Str(text),
                    other => other,
                });
                set(entry.key.into_owned(), value);
            }
        } else {
            for item in yaml::as_sequence(node).unwrap_or_default() {
                let Some(text) = self.text(item) else {
                    continue;
                };
                match text.split_once('=') {
                    Some((key, value)) => set(key.to_string(), Some(Value::str(value))),
                    None => set(text, None),
                }
            }
        }
        vars
    }

    /// `env_file` and `label_file`, read as compose reads them and written into the service, so
    /// the CLI's own reader (which keeps quotes) never sees them.
    fn env_files(&mut self, line: usize, path: &str, target: &str, node: &Node) -> Map {
        let mut vars = Map::default();
        let mut read = Vec::new();
        for (file, required) in compose_file::listed_files(node, |n| self.text(n)) {
            let Some(name) = self.text(file) else {
                continue;
            };
            let file = self.path(&name);
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(_) if !required => continue,
                Err(e) => {
                    self.refuse(
                        line,
                        path,
                        format!("cannot read {}: {e}", file.display()),
                        "create the file, or mark it `required: false`",
                    );
                    continue;
                }
            };
            let mut problems = Diagnostics::default();
            for (key, value) in env::parse_env_file(&file, &text, &mut problems) {
                vars.insert(key, Value::Str(value));
            }
            for problem in problems.errors() {
                let at = problem.line.map(|l| format!(":{l}")).unwrap_or_default();
                self.refuse(
                    line,
                    path,
                    format!("{}{at}: {}", file.display(), problem.message),
                    "fix the file: one NAME=value a line",
                );
            }
            read.push(name);
        }
        self.change(
            line,
            path,
            Action::Translated,
            format!("{} read by composectl into {target}", read.join(", ")),
        );
        vars
    }

    fn namespace(&mut self, line: usize, path: &str, node: &Node) {
        let value = self.text(node).unwrap_or_default();
        if matches!(value.as_str(), "" | "private" | "shareable") {
            self.change(
                line,
                path,
                Action::Dropped,
                "swarm gives every task namespaces of its own",
            );
        } else {
            self.refuse(
                line,
                path,
                format!("swarm cannot share namespaces ({value})"),
                "run the service on its host with the single-host composectl, or drop the key",
            );
        }
    }

    fn links(&mut self, line: usize, path: &str, node: &Node) {
        for item in yaml::as_sequence(node).unwrap_or_default() {
            let Some(link) = self.text(item) else {
                continue;
            };
            match link.split_once(':') {
                Some((service, alias)) if service != alias => self.refuse(
                    yaml::line(item),
                    path,
                    format!("swarm has no links, so the alias {alias} for {service} is lost"),
                    format!("give {service} the alias on its network: networks: {{NET: {{aliases: [{alias}]}}}}"),
                ),
                _ => {}
            }
        }
        self.change(
            line,
            path,
            Action::Dropped,
            "services on a shared network reach each other by service name",
        );
    }

    fn network_mode(&mut self, line: usize, path: &str, node: &Node, out: &mut Map) {
        let mode = self.text(node).unwrap_or_default();
        match mode.as_str() {
            "host" | "none" => {
                self.host_networks.insert(mode.clone());
                out.insert("networks", Value::Seq(vec![Value::str(mode.clone())]));
                self.change(
                    line,
                    path,
                    Action::Translated,
                    format!("the task joins the node's {mode} network (networks: [{mode}], declared external)"),
                );
            }
            "bridge" | "default" => self.change(
                line,
                path,
                Action::Dropped,
                "tasks join the stack's default overlay network",
            ),
            other => self.refuse(
                line,
                path,
                format!("swarm tasks cannot share another container's network ({other})"),
                "put both services on one network and reach the other by its service name",
            ),
        }
    }

    /// A service's networks; fixed addresses cannot be kept, swarm assigns them.
    fn service_networks(&mut self, path: &str, node: &Node) -> Value {
        if !yaml::is_mapping(node) {
            return self.value(node);
        }
        let mut out = Map::default();
        for entry in yaml::entries(node) {
            let net_path = format!("{path}.{}", entry.key);
            let mut settings = Map::default();
            for option in yaml::entries(entry.value) {
                let key = option.key.as_ref();
                let option_path = format!("{net_path}.{key}");
                match key {
                    "aliases" | "driver_opts" => {
                        settings.insert(key, self.value(option.value));
                    }
                    "ipv4_address" | "ipv6_address" => self.refuse(
                        option.line,
                        &option_path,
                        "swarm assigns the addresses of tasks",
                        "reach the service by its name (or a network alias), and drop the fixed address",
                    ),
                    _ => self.change(
                        option.line,
                        &option_path,
                        Action::Warned,
                        "docker stack deploy cannot set this; it is left out",
                    ),
                }
            }
            let value = if settings.is_empty() {
                Value::null()
            } else {
                Value::Map(settings)
            };
            out.insert(entry.key.into_owned(), value);
        }
        Value::Map(out)
    }

    /// Published ports: swarm publishes on every address of every node (its routing mesh), so
    /// a port bound to one address cannot be kept as it is.
    fn ports(&mut self, path: &str, node: &Node) -> Value {
        let mut out = Vec::new();
        for item in yaml::as_sequence(node).unwrap_or_default() {
            let line = yaml::line(item);
            let host_ip = if yaml::is_mapping(item) {
                yaml::get(item, "host_ip").and_then(|h| self.text(h.value))
            } else {
                self.text(item)
                    .and_then(|text| syntax::parse_port(&text).ok())
                    .map(|spec| spec.host_ip)
            };
            if let Some(ip) = host_ip.filter(|ip| !ip.is_empty()) {
                self.refuse(
                    line,
                    path,
                    format!("swarm publishes ports on every address of every node, not on {ip} alone"),
                    "drop the address to publish on all of them, or reach the service through the proxy instead of a published port",
                );
                continue;
            }
            let mut value = self.value(item);
            if let Value::Map(port) = &mut value {
                for key in ["name", "app_protocol"] {
                    if port.remove(key).is_some() {
                        self.change(
                            line,
                            &format!("{path}.{key}"),
                            Action::Dropped,
                            "a label for humans; swarm keeps none",
                        );
                    }
                }
            }
            out.push(value);
        }
        Value::Seq(out)
    }

    fn pull_policy(&mut self, line: usize, path: &str, node: &Node) {
        let policy = self.text(node).unwrap_or_default();
        let note = if matches!(policy.as_str(), "never" | "missing" | "if_not_present") {
            "the nodes use the image they have (when every service says so, the CLI asks no registry: --resolve-image never)"
        } else {
            "swarm nodes pull the image when they start a task"
        };
        self.change(line, path, Action::Translated, note);
        self.pull_policies.push(policy);
    }

    fn shm_size(&mut self, line: usize, path: &str, node: &Node) -> Option<Value> {
        let text = self.text(node)?;
        let Some(bytes) = bytes(&text) else {
            self.refuse(
                line,
                path,
                format!("{text:?} is not a size"),
                "write a size such as 256m or 1g",
            );
            return None;
        };
        self.change(
            line,
            path,
            Action::Translated,
            format!("a {text} tmpfs mounted on /dev/shm (swarm has no shm_size)"),
        );
        Some(tmpfs_mount("/dev/shm", Some(bytes)))
    }

    fn tmpfs(&mut self, line: usize, path: &str, node: &Node) -> Vec<Value> {
        let items: Vec<String> = match yaml::as_sequence(node) {
            Some(items) => items.iter().filter_map(|i| self.text(i)).collect(),
            None => self.text(node).into_iter().collect(),
        };
        let mut mounts = Vec::new();
        for item in items {
            let (target, options) = item.split_once(':').unwrap_or((&item, ""));
            let mut size = None;
            for option in options.split(',').filter(|o| !o.is_empty()) {
                match option.strip_prefix("size=").map(bytes) {
                    Some(Some(bytes)) => size = Some(bytes),
                    _ => self.change(
                        line,
                        path,
                        Action::Warned,
                        format!("{target}: the tmpfs option {option} is left out (swarm sets only the size)"),
                    ),
                }
            }
            mounts.push(tmpfs_mount(target, size));
        }
        self.change(
            line,
            path,
            Action::Translated,
            "tmpfs mounts in volumes: (swarm has no tmpfs key)",
        );
        mounts
    }

    /// Bind mounts with absolute sources (the CLI would resolve relative ones against a file
    /// that has none), and a warning that they must exist on every node.
    fn service_volumes(&mut self, path: &str, node: &Node) -> Value {
        let mut out = Vec::new();
        for item in yaml::as_sequence(node).unwrap_or_default() {
            let line = yaml::line(item);
            let mut value = self.value(item);
            let source = match &mut value {
                Value::Str(spec) => {
                    let parsed = syntax::parse_volume(spec).ok();
                    match parsed.filter(syntax::VolumeSpec::is_bind) {
                        Some(volume) => {
                            let absolute = self.path(&volume.source).display().to_string();
                            *spec = format!("{absolute}{}", &spec[volume.source.len()..]);
                            Some((volume.source, absolute))
                        }
                        None => None,
                    }
                }
                Value::Map(mount) => {
                    let kind = mount
                        .get("type")
                        .and_then(Value::text)
                        .unwrap_or_default()
                        .to_string();
                    match kind.as_str() {
                        "bind" => {
                            for key in ["create_host_path", "selinux"] {
                                if let Some(Value::Map(bind)) = mount.get_mut("bind")
                                    && bind.remove(key).is_some()
                                {
                                    self.change(
                                        line,
                                        &format!("{path}.bind.{key}"),
                                        Action::Warned,
                                        "docker stack deploy cannot set this; it is left out",
                                    );
                                }
                            }
                            let source = mount
                                .get("source")
                                .and_then(Value::text)
                                .unwrap_or_default()
                                .to_string();
                            let absolute = self.path(&source).display().to_string();
                            mount.insert("source", Value::str(absolute.clone()));
                            Some((source, absolute))
                        }
                        "volume" | "tmpfs" => {
                            for (section, key) in [("volume", "subpath"), ("tmpfs", "mode")] {
                                if let Some(Value::Map(options)) = mount.get_mut(section)
                                    && options.remove(key).is_some()
                                {
                                    self.change(
                                        line,
                                        &format!("{path}.{section}.{key}"),
                                        Action::Warned,
                                        "docker stack deploy cannot set this; it is left out",
                                    );
                                }
                            }
                            None
                        }
                        other => {
                            self.refuse(
                                line,
                                path,
                                format!("swarm cannot mount a {other}"),
                                "mount a bind, a volume or a tmpfs instead",
                            );
                            None
                        }
                    }
                }
                _ => None,
            };
            if let Some((written, absolute)) = source {
                if written != absolute {
                    self.change(
                        line,
                        path,
                        Action::Translated,
                        format!("bind mount {written} is {absolute}"),
                    );
                }
                self.warn(
                    line,
                    path,
                    format!("bind mount {absolute} must exist on every node that may run the task"),
                    "create it on every node, or pin the service to one (deploy.placement.constraints: [node.hostname == NAME])",
                );
            }
            out.push(value);
        }
        Value::Seq(out)
    }

    /// Keys that become part of `deploy:`.
    fn deploy_addition(
        &mut self,
        line: usize,
        path: &str,
        key: &str,
        node: &Node,
    ) -> Option<DeployAddition> {
        let text = self.text(node).unwrap_or_default();
        let addition =
            |target: &'static [&'static str], value: Value, note: String| DeployAddition {
                line,
                key: path.to_string(),
                path: target,
                value,
                note,
            };
        match key {
            "restart" => {
                let (name, retries) = text.split_once(':').unwrap_or((&text, ""));
                let condition = match name {
                    "no" | "" => "none",
                    "always" | "unless-stopped" => "any",
                    "on-failure" => "on-failure",
                    other => {
                        self.refuse(
                            line,
                            path,
                            format!("unknown restart policy {other:?}"),
                            "use no, always, unless-stopped or on-failure[:N]",
                        );
                        return None;
                    }
                };
                let mut policy: Map = [("condition".to_string(), Value::str(condition))]
                    .into_iter()
                    .collect();
                let mut note = format!("deploy.restart_policy.condition: {condition}");
                if let Ok(max) = retries.parse::<u64>() {
                    policy.insert("max_attempts", Value::Plain(max.to_string()));
                    note.push_str(&format!(", max_attempts: {max}"));
                }
                Some(addition(&["restart_policy"], Value::Map(policy), note))
            }
            "scale" => Some(addition(
                &["replicas"],
                self.value(node),
                format!("deploy.replicas: {text}"),
            )),
            "cpus" => Some(addition(
                &["resources", "limits", "cpus"],
                Value::str(text.clone()),
                format!("deploy.resources.limits.cpus: {text}"),
            )),
            "mem_limit" => Some(addition(
                &["resources", "limits", "memory"],
                Value::str(text.clone()),
                format!("deploy.resources.limits.memory: {text}"),
            )),
            "mem_reservation" => Some(addition(
                &["resources", "reservations", "memory"],
                Value::str(text.clone()),
                format!("deploy.resources.reservations.memory: {text}"),
            )),
            "pids_limit" => match text.parse::<i64>() {
                Ok(limit) if limit > 0 => Some(addition(
                    &["resources", "limits", "pids"],
                    Value::Plain(limit.to_string()),
                    format!("deploy.resources.limits.pids: {limit}"),
                )),
                _ => {
                    self.change(line, path, Action::Dropped, "no limit, swarm's default");
                    None
                }
            },
            "platform" => {
                let mut parts = text.split('/');
                let os = parts.next().unwrap_or_default().to_string();
                let arch = parts.next().map(node_arch);
                let mut constraints = vec![Value::str(format!("node.platform.os == {os}"))];
                match arch {
                    Some(Some(arch)) => {
                        constraints.push(Value::str(format!("node.platform.arch == {arch}")))
                    }
                    Some(None) => {
                        self.refuse(line, path, format!("no swarm node architecture is known for {text}"), "write linux/amd64, linux/arm64, linux/arm/v7, linux/386, linux/ppc64le, linux/s390x or linux/riscv64, or place the service with deploy.placement.constraints");
                        return None;
                    }
                    None => {}
                }
                let note = format!(
                    "deploy.placement.constraints: {}",
                    constraints
                        .iter()
                        .filter_map(Value::text)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Some(addition(
                    &["placement", "constraints"],
                    Value::Seq(constraints),
                    note,
                ))
            }
            _ => None,
        }
    }

    fn apply_deploy(&mut self, out: &mut Map, additions: Vec<DeployAddition>) {
        for addition in additions {
            let (leaf, parents) = addition.path.split_last().unwrap_or((&"", &[]));
            let mut target = out.map_mut("deploy");
            for parent in parents {
                target = target.map_mut(parent);
            }
            if target.get(leaf).is_some() {
                let written = format!("deploy.{}", addition.path.join("."));
                self.change(
                    addition.line,
                    &addition.key,
                    Action::Dropped,
                    format!("{written} in the file says it already"),
                );
                continue;
            }
            target.insert(*leaf, addition.value);
            self.change(
                addition.line,
                &addition.key,
                Action::Translated,
                addition.note,
            );
        }
    }

    fn networks(&mut self, node: &Node) -> Map {
        let mut out = Map::default();
        for entry in yaml::entries(node) {
            let key = entry.key.as_ref();
            let path = format!("networks.{key}");
            let mut value = self.value(entry.value);
            let Value::Map(network) = &mut value else {
                out.insert(key, Value::null());
                continue;
            };
            let external = network.get("external").is_some_and(|e| match e {
                Value::Map(_) => true,
                other => other.text().and_then(yaml::parse_bool).unwrap_or(false),
            });
            if external {
                // networks.toml's networks, which composectl creates as overlay networks.
                let name = match network.get("external") {
                    Some(Value::Map(legacy)) => legacy.get("name").cloned(),
                    _ => network.get("name").cloned(),
                }
                .unwrap_or_else(|| Value::str(key));
                out.insert(key, declared_external(name));
                continue;
            }
            match network.get("driver").and_then(Value::text) {
                None | Some("overlay") => {}
                Some("bridge") => {
                    network.insert("driver", Value::str("overlay"));
                    self.change(
                        entry.line,
                        &format!("{path}.driver"),
                        Action::Translated,
                        "overlay: a bridge network exists on one node only",
                    );
                }
                Some(other) => self.refuse(
                    entry.line,
                    &format!("{path}.driver"),
                    format!("swarm services join overlay networks, not {other}"),
                    "drop driver (overlay is swarm's default)",
                ),
            }
            if network.remove("enable_ipv6").is_some() {
                self.change(
                    entry.line,
                    &format!("{path}.enable_ipv6"),
                    Action::Warned,
                    "docker stack deploy cannot set this; it is left out",
                );
            }
            if let Some(Value::Map(ipam)) = network.get_mut("ipam")
                && let Some(Value::Seq(configs)) = ipam.get_mut("config")
            {
                for config in configs.iter_mut() {
                    if let Value::Map(config) = config {
                        let extra: Vec<String> = config
                            .iter()
                            .map(|(k, _)| k.to_string())
                            .filter(|k| k != "subnet")
                            .collect();
                        if !extra.is_empty() {
                            self.refuse(
                                entry.line,
                                &format!("{path}.ipam.config"),
                                format!("docker stack deploy sets only the subnet of a network, not {}", extra.join(", ")),
                                "declare the network in networks.toml (gateway included) and join it as external",
                            );
                        }
                        config.retain(|k, _| k == "subnet");
                    }
                }
            }
            out.insert(key, value);
        }
        out
    }

    /// Named volumes live on the node of the task that uses them: worth a warning each.
    fn volumes(&mut self, node: &Node) {
        for entry in yaml::entries(node) {
            let shared = yaml::get(entry.value, "external").is_some()
                || yaml::get(entry.value, "driver")
                    .and_then(|d| self.text(d.value))
                    .is_some_and(|d| d != "local");
            if !shared {
                self.warn(
                    entry.line,
                    &format!("volumes.{}", entry.key),
                    "a local volume lives on one node: a task started on another node gets an empty one",
                    "pin the services that use it to one node (deploy.placement.constraints: [node.hostname == NAME]), or use a volume driver all nodes share",
                );
            }
        }
    }

    /// Configs and secrets: composectl creates them (from `file`, `content` or `environment`)
    /// under a name with a hash of their content, and the file declares them external.
    fn objects(&mut self, kind: Kind, section: &str, node: &Node) -> Map {
        let mut out = Map::default();
        for entry in yaml::entries(node) {
            let key = entry.key.as_ref();
            let path = format!("{section}.{key}");
            let external = yaml::get(entry.value, "external");
            if external.is_some_and(|e| {
                yaml::is_mapping(e.value)
                    || self.text(e.value).and_then(|t| yaml::parse_bool(&t)) == Some(true)
            }) {
                out.insert(key, self.value(entry.value));
                continue;
            }
            for unsupported in ["driver", "template_driver"] {
                if let Some(option) = yaml::get(entry.value, unsupported) {
                    self.refuse(
                        option.line,
                        &format!("{path}.{unsupported}"),
                        "composectl creates configs and secrets from their content only",
                        format!(
                            "drop {unsupported}, or create the {} yourself and declare it external",
                            kind.word()
                        ),
                    );
                }
            }
            let data = if let Some(file) =
                yaml::get(entry.value, "file").and_then(|f| self.text(f.value))
            {
                let file = self.path(&file);
                match std::fs::read(&file) {
                    Ok(data) => data,
                    Err(e) => {
                        self.refuse(
                            entry.line,
                            &path,
                            format!("cannot read {}: {e}", file.display()),
                            "create the file, or fix the path (relative to the compose file)",
                        );
                        continue;
                    }
                }
            } else if let Some(content) =
                yaml::get(entry.value, "content").and_then(|c| self.text(c.value))
            {
                content.into_bytes()
            } else if let Some(var) =
                yaml::get(entry.value, "environment").and_then(|v| self.text(v.value))
            {
                match self.env.get(&var) {
                    Some(value) => value.as_bytes().to_vec(),
                    None => {
                        self.refuse(
                            entry.line,
                            &path,
                            format!("{var} is set in no env file"),
                            format!("set {var} in the root or stack .env.local"),
                        );
                        continue;
                    }
                }
            } else {
                self.refuse(
                    entry.line,
                    &path,
                    "it has no file, content or environment",
                    "say where its content comes from",
                );
                continue;
            };
            let base = yaml::get(entry.value, "name")
                .and_then(|n| self.text(n.value))
                .unwrap_or_else(|| format!("{}_{key}", self.stack.name));
            let name = content_name(&base, &data);
            let labels = yaml::get(entry.value, "labels")
                .map(|l| self.labels(l.value))
                .unwrap_or_default();
            self.change(
                entry.line,
                &path,
                Action::Translated,
                format!("created by composectl as {name} (a new content gets a new name: swarm cannot change a {} in place)", kind.word()),
            );
            self.objects.push(Object {
                kind,
                name: name.clone(),
                data,
                labels,
            });
            out.insert(key, declared_external(Value::str(name)));
        }
        out
    }

    /// Labels written as a mapping or as a list of `KEY=VALUE`.
    fn labels(&self, node: &Node) -> BTreeMap<String, String> {
        if yaml::is_mapping(node) {
            return yaml::entries(node)
                .into_iter()
                .map(|e| (e.key.into_owned(), self.text(e.value).unwrap_or_default()))
                .collect();
        }
        yaml::as_sequence(node)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| self.text(i))
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l, String::new()),
            })
            .collect()
    }
}

/// A network, config or secret declared as existing already, under its name on the engine.
fn declared_external(name: Value) -> Value {
    Value::Map(
        [
            ("external".to_string(), Value::Plain("true".into())),
            ("name".to_string(), name),
        ]
        .into_iter()
        .collect(),
    )
}

/// Sets `key` in the `section` of `map` (`labels`, `environment`), written as a mapping or as
/// a list of `KEY=VALUE`; a value already there stays unless `replace`.
fn set_entry(map: &mut Map, section: &str, key: &str, value: &str, replace: bool) {
    let prefix = format!("{key}=");
    match map.get_mut(section) {
        Some(Value::Seq(items)) => {
            let present = items
                .iter()
                .any(|i| i.text().is_some_and(|t| t.starts_with(&prefix) || t == key));
            if present && !replace {
                return;
            }
            items.retain(|i| !i.text().is_some_and(|t| t.starts_with(&prefix) || t == key));
            items.push(Value::str(format!("{key}={value}")));
        }
        _ => {
            let entries = map.map_mut(section);
            if replace || entries.get(key).is_none() {
                entries.insert(key, Value::str(value));
            }
        }
    }
}

fn tmpfs_mount(target: &str, size: Option<u64>) -> Value {
    let mut mount: Map = [
        ("type".to_string(), Value::str("tmpfs")),
        ("target".to_string(), Value::str(target)),
    ]
    .into_iter()
    .collect();
    if let Some(size) = size {
        mount.insert(
            "tmpfs",
            Value::Map(
                [("size".to_string(), Value::Plain(size.to_string()))]
                    .into_iter()
                    .collect(),
            ),
        );
    }
    Value::Map(mount)
}

/// A size as compose reads one (`256m`, `1gb`, `1024`): bytes, 1024-based units.
fn bytes(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = lower[digits.len()..].trim_end_matches('b');
    let number: f64 = digits.trim().parse().ok()?;
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    // Sizes are far below 2^53, where f64 is exact.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    Some((number * scale as f64) as u64)
}

/// A swarm node's architecture (as `uname -m` says it) for an OCI platform's.
fn node_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" | "x86_64" => "x86_64",
        "arm64" | "aarch64" => "aarch64",
        "arm" => "armv7l",
        "386" => "i686",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// `BASE_HASH`: the name of a config or secret with this content. The hash is FNV-1a, written
/// out here because the name must not change between composectl builds (std's hasher may);
/// swarm names are at most 64 characters.
fn content_name(base: &str, data: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let base: String = base.chars().take(64 - 13).collect();
    format!("{base}_{:012x}", hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compose_file::SERVICE_KEYS;

    #[test]
    fn every_service_key_has_a_policy_and_the_swarm_page_lists_it() {
        let keys: Vec<&str> = SERVICE_POLICY.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys, SERVICE_KEYS,
            "one policy per compose service key, in the same order"
        );
        let page =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/swarm.md"))
                .expect("docs/swarm.md");
        for key in keys {
            assert!(
                page.contains(&format!("`{key}`")),
                "docs/swarm.md's table lacks `{key}`"
            );
        }
    }

    #[test]
    fn entries_are_set_in_lists_and_mappings_alike() {
        let mut service = Map::default();
        service.insert(
            "labels",
            Value::Seq(vec![Value::str("a=1"), Value::str("b")]),
        );
        set_entry(&mut service, "labels", "a", "2", false);
        set_entry(&mut service, "labels", "b", "2", true);
        set_entry(&mut service, "labels", "c", "3", false);
        let items: Vec<&str> = match service.get("labels") {
            Some(Value::Seq(items)) => items.iter().filter_map(Value::text).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(items, ["a=1", "b=2", "c=3"]);
        let mut service = Map::default();
        set_entry(&mut service, "environment", "A", "1", false);
        set_entry(&mut service, "environment", "A", "2", false);
        let env = service
            .get("environment")
            .and_then(Value::as_map)
            .expect("a mapping");
        assert_eq!(env.get("A").and_then(Value::text), Some("1"));
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(bytes("256m"), Some(256 << 20));
        assert_eq!(bytes("1GB"), Some(1 << 30));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("lots"), None);
        let a = content_name("metrics_prometheus", b"x");
        assert_eq!(a, content_name("metrics_prometheus", b"x"));
        assert_ne!(a, content_name("metrics_prometheus", b"y"));
        assert!(content_name(&"x".repeat(100), b"").len() <= 64);
    }
}
