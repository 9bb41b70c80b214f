//! The parts of a compose file composectl needs: the `x-composectl` block, the services (their
//! networks, healthchecks, container names, profiles, published ports) and the top-level
//! networks; and the checks that refuse what `docker compose config` refuses, so that a file
//! `check` accepts is one compose runs: keys, interpolation, typed values, port and volume
//! syntax, references to undeclared volumes, secrets, configs, networks and services, env files,
//! `extends` and `include` targets. Everything else in the file is left to compose.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

use super::env::{EnvLayers, interpolate};
use super::meta::{self, META_KEY, Meta};
use super::parser::{Located, Parser};
use super::syntax::{self, Cast, PortSpec};
use super::yaml::{self, Node};
use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::Graph;

/// The accepted compose file names, in compose's own order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    /// A healthcheck written in the compose file; images may still bring their own.
    pub healthcheck: bool,
    pub container_name: Option<Located>,
    /// Services behind a profile are not started by a plain `compose up`.
    pub profiles: Vec<String>,
    pub networks: Vec<Located>,
    /// `image:`, interpolated.
    pub image: Option<String>,
    /// How long its healthcheck may take to report healthy, when the file says.
    #[serde(skip)]
    pub health_budget: Option<HealthBudget>,
    /// `stop_grace_period`, when the file sets one compose can read (compose's default is 10s).
    #[serde(skip)]
    pub stop_grace: Option<Duration>,
    /// The services it depends on: compose stops it before them.
    #[serde(skip)]
    pub depends_on: Vec<String>,
    /// The line of its own `cgroup_parent`: composectl leaves it there, outside the stack's slice.
    #[serde(skip)]
    pub cgroup_parent: Option<usize>,
    #[serde(skip)]
    pub line: usize,
}

/// The longest a healthcheck written in the file takes to report healthy: its start period
/// plus `retries` intervals (Docker's defaults for what it leaves out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthBudget {
    pub total: Duration,
    /// How it adds up, for messages.
    pub terms: String,
    pub line: usize,
}

/// A network as the compose file's top-level `networks:` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkDecl {
    pub key: String,
    /// The engine-side name (`name:` or `external.name`, else the key).
    pub name: String,
    pub external: bool,
    #[serde(skip)]
    pub line: usize,
}

/// A host port a running service publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub service: String,
    pub spec: PortSpec,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFile {
    pub meta: Meta,
    pub services: Vec<Service>,
    pub networks: Vec<NetworkDecl>,
    /// The services `compose up` starts: no profile, or one named in COMPOSE_PROFILES.
    pub running: BTreeSet<String>,
    /// The host ports the running services publish.
    pub ports: Vec<Published>,
    /// The host paths the running services bind-mount, as written (interpolated).
    pub binds: Vec<Located>,
}

/// Top-level keys of the compose specification (`x-*` extensions aside).
const TOP_LEVEL_KEYS: [&str; 9] = [
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

/// Service keys of the compose specification as of compose-go 2.13 (`x-*` extensions aside):
/// keys newer than the installed compose are accepted rather than refused.
pub const SERVICE_KEYS: [&str; 93] = [
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// What the compose schema wants of a service key left empty (`environment:` holding only a
/// comment is null): every service key but these refuses null, as compose does ("must be a
/// mapping"). `pid:` is refused too, though compose's schema allows it: compose 2.26 then crashes.
const NULL_ALLOWED: [&str; 4] = ["command", "deploy", "develop", "entrypoint"];

/// The type compose's schema names first for a service key, in its own words.
fn schema_type(key: &str) -> &'static str {
    match key {
        "annotations" | "depends_on" | "environment" | "extra_hosts" | "labels" | "models"
        | "networks" | "sysctls" => "a mapping or a list",
        "blkio_config" | "healthcheck" | "logging" | "storage_opt" | "ulimits"
        | "credential_spec" | "extends" => "a mapping",
        "cap_add"
        | "cap_drop"
        | "configs"
        | "devices"
        | "device_cgroup_rules"
        | "dns_opt"
        | "expose"
        | "external_links"
        | "gpus"
        | "group_add"
        | "links"
        | "ports"
        | "post_start"
        | "pre_stop"
        | "pre_start"
        | "profiles"
        | "secrets"
        | "security_opt"
        | "volumes"
        | "volumes_from" => "a list",
        "init" | "oom_kill_disable" | "privileged" | "read_only" | "stdin_open" | "tty"
        | "use_api_socket" => "a boolean or string",
        "cpu_count" | "cpu_percent" | "cpu_period" | "cpu_quota" | "cpu_rt_period"
        | "cpu_rt_runtime" | "cpu_shares" | "oom_score_adj" | "pids_limit" | "scale"
        | "mem_swappiness" => "an integer or string",
        "cpus" | "mem_limit" | "mem_reservation" | "memswap_limit" | "shm_size" => {
            "a number or string"
        }
        _ => "a string",
    }
}

/// Service keys the compose schema types as a mapping or a list only: a string there is
/// refused (`environment: "FOO=1"`).
const COLLECTION_KEYS: [&str; 24] = [
    "annotations",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "configs",
    "credential_spec",
    "depends_on",
    "devices",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "group_add",
    "healthcheck",
    "labels",
    "links",
    "logging",
    "ports",
    "secrets",
    "security_opt",
    "storage_opt",
    "sysctls",
    "ulimits",
    "volumes",
];

/// `build:` fields the compose schema types as a mapping or a list, which refuse null.
const BUILD_COLLECTIONS: [&str; 10] = [
    "additional_contexts",
    "args",
    "cache_from",
    "cache_to",
    "extra_hosts",
    "labels",
    "platforms",
    "secrets",
    "ssh",
    "tags",
];

/// Service keys the compose schema types as a string only: a mapping or list is refused.
const SCALAR_KEYS: [&str; 18] = [
    "cgroup",
    "cgroup_parent",
    "container_name",
    "domainname",
    "hostname",
    "image",
    "ipc",
    "isolation",
    "mac_address",
    "network_mode",
    "pid",
    "platform",
    "pull_policy",
    "restart",
    "runtime",
    "stop_signal",
    "user",
    "userns_mode",
];

/// Service keys whose list form the compose schema types as a list of strings: a number or
/// boolean item (`command: [redis-server, --port, 6379]`) is refused.
const STRING_LISTS: [&str; 23] = [
    "annotations",
    "cap_add",
    "cap_drop",
    "command",
    "depends_on",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "entrypoint",
    "environment",
    "external_links",
    "extra_hosts",
    "label_file",
    "labels",
    "links",
    "networks",
    "profiles",
    "security_opt",
    "sysctls",
    "tmpfs",
    "volumes_from",
    "env_file",
];

/// Reads a compose file's text, reporting every problem into `diags` with its line. Files the
/// compose file names (env files, `extends` and `include` targets) are looked up beside it.
pub fn parse(path: &Path, text: &str, env: &EnvLayers, diags: &mut Diagnostics) -> ComposeFile {
    let mut parser = Parser::new(path, env, diags);
    let doc = match yaml::parse(text) {
        Ok(Some(doc)) if !yaml::is_null(&doc) => doc,
        Ok(_) => {
            parser.error(
                None,
                "the file is empty",
                "a compose file needs at least a services: mapping",
            );
            return ComposeFile::default();
        }
        Err(e) => {
            parser.diags.push(syntax_error(path, text, &e));
            return ComposeFile::default();
        }
    };
    if !yaml::is_mapping(&doc) {
        parser.error(
            Some(yaml::line(&doc)),
            format!("the top level is {}, not a mapping", yaml::kind(&doc)),
            "a compose file is a mapping with services:, networks:, ...",
        );
        return ComposeFile::default();
    }
    // Declared secrets count as set: `enable` generates them before the stack runs.
    let env = env.assuming_set(&meta::declared_secrets(&doc));
    let mut parser = Parser {
        env: &env,
        ..parser
    };
    parser.interpolation(&doc);
    let included = parser.top_level(&doc);
    let networks = parser.networks(&doc);
    let mut file = ComposeFile {
        meta: yaml::get(&doc, META_KEY)
            .map(|entry| parser.meta(entry.value))
            .unwrap_or_default(),
        networks,
        ..ComposeFile::default()
    };
    parser.services(&doc, &included, &mut file);
    parser.hook_services(&file.meta.backup, &file.running);
    file
}

/// A YAML syntax error with the line it is on and a caret under its column; a tab, which YAML
/// never allows for indentation and libyaml reports as a character that "cannot start any
/// token", is named as such.
fn syntax_error(path: &Path, text: &str, error: &yaml::SyntaxError) -> Diagnostic {
    let diag = Diagnostic::error(path.to_path_buf(), String::new()).at_position(
        text,
        error.line,
        error.column,
    );
    let tab = diag.pointed_at() == Some('\t') || error.message.contains("tab");
    let (message, hint) = if tab {
        (
            format!("YAML syntax error: a tab character ({})", error.message),
            "YAML indents with spaces only: replace the tabs on this line with spaces",
        )
    } else {
        (
            format!("YAML syntax error: {}", error.message),
            "fix the YAML syntax; `docker compose config` shows the same file as compose reads it",
        )
    };
    Diagnostic {
        message,
        ..diag.hint(hint)
    }
}

/// The profiles COMPOSE_PROFILES in the env layers turns on, as compose reads it.
fn active_profiles(env: &EnvLayers) -> BTreeSet<String> {
    env.get("COMPOSE_PROFILES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn runs(profiles: &[String], active: &BTreeSet<String>) -> bool {
    profiles.is_empty() || active.contains("*") || profiles.iter().any(|p| active.contains(p))
}

/// The names a top-level section (`volumes:`, `secrets:`, `configs:`) declares.
fn declared(doc: &Node, section: &str) -> BTreeSet<String> {
    yaml::get(doc, section)
        .map(|entry| {
            yaml::entries(entry.value)
                .into_iter()
                .map(|e| e.key.into_owned())
                // An x- key is an extension there, not a declaration (services are the
                // exception: compose keeps an x- service).
                .filter(|key| section == "services" || !key.starts_with("x-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A service's view of the rest of the file, for the checks that cross-reference it.
struct FileContext {
    volumes: BTreeSet<String>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
    networks: BTreeSet<String>,
    services: BTreeSet<String>,
}

impl Parser<'_> {
    /// A list of strings or a mapping keyed by them (`networks:`, `depends_on:`), with lines.
    fn names(&mut self, node: &Node, what: &str) -> Vec<Located> {
        if yaml::is_mapping(node) {
            return yaml::entries(node)
                .into_iter()
                .map(|e| Located {
                    value: e.key.into_owned(),
                    line: e.line,
                })
                .collect();
        }
        self.string_list(node, what)
    }

    /// Compose interpolates every string value of the file, extensions included, and refuses
    /// the file on the first `${VAR:?message}` whose variable no env layer sets. It also needs
    /// every mapping key to be a string (`1: x` is not).
    fn interpolation(&mut self, doc: &Node) {
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        yaml::walk(doc, |path, node| {
            for key in yaml::keys(node) {
                if !matches!(yaml::kind(key), "a string" | "a tagged value") {
                    keys.push((yaml::line(key), path.join(), yaml::kind(key)));
                }
            }
            let Some(text) = yaml::scalar_text(node) else {
                return;
            };
            if text.contains('$')
                && let Err(message) = interpolate(&text, self.env)
            {
                problems.push((yaml::line(node), format!("{}: {message}", path.join())));
            }
        });
        for (line, path, kind) in keys {
            let place = if path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {path}")
            };
            self.error(
                Some(line),
                format!("a key {place} is {kind}; compose needs string keys"),
                "quote the key, e.g. \"1\": value",
            );
        }
        for (line, message) in problems {
            self.error(
                Some(line),
                message,
                "set the variable in the root or stack .env / .env.local, or give a default with ${VAR:-default}; write $$ for a literal $",
            );
        }
    }

    /// Unknown top-level keys, typed top-level fields and `include` targets; returns the
    /// included files that could be read, since compose merges what they declare.
    fn top_level(&mut self, doc: &Node) -> Vec<Included> {
        for entry in yaml::entries(doc) {
            let key = entry.key.as_ref();
            if !TOP_LEVEL_KEYS.contains(&key) && !key.starts_with("x-") {
                self.unknown_key(entry.line, key, "top-level key", &TOP_LEVEL_KEYS);
            }
        }
        self.casts(doc, syntax::TOP_LEVEL_CASTS, "");
        self.secret_sources(doc);
        let mut included = Vec::new();
        for item in list(doc, "include") {
            let paths: Vec<&Node> = match yaml::get(item, "path") {
                None => vec![item],
                Some(path) => match yaml::as_sequence(path.value) {
                    Some(paths) => paths.iter().map(|p| &**p).collect(),
                    None => vec![path.value],
                },
            };
            for path in paths {
                included.extend(
                    self.referenced_file(path, "include", true)
                        .and_then(|path| {
                            let doc = read_yaml(path.clone())?;
                            Some(Included { path, doc })
                        }),
                );
            }
        }
        included
    }

    /// A secret compose creates needs a file or an environment variable to read it from.
    fn secret_sources(&mut self, doc: &Node) {
        let secrets = yaml::get(doc, "secrets")
            .map(|s| yaml::entries(s.value))
            .unwrap_or_default();
        for secret in secrets {
            if !yaml::is_mapping(secret.value) {
                continue;
            }
            let external = yaml::get(secret.value, "external")
                .is_some_and(|e| yaml::as_bool(e.value) != Some(false));
            let has = |key| yaml::get(secret.value, key).is_some();
            if !external && !has("file") && !has("environment") {
                self.error(
                    Some(secret.line),
                    format!(
                        "secret {} has no file: or environment: to read it from",
                        secret.key
                    ),
                    "add file: (a path) or environment: (a variable), or mark it external: true",
                );
            }
        }
    }

    /// A file the compose file names (env_file, label_file, include, extends), which compose
    /// opens relative to the compose file's directory.
    fn referenced_file(&mut self, node: &Node, what: &str, required: bool) -> Option<PathBuf> {
        let name = self.value(node)?;
        let file = self.path.parent().unwrap_or(Path::new(".")).join(&name);
        if required && !file.exists() {
            self.error(
                Some(yaml::line(node)),
                format!("{what} {name:?} does not exist ({})", file.display()),
                "create it (paths are relative to the compose file), fix the path, or, for an env_file, mark it `required: false`",
            );
            return None;
        }
        Some(file)
    }

    fn unknown_key(&mut self, line: usize, key: &str, what: &str, known: &[&str]) {
        let hint = match crate::diag::closest(key, known.iter().copied()) {
            Some(near) => format!("did you mean {near}? (extensions start with x-)"),
            None => {
                "see the compose specification for the keys there are; extensions start with x-"
                    .into()
            }
        };
        self.error(Some(line), format!("unknown {what} {key:?}"), &hint);
    }

    /// Compose casts the strings of typed fields (`retries: ${RETRIES}`) after interpolation and
    /// refuses the file when one does not convert; plain YAML numbers and booleans need no cast.
    fn casts(&mut self, node: &Node, table: &[(&[&str], Cast)], prefix: &str) {
        for (pattern, cast) in table {
            let mut found = Vec::new();
            matching(node, pattern, prefix, &mut found);
            for (path, value) in found {
                if yaml::kind(value) != "a string" {
                    continue;
                }
                let Some(text) = self.value(value) else {
                    continue;
                };
                if let Err(problem) = cast.check(&text) {
                    self.error(
                        Some(yaml::line(value)),
                        format!("{path}: {problem}"),
                        "compose converts this field after interpolation; an empty value usually means a variable in it is not set",
                    );
                }
            }
        }
    }

    fn services(&mut self, doc: &Node, included: &[Included], file: &mut ComposeFile) {
        // No services: key is fine to compose (the services may all come from include:); a
        // stack with no service at all is refused below, as a stack.
        let services = yaml::get(doc, "services");
        if let Some(services) = &services
            && !yaml::is_mapping(services.value)
        {
            self.error(
                Some(services.line),
                format!(
                    "services is {}, expected a mapping",
                    yaml::kind(services.value)
                ),
                "write services as a mapping of service name to its settings",
            );
            return;
        }
        let entries = services
            .as_ref()
            .map(|s| yaml::entries(s.value))
            .unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let read: Vec<(Service, &Node)> = entries
            .iter()
            .filter_map(|e| {
                let mut service = self.service(&e.key, e.line, e.value)?;
                if yaml::get(e.value, "extends").is_some() {
                    service.profiles = self.profiles_through_extends(doc, dir, e.value, 0);
                }
                Some((service, e.value))
            })
            .collect();
        let active = active_profiles(self.env);
        file.running = read
            .iter()
            .filter(|(s, _)| runs(&s.profiles, &active))
            .map(|(s, _)| s.name.clone())
            .collect();
        // Included files' resources and services count as declared (and their services as
        // running: their profiles are theirs to check).
        let all = |section| {
            std::iter::once(doc)
                .chain(included.iter().map(|i| &*i.doc))
                .flat_map(|d| declared(d, section))
                .collect::<BTreeSet<_>>()
        };
        let context = FileContext {
            volumes: all("volumes"),
            secrets: all("secrets"),
            configs: all("configs"),
            networks: all("networks"),
            services: all("services"),
        };
        self.depends_on_cycles(&entries);
        if context.services.is_empty() {
            self.error(
                services.as_ref().map(|s| s.line),
                "the stack has no services: its unit would have nothing to run",
                "add a service under services: (or include: a file that has one); networks \
                 shared by stacks belong in networks.toml",
            );
        }
        let running: BTreeSet<String> = file
            .running
            .iter()
            .cloned()
            .chain(
                context
                    .services
                    .difference(&read.iter().map(|(s, _)| s.name.clone()).collect())
                    .cloned(),
            )
            .collect();
        for (service, node) in &read {
            // Compose parses ports and volumes before it looks at profiles.
            let ports = self.ports(service, node);
            let (volumes, binds) = self.volumes(service, node);
            self.extends(service, node, &context);
            if file.running.contains(&service.name) {
                file.binds.extend(binds);
                for (volume, line) in volumes {
                    if !context.volumes.contains(&volume) {
                        self.undeclared(line, &service.name, "volume", &volume, "volumes");
                    }
                }
                self.references(service, node, &context, &running);
                file.ports
                    .extend(ports.into_iter().map(|(spec, line)| Published {
                        service: service.name.clone(),
                        spec,
                        line,
                    }));
            }
        }
        file.services = read.into_iter().map(|(s, _)| s).collect();
        self.included_services(included, &active, file);
    }

    /// The services include: brings in join the stack's model (what it waits for and
    /// restarts), read as their own file's; the included file's problems are compose's to
    /// report when it loads it. A name this file also defines stays this file's.
    fn included_services(
        &mut self,
        included: &[Included],
        active: &BTreeSet<String>,
        file: &mut ComposeFile,
    ) {
        let env = self.env;
        let own_services = file.services.len();
        for Included { path, doc } in included {
            let mut ignored = Diagnostics::default();
            let mut parser = Parser::new(path, env, &mut ignored);
            for entry in yaml::get(doc, "services")
                .map(|services| yaml::entries(services.value))
                .unwrap_or_default()
            {
                let own = file.services[..own_services].iter();
                if let Some(own) = own.clone().find(|s| s.name == entry.key.as_ref()) {
                    self.error(
                        Some(own.line),
                        format!(
                            "service {} is defined here and in the included {}",
                            own.name,
                            path.display()
                        ),
                        "compose refuses the conflict: rename one, or extend the included service instead",
                    );
                    continue;
                }
                if file.services.iter().any(|s| s.name == entry.key.as_ref()) {
                    continue; // the same file included twice
                }
                let Some(mut service) = parser.service(&entry.key, entry.line, entry.value) else {
                    continue;
                };
                // Its lines are another file's: budgets are warned about where they are written.
                service.health_budget = None;
                if runs(&service.profiles, active) {
                    file.running.insert(service.name.clone());
                }
                file.services.push(service);
            }
        }
    }

    fn service(&mut self, name: &str, line: usize, node: &Node) -> Option<Service> {
        if !yaml::is_mapping(node) {
            self.error(
                Some(line),
                format!("service {name} is {}, expected a mapping", yaml::kind(node)),
                "give the service at least an image: or build:",
            );
            return None;
        }
        for entry in yaml::entries(node) {
            let key = entry.key.as_ref();
            if !SERVICE_KEYS.contains(&key) && !key.starts_with("x-") {
                self.unknown_key(
                    entry.line,
                    key,
                    &format!("key in service {name}:"),
                    &SERVICE_KEYS,
                );
            }
            if STRING_LISTS.contains(&key) {
                self.string_items(name, key, entry.value);
            }
            if yaml::is_null(entry.value)
                && SERVICE_KEYS.contains(&key)
                && !NULL_ALLOWED.contains(&key)
            {
                self.error(
                    Some(entry.line),
                    format!(
                        "service {name}: {key} is empty (null), and compose needs {}",
                        schema_type(key)
                    ),
                    &format!("give {key} a value, or remove the key"),
                );
            }
        }
        self.casts(node, syntax::SERVICE_CASTS, &format!("services.{name}."));
        self.service_shape(name, node);
        let healthcheck = yaml::get(node, "healthcheck").filter(|hc| {
            let disabled = yaml::get(hc.value, "disable")
                .and_then(|d| yaml::as_bool(d.value))
                .unwrap_or(false);
            let none = yaml::get(hc.value, "test").is_some_and(|test| {
                yaml::as_sequence(test.value)
                    .and_then(|items| items.first())
                    .and_then(|first| yaml::scalar_text(first))
                    .is_some_and(|first| first == "NONE")
            });
            !disabled && !none
        });
        let health_budget = healthcheck
            .as_ref()
            .and_then(|hc| self.health_budget(hc.value, hc.line));
        let container_name = yaml::get(node, "container_name").and_then(|entry| {
            let value = self.string(entry.value, &format!("service {name}: container_name"))?;
            Some(Located {
                value,
                line: entry.line,
            })
        });
        let profiles = yaml::get(node, "profiles")
            .map(|entry| self.string_list(entry.value, &format!("service {name}: profiles")))
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.value)
            .collect();
        let networks = yaml::get(node, "networks")
            .map(|entry| self.names(entry.value, &format!("service {name}: networks")))
            .unwrap_or_default();
        Some(Service {
            name: name.to_string(),
            healthcheck: healthcheck.is_some(),
            container_name,
            profiles,
            networks,
            image: yaml::get(node, "image").and_then(|e| self.value(e.value)),
            health_budget,
            stop_grace: yaml::get(node, "stop_grace_period")
                .and_then(|e| self.value(e.value))
                .and_then(|text| syntax::parse_go_duration(&text)),
            depends_on: self.depends_on(node),
            cgroup_parent: yaml::get(node, "cgroup_parent").map(|entry| entry.line),
            line,
        })
    }

    /// The rules compose's schema and loader apply to a service's fields beyond their names:
    /// a value of the wrong kind, fields that exclude each other, a GPU request it cannot make.
    fn service_shape(&mut self, name: &str, node: &Node) {
        for entry in yaml::entries(node) {
            let key = entry.key.as_ref();
            let kind = yaml::kind(entry.value);
            let wanted = if COLLECTION_KEYS.contains(&key) && kind == "a string" {
                Some(schema_type(key))
            } else if SCALAR_KEYS.contains(&key) && matches!(kind, "a mapping" | "a list") {
                Some("a string")
            } else {
                None
            };
            if let Some(wanted) = wanted {
                self.error(
                    Some(entry.line),
                    format!("service {name}: {key} is {kind}, and compose needs {wanted}"),
                    &format!("see `docker compose config` for the forms {key} takes"),
                );
            }
        }
        if let Some(environment) = yaml::get(node, "environment") {
            for variable in yaml::entries(environment.value) {
                if matches!(yaml::kind(variable.value), "a mapping" | "a list") {
                    self.error(
                        Some(variable.line),
                        format!(
                            "service {name}: environment {} is {}, and compose needs a string, number or boolean",
                            variable.key,
                            yaml::kind(variable.value)
                        ),
                        "quote the value as one string",
                    );
                }
            }
        }
        if let (Some(mode), Some(networks)) =
            (yaml::get(node, "network_mode"), yaml::get(node, "networks"))
            && !yaml::is_null(networks.value)
        {
            self.error(
                Some(mode.line),
                format!("service {name}: network_mode and networks exclude each other"),
                "keep network_mode (the service shares that network stack) or networks, not both",
            );
        }
        let field = |node: &Node, key: &str| yaml::get(node, key).and_then(|e| self.value(e.value));
        let platform = field(node, "platform");
        let build_platforms: Option<Vec<String>> = yaml::get(node, "build")
            .and_then(|build| yaml::get(build.value, "platforms"))
            .and_then(|p| yaml::as_sequence(p.value))
            .map(|items| items.iter().filter_map(|i| self.value(i)).collect());
        if let (Some(platform), Some(platforms)) = (platform, build_platforms)
            && !platforms.is_empty()
            && !platforms.contains(&platform)
        {
            self.error(
                yaml::get(node, "platform").map(|e| e.line),
                format!("service {name}: platform {platform} is not one of build.platforms"),
                "add it to build.platforms, or build for the platform the service runs on",
            );
        }
        self.device_requests(name, node);
        self.nested_shapes(name, node);
    }

    /// Fields inside a service's mappings that compose's schema constrains: what a resource
    /// section may hold, a watch rule's action, a build field left empty, a mount's fields.
    fn nested_shapes(&mut self, name: &str, node: &Node) {
        let at = |path: &[&str]| {
            path.iter()
                .try_fold(node, |node, key| yaml::get(node, key).map(|e| e.value))
        };
        if let Some(resources) = at(&["deploy", "resources"]) {
            for entry in yaml::entries(resources) {
                if !matches!(entry.key.as_ref(), "limits" | "reservations")
                    && !entry.key.starts_with("x-")
                {
                    self.unknown_key(
                        entry.line,
                        &entry.key,
                        &format!("key in service {name}: deploy.resources"),
                        &["limits", "reservations"],
                    );
                }
            }
        }
        for rule in at(&["develop", "watch"])
            .and_then(yaml::as_sequence)
            .unwrap_or_default()
        {
            if yaml::is_mapping(rule) && yaml::get(rule, "action").is_none() {
                self.error(
                    Some(yaml::line(rule)),
                    format!("service {name}: a develop.watch rule without action"),
                    "add action: sync, rebuild, restart, sync+restart or sync+exec",
                );
            }
        }
        if let Some(build) = at(&["build"]).filter(|b| yaml::is_mapping(b)) {
            for entry in yaml::entries(build) {
                if BUILD_COLLECTIONS.contains(&entry.key.as_ref()) && yaml::is_null(entry.value) {
                    self.error(
                        Some(entry.line),
                        format!("service {name}: build.{} is empty (null)", entry.key),
                        &format!("give build.{} a value, or remove the key", entry.key),
                    );
                }
            }
        }
        for mount in list(node, "volumes").iter().filter(|m| yaml::is_mapping(m)) {
            self.mount_shape(name, mount);
        }
    }

    /// A long-syntax volume entry: its keys, and a tmpfs size in bytes.
    fn mount_shape(&mut self, name: &str, mount: &Node) {
        const MOUNT_KEYS: [&str; 9] = [
            "type",
            "source",
            "target",
            "read_only",
            "consistency",
            "bind",
            "volume",
            "tmpfs",
            "image",
        ];
        for entry in yaml::entries(mount) {
            if !MOUNT_KEYS.contains(&entry.key.as_ref()) && !entry.key.starts_with("x-") {
                self.unknown_key(
                    entry.line,
                    &entry.key,
                    &format!("key in a volume of service {name}:"),
                    &MOUNT_KEYS,
                );
            }
        }
        let size = yaml::get(mount, "tmpfs").and_then(|t| yaml::get(t.value, "size"));
        if let Some(size) = size
            && yaml::kind(size.value) == "a number"
            && yaml::scalar_text(size.value).is_some_and(|n| n.parse::<u64>().is_err())
        {
            self.error(
                Some(size.line),
                format!("service {name}: tmpfs size is not a whole number of bytes (0 or more)"),
                "write a byte count, or a string such as \"64m\"",
            );
        }
    }

    /// GPU and other device reservations (`deploy.resources.reservations.devices`), which the
    /// engine cannot make without capabilities, or with both a count and device ids.
    fn device_requests(&mut self, name: &str, node: &Node) {
        let devices = yaml::get(node, "deploy")
            .and_then(|d| yaml::get(d.value, "resources"))
            .and_then(|r| yaml::get(r.value, "reservations"))
            .and_then(|r| yaml::get(r.value, "devices"))
            .and_then(|d| yaml::as_sequence(d.value))
            .unwrap_or_default();
        for device in devices {
            let line = Some(yaml::line(device));
            if !yaml::is_mapping(device) {
                continue;
            }
            if yaml::get(device, "capabilities").is_none() {
                self.error(
                    line,
                    format!("service {name}: a device reservation without capabilities"),
                    "add capabilities, e.g. capabilities: [gpu]",
                );
            }
            if yaml::get(device, "count").is_some() && yaml::get(device, "device_ids").is_some() {
                self.error(
                    line,
                    format!("service {name}: a device reservation with both count and device_ids"),
                    "keep one: count for any N devices, device_ids for those devices",
                );
            }
            if let Some(count) = yaml::get(device, "count")
                && let Some(text) = self.value(count.value)
                && text != "all"
                && text.parse::<u64>().is_err()
            {
                self.error(
                    Some(count.line),
                    format!("service {name}: device count {text:?} is neither a number nor all"),
                    "write a number of devices, or all",
                );
            }
        }
    }

    /// start_period + interval × retries, with Docker's defaults (0, 30s, 3) for what the
    /// healthcheck leaves out; None when a value is not one compose accepts (compose says so).
    fn health_budget(&self, healthcheck: &Node, line: usize) -> Option<HealthBudget> {
        let field = |key: &str| yaml::get(healthcheck, key).map(|e| self.value(e.value));
        let duration = |key: &str, default: Duration| match field(key) {
            None => Some(default),
            Some(text) => syntax::parse_go_duration(&text?),
        };
        let start_period = duration("start_period", Duration::ZERO)?;
        let interval = duration("interval", Duration::from_secs(30))?;
        let retries: u32 = match field("retries") {
            None => 3,
            Some(text) => text?.parse().ok()?,
        };
        Some(HealthBudget {
            total: start_period + interval * retries,
            terms: format!(
                "start_period {} + interval {} × retries {retries}",
                crate::duration::format(start_period),
                crate::duration::format(interval)
            ),
            line,
        })
    }

    fn string_items(&mut self, service: &str, key: &str, node: &Node) {
        for (i, item) in yaml::as_sequence(node)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            // env_file items may be mappings (the long syntax); the schema checks those.
            let kind = yaml::kind(item);
            if kind != "a string" && !(key == "env_file" && kind == "a mapping") {
                self.error(
                    Some(yaml::line(item)),
                    format!(
                        "service {service}: {key} item {} is {kind}, expected a string",
                        i + 1
                    ),
                    "quote it, e.g. \"6379\"",
                );
            }
        }
    }

    /// The service's published ports; syntax errors are reported for every service, since
    /// compose parses them before it looks at profiles.
    fn ports(&mut self, service: &Service, node: &Node) -> Vec<(PortSpec, usize)> {
        let mut specs = Vec::new();
        for item in list(node, "ports") {
            let line = yaml::line(item);
            if yaml::is_mapping(item) {
                // The long syntax: compose checks its types only, so only a well-formed
                // published port is kept (for collisions), and nothing is reported here.
                let field = |key| yaml::get(item, key).and_then(|e| self.value(e.value));
                let Some(published) = field("published") else {
                    continue;
                };
                let ip = field("host_ip").unwrap_or_default();
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                };
                let target = field("target").unwrap_or_default();
                let protocol = field("protocol").unwrap_or_else(|| "tcp".into());
                if let Ok(spec) =
                    syntax::parse_port(&format!("{ip}:{published}:{target}/{protocol}"))
                {
                    specs.push((spec, line));
                }
                continue;
            }
            let Some(text) = self.value(item) else {
                continue;
            };
            match syntax::parse_port(&text) {
                Ok(spec) => specs.push((spec, line)),
                Err(problem) => self.error(
                    Some(line),
                    format!("service {}: port {text:?}: {problem}", service.name),
                    "write [IP:][HOST:]CONTAINER[/tcp|udp|sctp], e.g. \"127.0.0.1:8080:80\"; an empty part usually means a variable in it is not set",
                ),
            }
        }
        specs
    }

    /// The services a service's `depends_on` names, in its list or its mapping form.
    fn depends_on(&self, service: &Node) -> Vec<String> {
        let Some(deps) = yaml::get(service, "depends_on") else {
            return Vec::new();
        };
        match yaml::as_sequence(deps.value) {
            Some(items) => items.iter().filter_map(|i| self.value(i)).collect(),
            None => yaml::entries(deps.value)
                .into_iter()
                .map(|e| e.key.into_owned())
                .collect(),
        }
    }

    /// Services that depend on each other in a circle, which compose refuses whatever their
    /// profiles ("dependency cycle detected").
    fn depends_on_cycles(&mut self, services: &[yaml::Entry<'_>]) {
        let edges: Vec<(String, Vec<String>, Vec<String>)> = services
            .iter()
            .map(|service| {
                (
                    service.key.to_string(),
                    self.depends_on(service.value),
                    Vec::new(),
                )
            })
            .collect();
        // The graph leaves out an edge to itself; compose refuses one as a cycle.
        for (service, (name, deps, _)) in services.iter().zip(&edges) {
            if deps.contains(name) {
                self.error(
                    Some(service.line),
                    format!("service {name} depends on itself"),
                    &format!("remove {name} from its own depends_on"),
                );
            }
        }
        let graph = Graph::new(edges);
        for cycle in graph.cycles() {
            let line = services
                .iter()
                .find(|s| s.key.as_ref() == cycle[0])
                .map(|s| s.line);
            self.error(
                line,
                format!(
                    "services depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
                "remove one of these depends_on entries: compose cannot start any of them first",
            );
        }
    }

    /// A service's profiles as compose merges them through `extends` (locally or from another
    /// file): the base's, then its own, each once. A service extending one with profiles runs
    /// only when they are active.
    fn profiles_through_extends(
        &self,
        doc: &Node,
        dir: &Path,
        service: &Node,
        depth: usize,
    ) -> Vec<String> {
        let own: Vec<String> = yaml::get(service, "profiles")
            .and_then(|p| yaml::as_sequence(p.value))
            .into_iter()
            .flatten()
            .filter_map(|p| self.value(p))
            .collect();
        // A cycle of extends is compose's error (and the extends check's); stop following it.
        const DEEPEST: usize = 16;
        let Some(extends) = yaml::get(service, "extends").filter(|_| depth < DEEPEST) else {
            return own;
        };
        let (base, file) = if yaml::is_mapping(extends.value) {
            (
                yaml::get(extends.value, "service").and_then(|e| self.value(e.value)),
                yaml::get(extends.value, "file").and_then(|e| self.value(e.value)),
            )
        } else {
            (self.value(extends.value), None)
        };
        let Some(base) = base else {
            return own;
        };
        let from_base = match file {
            None => yaml::get(doc, "services")
                .and_then(|services| yaml::get(services.value, &base))
                .map(|base| self.profiles_through_extends(doc, dir, base.value, depth + 1)),
            Some(file) => {
                let path = dir.join(file);
                let base_dir = path.parent().unwrap_or(dir).to_path_buf();
                read_yaml(path).and_then(|other| {
                    let services = yaml::get(&other, "services")?;
                    let base = yaml::get(services.value, &base)?;
                    Some(self.profiles_through_extends(&other, &base_dir, base.value, depth + 1))
                })
            }
        };
        let mut profiles = from_base.unwrap_or_default();
        for profile in own {
            if !profiles.contains(&profile) {
                profiles.push(profile);
            }
        }
        profiles
    }

    /// `extends:` names a service of this file or of another file, which must exist.
    fn extends(&mut self, service: &Service, node: &Node, context: &FileContext) {
        let Some(extends) = yaml::get(node, "extends") else {
            return;
        };
        let (base, file) = if yaml::is_mapping(extends.value) {
            (
                yaml::get(extends.value, "service").map(|e| e.value),
                yaml::get(extends.value, "file").map(|e| e.value),
            )
        } else {
            (Some(extends.value), None)
        };
        let Some(base) = base.and_then(|b| self.value(b)) else {
            return;
        };
        let defined = match file {
            None => context.services.contains(&base),
            Some(file) => {
                let what = format!("service {}: extends file", service.name);
                let Some(path) = self.referenced_file(file, &what, true) else {
                    return;
                };
                let Some(doc) = read_yaml(path) else {
                    return;
                };
                let Some(services) = yaml::get(&doc, "services") else {
                    return;
                };
                match yaml::get(services.value, &base) {
                    Some(base_node) => {
                        self.inherited_references(
                            &service.name,
                            node,
                            extends.line,
                            base_node.value,
                            context,
                        );
                        true
                    }
                    None => false,
                }
            }
        };
        if !defined {
            let place = if file.is_some() {
                "that file"
            } else {
                "the file"
            };
            self.error(
                Some(extends.line),
                format!(
                    "service {} extends service {base:?}, which {place} does not define",
                    service.name
                ),
                "name a service the file defines, or set file: to the file that defines it",
            );
        }
    }

    /// A service extended from another file brings its references to other services
    /// (depends_on, volumes_from, `service:` modes) with it: they must name services of this
    /// file, since the other file's services do not come along.
    fn inherited_references(
        &mut self,
        name: &str,
        own: &Node,
        line: usize,
        base: &Node,
        context: &FileContext,
    ) {
        let mut named = self.depends_on(base);
        for item in list(base, "volumes_from") {
            if let Some(source) = self.value(item)
                && !source.starts_with("container:")
            {
                named.push(source.split(':').next().unwrap_or_default().to_string());
            }
        }
        for key in ["ipc", "network_mode", "pid"] {
            // The extending service's own mode replaces the base's.
            if yaml::get(own, key).is_none()
                && let Some(target) = yaml::get(base, key)
                    .and_then(|e| self.value(e.value))
                    .and_then(|mode| mode.strip_prefix("service:").map(str::to_string))
            {
                named.push(target);
            }
        }
        for target in named {
            if !context.services.contains(&target) {
                self.error(
                    Some(line),
                    format!(
                        "service {name} extends a service that refers to service {target}, which this file does not define"
                    ),
                    "define that service here too, or extend a service that does not refer to it",
                );
            }
        }
    }

    /// What compose checks only for the services it starts: references to declared volumes,
    /// secrets, configs, networks and services, env and label files, an image to run.
    fn references(
        &mut self,
        service: &Service,
        node: &Node,
        context: &FileContext,
        running: &BTreeSet<String>,
    ) {
        let name = &service.name;
        if ["image", "build", "extends", "provider"]
            .iter()
            .all(|key| yaml::get(node, key).is_none())
        {
            self.error(
                Some(service.line),
                format!("service {name} has neither an image nor a build context"),
                "add image: (or build:) to the service",
            );
        }
        for (section, declared) in [("secrets", &context.secrets), ("configs", &context.configs)] {
            for item in list(node, section) {
                let source = yaml::get(item, "source").map_or(&**item, |s| s.value);
                if let Some(source) = self.value(source)
                    && !declared.contains(&source)
                {
                    self.undeclared(
                        yaml::line(item),
                        name,
                        &section[..section.len() - 1],
                        &source,
                        section,
                    );
                }
            }
        }
        for net in &service.networks {
            if net.value != "default" && !context.networks.contains(&net.value) {
                self.error(
                    Some(net.line),
                    format!("service {name} uses network {:?}, which the file does not declare", net.value),
                    &format!("declare {0} under the top-level networks: (as `{0}: {{external: true}}` for a network of networks.toml)", net.value),
                );
            }
        }
        for key in ["env_file", "label_file"] {
            let Some(entry) = yaml::get(node, key) else {
                continue;
            };
            for (path, required) in listed_files(entry.value, |n| self.value(n)) {
                self.referenced_file(path, &format!("service {name}: {key}"), required);
            }
        }
        if let Some(deps) = yaml::get(node, "depends_on") {
            for dep in self.names(deps.value, &format!("service {name}: depends_on")) {
                let required = yaml::get(deps.value, &dep.value)
                    .and_then(|d| yaml::get(d.value, "required"))
                    .and_then(|r| self.value(r.value))
                    .and_then(|r| yaml::parse_bool(&r))
                    .unwrap_or(true);
                let problem = if !context.services.contains(&dep.value) {
                    "which the file does not define"
                } else if required && !running.contains(&dep.value) {
                    "which does not run: its profiles are not in COMPOSE_PROFILES"
                } else {
                    continue;
                };
                self.error(
                    Some(dep.line),
                    format!(
                        "service {name} depends on service {:?}, {problem}",
                        dep.value
                    ),
                    "depend on a service that runs, or mark the dependency `required: false`",
                );
            }
        }
        if let Some(mode) = yaml::get(node, "network_mode")
            && let Some(text) = self.value(mode.value)
            && let Some(other) = text.strip_prefix("service:")
            && !running.contains(other)
        {
            self.error(
                Some(mode.line),
                format!("service {name}: network_mode names service {other:?}, which does not run in this file"),
                "name a service of this file that runs without a profile",
            );
        }
    }

    fn undeclared(&mut self, line: usize, service: &str, what: &str, name: &str, section: &str) {
        self.error(
            Some(line),
            format!("service {service} uses {what} {name:?}, which the file does not declare"),
            &format!(
                "declare it under the top-level {section}: (e.g. `{section}: {{{name}: {{}}}}`)"
            ),
        );
    }

    /// The named volumes and the bind-mounted host paths of a service, with their lines;
    /// malformed short-syntax specs (`SOURCE:TARGET[:MODE]`) are reported.
    fn volumes(&mut self, service: &Service, node: &Node) -> (Vec<(String, usize)>, Vec<Located>) {
        let mut named = Vec::new();
        let mut binds = Vec::new();
        for item in list(node, "volumes") {
            let line = yaml::line(item);
            let (source, bind) = if yaml::is_mapping(item) {
                let field = |key| yaml::get(item, key).and_then(|e| self.value(e.value));
                match field("type").as_deref() {
                    Some("volume") => (field("source"), false),
                    Some("bind") => {
                        let source = field("source").filter(|s| !s.is_empty());
                        if source.is_none() {
                            self.error(
                                Some(line),
                                format!("service {}: a bind mount without a source", service.name),
                                "add source: with the host path to mount",
                            );
                        }
                        (source, true)
                    }
                    _ => continue,
                }
            } else {
                let Some(text) = self.value(item) else {
                    continue;
                };
                match syntax::parse_volume(&text) {
                    Ok(spec) => {
                        let bind = spec.is_bind();
                        (Some(spec.source).filter(|s| !s.is_empty()), bind)
                    }
                    Err(problem) => {
                        self.error(
                            Some(line),
                            format!("service {}: volume {problem}", service.name),
                            "write SOURCE:TARGET[:ro], e.g. ./data:/data or data:/data; an empty part usually means a variable in it is not set",
                        );
                        continue;
                    }
                }
            };
            let Some(source) = source.filter(|s| !s.is_empty()) else {
                continue;
            };
            if bind {
                binds.push(Located {
                    value: source,
                    line,
                });
            } else {
                named.push((source, line));
            }
        }
        (named, binds)
    }

    fn networks(&mut self, doc: &Node) -> Vec<NetworkDecl> {
        let Some(networks) = yaml::get(doc, "networks") else {
            return Vec::new();
        };
        if yaml::is_null(networks.value) {
            return Vec::new();
        }
        if !yaml::is_mapping(networks.value) {
            self.error(
                Some(networks.line),
                format!(
                    "networks is {}, expected a mapping",
                    yaml::kind(networks.value)
                ),
                "declare networks as a mapping, e.g. networks: {proxy: {external: true}}",
            );
            return Vec::new();
        }
        let mut decls = Vec::new();
        for entry in yaml::entries(networks.value) {
            let key = entry.key.to_string();
            let mut name = None;
            let mut external = false;
            if let Some(ext) = yaml::get(entry.value, "external") {
                if yaml::is_mapping(ext.value) {
                    // The legacy `external: {name: x}` form.
                    external = true;
                    name = yaml::get(ext.value, "name").and_then(|n| {
                        self.string(n.value, &format!("network {key}: external.name"))
                    });
                } else if let Some(flag) = self.value(ext.value).and_then(|v| yaml::parse_bool(&v))
                {
                    external = flag;
                } else if yaml::kind(ext.value) != "a string" {
                    // A string that is no boolean is reported by the casts.
                    self.error(
                        Some(ext.line),
                        format!(
                            "network {key}: external is {}, expected true or false",
                            yaml::kind(ext.value)
                        ),
                        "write external: true",
                    );
                }
            }
            if let Some(n) = yaml::get(entry.value, "name") {
                name = self.string(n.value, &format!("network {key}: name"));
            }
            decls.push(NetworkDecl {
                name: name.unwrap_or_else(|| key.clone()),
                key,
                external,
                line: entry.line,
            });
        }
        decls
    }
}

/// Another compose file's tree, when it can be read and parsed: what it declares matters here,
/// its own problems are compose's to report when it loads it.
/// A file `include:` names, read.
struct Included {
    path: PathBuf,
    doc: Rc<Node>,
}

fn read_yaml(path: PathBuf) -> Option<Rc<Node>> {
    yaml::parse(&std::fs::read_to_string(path).ok()?)
        .ok()
        .flatten()
}

/// The files an `env_file` or `label_file` value names (one, a list, or the long syntax's
/// `{path, required}` items), each with whether it must exist; `value` interpolates a scalar.
pub fn listed_files(node: &Node, value: impl Fn(&Node) -> Option<String>) -> Vec<(&Node, bool)> {
    let items: Vec<&Node> = match yaml::as_sequence(node) {
        Some(items) => items.iter().map(|i| &**i).collect(),
        None => vec![node],
    };
    items
        .into_iter()
        .map(|item| match yaml::get(item, "path") {
            Some(path) => {
                let required = yaml::get(item, "required")
                    .and_then(|r| value(r.value))
                    .and_then(|r| yaml::parse_bool(&r))
                    .unwrap_or(true);
                (path.value, required)
            }
            None => (item, true),
        })
        .collect()
}

/// The items of a list-valued key; nothing when the key is absent or not a list.
fn list<'n>(node: &'n Node, key: &str) -> &'n [Rc<Node>] {
    yaml::get(node, key)
        .and_then(|entry| yaml::as_sequence(entry.value))
        .unwrap_or_default()
}

/// The nodes below `node` at `pattern` (`*`: every key or item), with their dotted paths.
fn matching<'n>(node: &'n Node, pattern: &[&str], path: &str, out: &mut Vec<(String, &'n Node)>) {
    let Some((head, rest)) = pattern.split_first() else {
        out.push((path.to_string(), node));
        return;
    };
    let dot = if path.is_empty() || path.ends_with('.') {
        ""
    } else {
        "."
    };
    if let Some(items) = yaml::as_sequence(node) {
        if *head == "*" {
            for (i, item) in items.iter().enumerate() {
                matching(item, rest, &format!("{path}{dot}{i}"), out);
            }
        }
        return;
    }
    // A named key is looked up, not searched for: most patterns name a field a service lacks.
    if *head == "*" {
        for entry in yaml::entries(node) {
            matching(entry.value, rest, &format!("{path}{dot}{}", entry.key), out);
        }
    } else if let Some(entry) = yaml::get(node, head) {
        matching(entry.value, rest, &format!("{path}{dot}{head}"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::meta::Ready;

    fn parse_text(text: &str) -> (ComposeFile, Diagnostics) {
        let mut diags = Diagnostics::default();
        let env = EnvLayers::from_pairs(&[("NET", "genai")]);
        let file = parse(Path::new("compose.yaml"), text, &env, &mut diags);
        (file, diags)
    }

    #[test]
    fn reads_meta_services_and_networks_through_anchors_and_merges() {
        let text = r#"
x-common: &common
  restart: unless-stopped
  networks: [genai]
  healthcheck:
    test: ["CMD", "true"]
x-composectl:
  description: GenAI
  requires: [database, panel]
  wants: [metrics]
  ready: running
  start_timeout: 15min
services:
  ollama:
    <<: *common
    image: ollama/ollama
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, count: all, capabilities: [gpu]}]
  webui:
    image: ghcr.io/open-webui/open-webui
    container_name: open-webui
    profiles: [ui]
    networks:
      genai:
      default:
networks:
  genai:
    external: true
    name: ${NET}
  default:
"#;
        let (file, diags) = parse_text(text);
        assert!(diags.is_empty(), "{diags}");
        assert_eq!(file.meta.description.as_deref(), Some("GenAI"));
        let requires: Vec<_> = file
            .meta
            .requires
            .iter()
            .map(|r| (r.value.as_str(), r.line))
            .collect();
        assert_eq!(requires, [("database", 9), ("panel", 9)]);
        assert_eq!(file.meta.ready, Some(Ready::Running));
        assert_eq!(
            file.meta.start_timeout,
            Some((Duration::from_secs(900), 12))
        );
        let ollama = &file.services[0];
        assert!(ollama.healthcheck);
        assert_eq!(ollama.networks[0].value, "genai");
        let webui = &file.services[1];
        assert!(!webui.healthcheck);
        assert_eq!(webui.container_name.as_ref().unwrap().value, "open-webui");
        assert_eq!(webui.profiles, ["ui"]);
        assert_eq!(webui.networks.len(), 2);
        assert_eq!(file.networks[0].name, "genai");
        assert!(file.networks[0].external);
        assert!(!file.networks[1].external);
    }

    #[test]
    fn requires_takes_compose_style_options() {
        let text = "x-composectl:\n  requires:\n    database: {restart: false}\n    panel:\n    auth: {restart: true}\nservices:\n  a:\n    image: x\n";
        let (file, diags) = parse_text(text);
        assert!(diags.is_empty(), "{diags}");
        let requires: Vec<_> = file
            .meta
            .requires
            .iter()
            .map(|r| (r.value.as_str(), r.line))
            .collect();
        assert_eq!(requires, [("database", 3), ("panel", 4), ("auth", 5)]);
        assert_eq!(file.meta.keeps_running_with, ["database"]);

        let text = "x-composectl:\n  requires:\n    database: {restart: maybe, colour: red}\n    panel: yes\nservices:\n  a:\n    image: x\n";
        let (_, diags) = parse_text(text);
        let lines: Vec<_> = diags.errors().map(|d| d.line.unwrap()).collect();
        assert_eq!(lines, [3, 3, 4], "{diags}");
    }

    #[test]
    fn reports_bad_meta_with_lines() {
        let text = "x-composectl:\n  requires: database\n  ready: soon\n  colour: red\n  start_timeout: forever\nservices:\n  a:\n    image: x\n";
        let (_, diags) = parse_text(text);
        let lines: Vec<_> = diags.errors().map(|d| d.line.unwrap()).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{diags}");
    }

    #[test]
    fn update_backup_is_read_and_refused_when_it_is_no_boolean() {
        let service = "services:\n  a:\n    image: x\n";
        let (file, diags) = parse_text(&format!(
            "x-composectl:\n  update: {{backup: true}}\n{service}"
        ));
        assert!(diags.is_empty(), "{diags}");
        assert!(file.meta.update.backup);
        let (file, _) = parse_text(&format!("x-composectl:\n  update:\n{service}"));
        assert!(!file.meta.update.backup, "off unless set");

        let refused = |meta: &str| {
            let (_, diags) = parse_text(&format!("x-composectl:\n{meta}{service}"));
            diags
                .errors()
                .map(|d| {
                    assert_eq!(d.file.as_deref(), Some(Path::new("compose.yaml")));
                    format!(
                        "{}: {} ({})",
                        d.line.unwrap_or(0),
                        d.message,
                        d.hint.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            refused("  update:\n    backup: sometimes\n"),
            [
                "3: x-composectl.update.backup is \"sometimes\", expected true or false (backup: true takes a backup of the stack before update applies newer images)"
            ]
        );
        assert_eq!(
            refused("  update: {backup: [db]}\n"),
            [
                "2: x-composectl.update.backup is a list, expected true or false (backup: true takes a backup of the stack before update applies newer images)"
            ]
        );
        assert_eq!(
            refused("  update: true\n"),
            [
                "2: x-composectl.update is a boolean, expected a mapping (write update: {backup: true})"
            ]
        );
        assert_eq!(
            refused("  update:\n    backups: true\n"),
            [
                "3: unknown key \"backups\" in x-composectl.update (did you mean backup? x-composectl.update takes backup (man 5 x-composectl))"
            ]
        );
    }

    #[test]
    fn disabled_healthchecks_do_not_count() {
        let text = "services:\n  a:\n    healthcheck: {disable: true}\n  b:\n    healthcheck: {test: [NONE]}\n";
        let (file, _) = parse_text(text);
        assert!(file.services.iter().all(|s| !s.healthcheck));
    }

    /// Parses `compose.yaml` in a directory that also holds `others` (paths, texts).
    fn parse_in_dir(text: &str, others: &[(&str, &str)]) -> (ComposeFile, Diagnostics) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, content) in others {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        let mut diags = Diagnostics::default();
        let env = EnvLayers::default();
        let file = parse(&dir.path().join("compose.yaml"), text, &env, &mut diags);
        (file, diags)
    }

    #[test]
    fn profiles_come_along_through_extends_locally_and_from_files() {
        let base = "services:\n  tool:\n    image: x\n    profiles: [tools]\n";
        let text = "services:\n  web:\n    image: x\n  base:\n    image: x\n    profiles: [local]\n  db:\n    extends: base\n    profiles: [extra]\n  cli:\n    extends: {file: common/base.yaml, service: tool}\n  migrate:\n    image: x\n    profiles: [tools]\n    depends_on: [cli]\n";
        let (file, diags) = parse_in_dir(text, &[("common/base.yaml", base)]);
        assert!(!diags.has_errors(), "{diags}");
        let profiles = |name: &str| {
            file.services
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.profiles.clone())
                .expect(name)
        };
        assert_eq!(profiles("db"), ["local", "extra"]);
        assert_eq!(profiles("cli"), ["tools"]);
        assert_eq!(file.running, BTreeSet::from(["web".to_string()]));
    }

    #[test]
    fn included_services_are_the_stacks_own() {
        let part = "services:\n  app:\n    image: x\n  admin:\n    image: x\n    profiles: [ops]\n";
        let (file, diags) = parse_in_dir(
            "include:\n  - parts/app.yaml\n",
            &[("parts/app.yaml", part)],
        );
        assert!(!diags.has_errors(), "{diags}");
        let names: Vec<_> = file.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["app", "admin"]);
        assert_eq!(file.running, BTreeSet::from(["app".to_string()]));

        let (_, diags) = parse_in_dir(
            "include:\n  - parts/app.yaml\nservices:\n  app:\n    image: y\n",
            &[("parts/app.yaml", part)],
        );
        let errors: Vec<_> = diags
            .errors()
            .map(|d| (d.line, d.message.clone()))
            .collect();
        assert_eq!(errors.len(), 1, "{diags}");
        assert_eq!(errors[0].0, Some(4));
        assert!(
            errors[0].1.contains("defined here and in the included"),
            "{diags}"
        );
    }

    #[test]
    fn a_file_without_services_is_refused_as_a_stack() {
        let (_, diags) = parse_text("networks:\n  shared: {}\n");
        let errors: Vec<_> = diags.errors().map(|d| d.message.as_str()).collect();
        assert_eq!(
            errors,
            ["the stack has no services: its unit would have nothing to run"]
        );
    }

    #[test]
    fn null_and_wrongly_shaped_fields_are_refused_as_compose_does() {
        let text = "services:\n  a:\n    image: x\n    environment:\n    command:\n  b:\n    image: [x]\n    labels: \"a=b\"\n    network_mode: host\n    networks: [n]\n  c:\n    image: x\n    depends_on: [c]\nnetworks:\n  n: {}\n";
        let (_, diags) = parse_text(text);
        let errors: Vec<_> = diags
            .errors()
            .map(|d| format!("{}: {}", d.line.unwrap_or(0), d.message))
            .collect();
        assert_eq!(
            errors,
            [
                "4: service a: environment is empty (null), and compose needs a mapping or a list",
                "7: service b: image is a list, and compose needs a string",
                "8: service b: labels is a string, and compose needs a mapping or a list",
                "9: service b: network_mode and networks exclude each other",
                "11: service c depends on itself",
            ],
            "{diags}"
        );
    }
}
