//! The parts of a compose file composectl needs: the `x-composectl` block, the services (their
//! networks, healthchecks, container names, profiles) and the top-level networks. Every other key
//! is tolerated untouched: compose itself is the authority on the rest of the file.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::env::{EnvLayers, interpolate};
use super::yaml::{self, Node};
use crate::diag::{Diagnostic, Diagnostics};

/// The accepted compose file names, in compose's own order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

pub const META_KEY: &str = "x-composectl";
const META_KEYS: [&str; 6] = [
    "description",
    "requires",
    "wants",
    "ready",
    "start_timeout",
    "restart_sec",
];

/// When a stack counts as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// Every container running, and healthy where it has a healthcheck.
    Healthy,
    /// Every container running; healthchecks are not waited for.
    Running,
}

/// A name with the line it was written on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub value: String,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub description: Option<String>,
    pub requires: Vec<Located>,
    /// Required stacks written with `restart: false`: this stack keeps running when their
    /// containers are recreated (compose's `depends_on: {x: {restart: false}}`).
    pub keeps_running_with: Vec<String>,
    pub wants: Vec<Located>,
    pub ready: Option<Ready>,
    pub start_timeout: Option<Duration>,
    pub restart_sec: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    /// A healthcheck written in the compose file; images may still bring their own.
    pub healthcheck: bool,
    pub container_name: Option<Located>,
    /// Services behind a profile are not started by a plain `compose up`.
    pub profiles: Vec<String>,
    pub networks: Vec<Located>,
    #[serde(skip)]
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFile {
    pub meta: Meta,
    pub services: Vec<Service>,
    pub networks: Vec<NetworkDecl>,
}

/// Reads a compose file's text, reporting every problem into `diags` with its line.
pub fn parse(path: &Path, text: &str, env: &EnvLayers, diags: &mut Diagnostics) -> ComposeFile {
    let mut parser = Parser { path, env, diags };
    let doc = match yaml::parse(text) {
        Ok(Some(doc)) => doc,
        Ok(None) => {
            parser.error(
                None,
                "the file is empty",
                "a compose file needs at least a services: mapping",
            );
            return ComposeFile::default();
        }
        Err(e) => {
            parser.error(
                Some(e.line),
                format!("YAML syntax error: {}", e.message),
                "fix the YAML syntax; `docker compose config` shows the same file as compose reads it",
            );
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
    ComposeFile {
        meta: yaml::get(&doc, META_KEY)
            .map(|entry| parser.meta(entry.value))
            .unwrap_or_default(),
        services: parser.services(&doc),
        networks: parser.networks(&doc),
    }
}

struct Parser<'p> {
    path: &'p Path,
    env: &'p EnvLayers,
    diags: &'p mut Diagnostics,
}

impl Parser<'_> {
    fn error(&mut self, line: Option<usize>, message: impl Into<String>, hint: &str) {
        self.diags.push(
            Diagnostic::error(self.path.to_path_buf(), message)
                .at_line(line)
                .hint(hint),
        );
    }

    /// A scalar's text after `${VAR}` interpolation; non-scalars are reported.
    fn string(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        let Some(text) = yaml::scalar_text(node) else {
            self.error(
                Some(yaml::line(node)),
                format!("{what} is {}, expected a string", yaml::kind(node)),
                "write a plain string",
            );
            return None;
        };
        match interpolate(&text, self.env) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(
                    Some(yaml::line(node)),
                    format!("{what}: {message}"),
                    "set the variable in the root or stack .env / .env.local, or give a default with ${VAR:-default}",
                );
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node<'_>, what: &str) -> Vec<Located> {
        let Some(items) = yaml::as_sequence(node) else {
            self.error(
                Some(yaml::line(node)),
                format!("{what} is {}, expected a list", yaml::kind(node)),
                "write a list, e.g. [database, panel]",
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let value = self.string(item, what)?;
                Some(Located {
                    value,
                    line: yaml::line(item),
                })
            })
            .collect()
    }

    fn duration(&mut self, node: &Node<'_>, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match crate::duration::parse(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(
                    Some(yaml::line(node)),
                    format!("{what}: {message}"),
                    "write a duration such as 90s, 15min or 1h 30min",
                );
                None
            }
        }
    }

    /// `requires` as a list of stack names, or as a mapping of stack name to options (only
    /// `restart`), in the spirit of compose's long `depends_on` syntax. Returns the stacks and
    /// those written with `restart: false`.
    fn requirements(&mut self, node: &Node<'_>, what: &str) -> (Vec<Located>, Vec<String>) {
        if !yaml::is_mapping(node) {
            return (self.string_list(node, what), Vec::new());
        }
        let mut requires = Vec::new();
        let mut keeps_running = Vec::new();
        for entry in yaml::entries(node) {
            let stack = entry.key.to_string();
            if !yaml::is_null(entry.value) && !yaml::is_mapping(entry.value) {
                self.error(
                    Some(entry.line),
                    format!(
                        "{what}.{stack} is {}, expected a mapping",
                        yaml::kind(entry.value)
                    ),
                    "write requires: {database: {restart: false}}, or a list of stack names",
                );
                continue;
            }
            for option in yaml::entries(entry.value) {
                match (option.key.as_ref(), yaml::as_bool(option.value)) {
                    ("restart", Some(restart)) => {
                        if !restart {
                            keeps_running.push(stack.clone());
                        }
                    }
                    ("restart", None) => self.error(
                        Some(option.line),
                        format!("{what}.{stack}.restart is {}, expected true or false", yaml::kind(option.value)),
                        "restart: false keeps this stack running when the required stack's containers are recreated",
                    ),
                    (unknown, _) => self.error(
                        Some(option.line),
                        format!("unknown key {unknown:?} in {what}.{stack}"),
                        "the only option of a required stack is restart: true|false",
                    ),
                }
            }
            requires.push(Located {
                value: stack,
                line: entry.line,
            });
        }
        (requires, keeps_running)
    }

    fn meta(&mut self, node: &Node<'_>) -> Meta {
        let mut meta = Meta::default();
        if yaml::is_null(node) {
            return meta;
        }
        if !yaml::is_mapping(node) {
            self.error(
                Some(yaml::line(node)),
                format!("{META_KEY} is {}, expected a mapping", yaml::kind(node)),
                "write x-composectl as a mapping of description, requires, wants, ready, start_timeout, restart_sec",
            );
            return meta;
        }
        for entry in yaml::entries(node) {
            let what = format!("{META_KEY}.{}", entry.key);
            match entry.key.as_ref() {
                "description" => meta.description = self.string(entry.value, &what),
                "requires" => {
                    (meta.requires, meta.keeps_running_with) = self.requirements(entry.value, &what)
                }
                "wants" => meta.wants = self.string_list(entry.value, &what),
                "ready" => {
                    meta.ready = match self.string(entry.value, &what).as_deref() {
                        Some("healthy") => Some(Ready::Healthy),
                        Some("running") => Some(Ready::Running),
                        Some(other) => {
                            self.error(
                                Some(entry.line),
                                format!("{what} is {other:?}"),
                                "use ready: healthy (wait for healthchecks) or ready: running",
                            );
                            None
                        }
                        None => None,
                    }
                }
                "start_timeout" => meta.start_timeout = self.duration(entry.value, &what),
                "restart_sec" => meta.restart_sec = self.duration(entry.value, &what),
                unknown => self.error(
                    Some(entry.line),
                    format!("unknown key {unknown:?} in {META_KEY}"),
                    &format!("known keys: {}", META_KEYS.join(", ")),
                ),
            }
        }
        meta
    }

    fn services(&mut self, doc: &Node<'_>) -> Vec<Service> {
        let Some(services) = yaml::get(doc, "services") else {
            self.error(
                None,
                "no services: in the compose file",
                "a stack needs at least one service under services:",
            );
            return Vec::new();
        };
        if !yaml::is_mapping(services.value) {
            self.error(
                Some(services.line),
                format!(
                    "services is {}, expected a mapping",
                    yaml::kind(services.value)
                ),
                "write services as a mapping of service name to its settings",
            );
            return Vec::new();
        }
        yaml::entries(services.value)
            .into_iter()
            .filter_map(|entry| self.service(&entry.key, entry.line, entry.value))
            .collect()
    }

    fn service(&mut self, name: &str, line: usize, node: &Node<'_>) -> Option<Service> {
        if !yaml::is_mapping(node) {
            self.error(
                Some(line),
                format!("service {name} is {}, expected a mapping", yaml::kind(node)),
                "give the service at least an image: or build:",
            );
            return None;
        }
        let healthcheck = yaml::get(node, "healthcheck").is_some_and(|hc| {
            let disabled = yaml::get(hc.value, "disable")
                .and_then(|d| yaml::as_bool(d.value))
                .unwrap_or(false);
            let none = yaml::get(hc.value, "test").is_some_and(|test| {
                yaml::as_sequence(test.value)
                    .and_then(|items| items.first())
                    .and_then(yaml::scalar_text)
                    .is_some_and(|first| first == "NONE")
            });
            !disabled && !none
        });
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
        let networks = match yaml::get(node, "networks") {
            None => Vec::new(),
            Some(entry) if yaml::is_mapping(entry.value) => yaml::entries(entry.value)
                .into_iter()
                .map(|net| Located {
                    value: net.key.into_owned(),
                    line: net.line,
                })
                .collect(),
            Some(entry) => self.string_list(entry.value, &format!("service {name}: networks")),
        };
        Some(Service {
            name: name.to_string(),
            healthcheck,
            container_name,
            profiles,
            networks,
            line,
        })
    }

    fn networks(&mut self, doc: &Node<'_>) -> Vec<NetworkDecl> {
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
                if let Some(flag) = yaml::as_bool(ext.value) {
                    external = flag;
                } else if yaml::is_mapping(ext.value) {
                    // The legacy `external: {name: x}` form.
                    external = true;
                    name = yaml::get(ext.value, "name").and_then(|n| {
                        self.string(n.value, &format!("network {key}: external.name"))
                    });
                } else {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(file.meta.start_timeout, Some(Duration::from_secs(900)));
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
    fn disabled_healthchecks_do_not_count() {
        let text = "services:\n  a:\n    healthcheck: {disable: true}\n  b:\n    healthcheck: {test: [NONE]}\n";
        let (file, _) = parse_text(text);
        assert!(file.services.iter().all(|s| !s.healthcheck));
    }
}
