//! The validated model of a root: networks, settings and stacks with their dependencies.
//!
//! `load` reads everything and runs every check, collecting all problems before it fails, so
//! nothing downstream (rendering, systemd, the supervisor) ever sees an invalid root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::compose_file::{self, NetworkDecl, Published, Service};
use crate::config::env::EnvLayers;
use crate::config::meta::{Backup, Ready, SecretSpec, Update};
use crate::config::networks::{self, NetworkSpec};
use crate::config::parser::Located;
use crate::config::resources::Resources;
use crate::config::settings::{self, Settings};
use crate::config::{read_optional, read_required};
use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::Graph;

pub const STACKS_DIR: &str = "stacks";

#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub name: String,
    pub dir: PathBuf,
    pub compose_file: PathBuf,
    pub description: String,
    pub requires: Vec<String>,
    /// Required stacks whose recreated containers do not restart this one (`restart: false`).
    pub keeps_running_with: BTreeSet<String>,
    pub wants: Vec<String>,
    pub ready: Ready,
    pub start_timeout: Duration,
    /// How long its stop may take (`TimeoutStopSec=`): composectl.toml's stop_timeout, or more
    /// where its containers' grace periods need it (`stop_budget`).
    pub stop_timeout: Duration,
    pub restart_sec: Duration,
    pub services: Vec<Service>,
    /// The services `compose up` starts: no profile, or one COMPOSE_PROFILES (in the env
    /// layers) names; readiness waits for these.
    pub running: BTreeSet<String>,
    pub networks: Vec<NetworkDecl>,
    /// The env files compose gets, in layer order (root .env, root .env.local, stack .env,
    /// stack .env.local); only those that exist.
    pub env_files: Vec<PathBuf>,
    /// Their variables, merged in that order: what the file is interpolated with.
    #[serde(skip)]
    pub env: EnvLayers,
    /// Where each requires/wants entry is written, for pointing errors at it.
    #[serde(skip)]
    pub dependency_lines: BTreeMap<String, usize>,
    /// Host paths the running services bind-mount whose mounts must be there before the stack
    /// starts (`RequiresMountsFor=`): absolute, outside the root and the runtime filesystems, no
    /// path below another one of the set (its mounts are required already).
    pub mounts: BTreeSet<PathBuf>,
    pub secrets: Vec<SecretSpec>,
    /// Declared secrets stored encrypted (`composectl secrets encrypt`), by variable, with
    /// their credential names: the system unit loads them, and they win over an env file.
    pub encrypted: BTreeMap<String, String>,
    /// Declared secrets neither an env layer nor the credential store sets yet.
    pub missing_secrets: Vec<String>,
    /// Lines each container may log per interval before the supervisor drops the rest.
    pub log_rate_limit: (Duration, u32),
    pub backup: Backup,
    pub update: Update,
    /// Its slice's settings: x-composectl's resources over composectl.toml's, key by key.
    pub resources: Resources,
}

/// The slice a stack's supervisor and containers run in: `compose-NAME.slice`, so every stack's
/// slice sits under `compose.slice` (systemd nests slices by the dashes in their names; a dash
/// of the stack's own name is escaped, so `my-app` is not put under a stack `my`).
pub fn stack_slice(stack: &str) -> String {
    format!("compose-{}.slice", stack.replace('-', "\\x2d"))
}

impl Stack {
    /// Its name as a [`StackName`]: validated when the stack was loaded.
    pub fn stack_name(&self) -> StackName {
        StackName(self.name.clone())
    }

    /// Names of the networks.toml networks this stack joins: the external networks a running
    /// service uses (compose drops the others).
    pub fn external_networks(&self) -> impl Iterator<Item = &str> {
        self.networks
            .iter()
            .filter(|n| n.external && self.uses_network(&n.key))
            .map(|n| n.name.as_str())
    }

    /// Whether a running service joins the network the compose file declares under `key`
    /// (a service that names no network joins `default`).
    fn uses_network(&self, key: &str) -> bool {
        self.services
            .iter()
            .filter(|service| self.running.contains(&service.name))
            .any(|service| {
                if service.networks.is_empty() {
                    key == "default"
                } else {
                    service.networks.iter().any(|n| n.value == key)
                }
            })
    }
}

#[derive(Debug, Clone)]
pub struct Root {
    pub dir: PathBuf,
    pub settings: Settings,
    pub networks: BTreeMap<String, NetworkSpec>,
    pub stacks: BTreeMap<String, Stack>,
    /// Stack directories whose files could not be loaded (their problems are diagnostics).
    pub unloaded: BTreeSet<String>,
}

impl Root {
    pub fn graph(&self) -> Graph {
        Graph::new(
            self.stacks
                .values()
                .map(|s| (s.name.clone(), s.requires.clone(), s.wants.clone())),
        )
    }

    /// The stack, or an error that names the closest stack there is.
    pub fn stack(&self, name: &StackName) -> Result<&Stack, Diagnostics> {
        self.stacks
            .get(&**name)
            .ok_or_else(|| self.no_such_stack(name).into())
    }

    fn no_such_stack(&self, name: &str) -> Diagnostic {
        Diagnostic::error(
            self.dir.join(STACKS_DIR).join(name),
            format!("no stack named \"{name}\" in this root"),
        )
        .hint(self.known_stacks_hint(name))
    }

    /// Every stack directory of the root, loaded or not.
    fn stack_names(&self) -> impl Iterator<Item = &str> {
        self.stacks.keys().chain(&self.unloaded).map(String::as_str)
    }

    /// "did you mean X?" when a stack's name is close, then the stacks there are.
    fn known_stacks_hint(&self, name: &str) -> String {
        let mut names: Vec<&str> = self.stack_names().collect();
        if names.is_empty() {
            return "the root has no stacks yet: create stacks/<name>/compose.yaml".into();
        }
        names.sort_unstable();
        let near = match crate::diag::closest(name, names.iter().copied()) {
            Some(near) => format!("did you mean {near}? "),
            None => String::new(),
        };
        format!("{near}stacks in this root: {}", names.join(", "))
    }
}

/// What a command works on: the stacks named and everything they require or want (every stack
/// when none are named), from a root whose shared files and selected stacks are valid.
#[derive(Debug)]
pub struct Selection {
    pub root: Root,
    pub stacks: BTreeSet<String>,
    /// The selection's warnings, and one saying which other stacks have errors.
    pub warnings: Diagnostics,
}

/// The one rule for a selection that check, render, diff, graph, enable and every other command
/// reading the root follow. Names that are no stack of the root are refused with the closest
/// one. Then the shared files (networks.toml, composectl.toml, the root's env files) and every
/// stack of the selection must be valid, collisions with any stack of the root included; a
/// problem in a stack outside the selection does not stop the command, which leaves that stack
/// as it is and says so in one warning (`check` of the whole root shows it).
pub fn select(dir: &Path, names: &[StackName]) -> Result<Selection, Diagnostics> {
    let (root, diags) = load_root(dir, None);
    let Some(root) = root else {
        return Err(diags);
    };
    let unknown: Diagnostics = names
        .iter()
        .filter(|name| !root.stack_names().any(|known| known == &***name))
        .map(|name| root.no_such_stack(name))
        .collect();
    if unknown.has_errors() {
        return Err(unknown);
    }
    let selected: BTreeSet<String> = if names.is_empty() {
        root.stack_names().map(str::to_string).collect()
    } else {
        root.graph().closure(names.iter().map(|n| &**n))
    };
    let concerns_selection = |d: &Diagnostic| {
        names.is_empty() || d.stacks.is_empty() || d.stacks.iter().any(|s| selected.contains(s))
    };
    let (mut relevant, others): (Vec<_>, Vec<_>) =
        diags.into_vec().into_iter().partition(concerns_selection);
    if relevant.iter().any(Diagnostic::is_error) {
        return Err(relevant.into_iter().collect());
    }
    let broken: BTreeSet<&str> = others
        .iter()
        .filter(|d| d.is_error())
        .flat_map(|d| d.stacks.iter().map(String::as_str))
        .collect();
    if !broken.is_empty() {
        let list: Vec<&str> = broken.into_iter().collect();
        let message = match list.as_slice() {
            [one] => {
                format!("stack {one} has errors and is not part of this selection: left as it is")
            }
            many => format!(
                "stacks {} have errors and are not part of this selection: left as they are",
                many.join(", ")
            ),
        };
        relevant.push(
            Diagnostic::warning(None, message)
                .hint(format!("composectl check {} shows them", list.join(" "))),
        );
    }
    let stacks = selected
        .into_iter()
        .filter(|name| root.stacks.contains_key(name))
        .collect();
    Ok(Selection {
        root,
        stacks,
        warnings: relevant.into_iter().collect(),
    })
}

/// A loaded root and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub root: Root,
    pub warnings: Diagnostics,
}

/// A stack name that is valid as a directory name and a systemd instance name: only characters
/// that need no escaping in either. Command-line arguments are parsed into it, so the one check
/// (and its one message) runs before any command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StackName(String);

impl std::str::FromStr for StackName {
    type Err = String;

    fn from_str(name: &str) -> Result<StackName, String> {
        let problem = if name.is_empty() {
            Some("it is empty".to_string())
        } else if name.len() > 64 {
            Some("it is longer than 64 characters".into())
        } else if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            Some(format!(
                "{bad:?} is not allowed; use lowercase letters, digits, '-' and '_'"
            ))
        } else if name.starts_with('-') || name.starts_with('_') {
            Some("it must start with a letter or digit".into())
        } else {
            None
        };
        match problem {
            None => Ok(StackName(name.to_string())),
            Some(reason) => Err(format!("invalid stack name {name:?}: {reason}")),
        }
    }
}

impl std::ops::Deref for StackName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StackName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The root with one stack only, as its supervisor runs it: the shared files (settings,
/// networks.toml, root env files) and that stack's own. The checks across stacks (unknown
/// dependencies, cycles, collisions) are `enable`'s, which wrote the unit: a stack starting at
/// boot neither parses every other stack nor fails for an edit to one of them.
pub fn load_one(dir: &Path, name: &StackName) -> Result<Loaded, Diagnostics> {
    loaded(load_root(dir, Some(name)))
}

fn loaded((root, diags): (Option<Root>, Diagnostics)) -> Result<Loaded, Diagnostics> {
    match root {
        Some(root) if !diags.has_errors() => Ok(Loaded {
            root,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

/// Loads what can be loaded: the root holds every stack that parsed (None when the directory is
/// not a root at all), the diagnostics everything found, sorted.
pub fn load_partial(dir: &Path) -> (Option<Root>, Diagnostics) {
    load_root(dir, None)
}

/// Every stack of the root, or only `only`.
fn load_root(dir: &Path, only: Option<&StackName>) -> (Option<Root>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let stacks_dir = dir.join(STACKS_DIR);
    if !stacks_dir.is_dir() {
        let message = if dir.is_dir() {
            format!("not a composectl root: {STACKS_DIR}/ is missing")
        } else {
            "the root directory does not exist".to_string()
        };
        diags.push(Diagnostic::error(dir.to_path_buf(), message)
            .hint("point --root (or COMPOSECTL_ROOT) at a directory holding networks.toml and stacks/<name>/compose.yaml"));
        return (None, diags);
    }

    let settings_path = dir.join(settings::FILE);
    let settings = read_optional(&settings_path, &mut diags)
        .map(|text| settings::parse(&settings_path, &text, &mut diags))
        .unwrap_or_default();
    let networks_path = dir.join(networks::FILE);
    let before = diags.errors().count();
    let networks_text = read_optional(&networks_path, &mut diags);
    let networks_state = match &networks_text {
        None if diags.errors().count() == before => NetworksFile::Missing,
        None => NetworksFile::Broken,
        Some(_) => NetworksFile::Read,
    };
    let networks = networks_text
        .map(|text| networks::parse(&networks_path, &text, &mut diags))
        .unwrap_or_default();
    // A broken networks.toml is reported once, not again as every network it failed to define.
    let networks_state = match networks_state {
        NetworksFile::Read if diags.errors().count() > before => NetworksFile::Broken,
        state => state,
    };
    let mut root_env = EnvLayers::default();
    root_env.load_dir(dir, &mut diags);
    warn_about_readable_secrets(dir, &mut diags);

    let mut stacks = BTreeMap::new();
    let mut claims = Vec::new();
    // Stacks whose own files are broken: already reported, so not "unknown" to their dependents.
    let mut broken = BTreeSet::new();
    let dirs = match only {
        None => stack_dirs(&stacks_dir, &mut diags),
        Some(name) => vec![(name.to_string(), stacks_dir.join(&**name))],
    };
    for ((name, _), (loaded, stack_diags)) in dirs
        .iter()
        .zip(load_stacks(&dirs, dir, &root_env, &settings))
    {
        // Each problem of a stack's own files is that stack's: it stops only a command that
        // works on the stack (see `select`).
        for diag in stack_diags.into_vec() {
            diags.push(if diag.stacks.is_empty() {
                diag.of_stack(name.clone())
            } else {
                diag
            });
        }
        match loaded {
            Some((stack, claim)) => {
                stacks.insert(name.clone(), stack);
                claims.push(claim);
            }
            None => {
                broken.insert(name.clone());
            }
        }
    }

    let root = Root {
        dir: dir.to_path_buf(),
        settings,
        networks,
        stacks,
        unloaded: broken,
    };
    if only.is_none() {
        check_dependencies(&root, &mut diags);
    }
    check_networks(&root, &networks_path, networks_state, &mut diags);
    check_collisions(&claims, &mut diags);

    (Some(root), diags.sorted())
}

/// Each stack loaded alone, with what it reported, in the order of `dirs`. Stacks depend on each
/// other only in the checks after loading, so the machine's cores share them: most of
/// `check` and `render` of a large root is parsing compose files.
fn load_stacks(
    dirs: &[(String, PathBuf)],
    root_dir: &Path,
    root_env: &EnvLayers,
    settings: &Settings,
) -> Vec<(Option<(Stack, Claims)>, Diagnostics)> {
    let load = |(name, dir): &(String, PathBuf)| {
        let mut diags = Diagnostics::default();
        let loaded = load_stack(name, dir, root_dir, root_env, settings, &mut diags);
        (loaded, diags)
    };
    const STACKS_PER_THREAD: usize = 8;
    crate::parallel::map(dirs, STACKS_PER_THREAD, load)
}

/// Checks one stack directory alone, as `check` would inside a root with no global env files:
/// its compose file as compose reads it, and the collisions between its own services.
#[cfg(test)]
fn check_stack_dir(dir: &Path) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("stack");
    if let Some((_, claim)) = load_stack(
        name,
        dir,
        dir,
        &EnvLayers::default(),
        &Settings::default(),
        &mut diags,
    ) {
        check_collisions(&[claim], &mut diags);
    }
    diags.sorted()
}

/// The stack directories under stacks/, with their names validated; hidden entries are skipped.
fn stack_dirs(stacks_dir: &Path, diags: &mut Diagnostics) -> Vec<(String, PathBuf)> {
    let entries = match fs::read_dir(stacks_dir) {
        Ok(entries) => entries,
        Err(e) => {
            diags.push(
                Diagnostic::error(stacks_dir.to_path_buf(), format!("cannot be listed: {e}"))
                    .hint("check its owner and mode"),
            );
            return Vec::new();
        }
    };
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        // A directory that cannot be a stack is its own problem, not every stack's.
        let stack = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            diags.push(
                Diagnostic::error(path, "stack directory name is not valid UTF-8")
                    .hint("rename it using lowercase letters, digits, '-' and '_'")
                    .of_stack(stack),
            );
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            diags.push(
                Diagnostic::warning(path, "not a directory; ignored")
                    .hint("stacks/ holds one directory per stack")
                    .of_stack(stack),
            );
            continue;
        }
        if let Err(message) = name.parse::<StackName>() {
            diags.push(
                Diagnostic::error(path, message)
                    .hint("rename the directory; stack names become systemd unit names (compose@NAME.service)")
                    .of_stack(stack),
            );
            continue;
        }
        dirs.push((name, path));
    }
    dirs.sort();
    dirs
}

fn find_compose_file(name: &str, dir: &Path, diags: &mut Diagnostics) -> Option<PathBuf> {
    let present: Vec<PathBuf> = compose_file::FILE_NAMES
        .iter()
        .map(|file| dir.join(file))
        .filter(|path| fs::symlink_metadata(path).is_ok())
        .collect();
    match present.as_slice() {
        [one] => Some(one.clone()),
        [] => {
            diags.push(
                Diagnostic::error(
                    dir.to_path_buf(),
                    format!("stack {name} has no compose file"),
                )
                .hint(format!(
                    "create {}/compose.yaml (or one of: {})",
                    dir.display(),
                    compose_file::FILE_NAMES.join(", ")
                )),
            );
            None
        }
        [first, others @ ..] => {
            let names: Vec<_> = others.iter().map(|p| p.display().to_string()).collect();
            diags.push(
                Diagnostic::error(
                    first.clone(),
                    format!(
                        "stack {name} has more than one compose file (also {})",
                        names.join(", ")
                    ),
                )
                .hint("keep exactly one; compose would silently pick one of them"),
            );
            None
        }
    }
}

/// What a stack's running services hold on the engine: container names and host ports.
struct Claims {
    stack: String,
    file: PathBuf,
    container_names: Vec<(String, Located)>,
    ports: Vec<Published>,
}

fn load_stack(
    name: &str,
    dir: &Path,
    root_dir: &Path,
    root_env: &EnvLayers,
    settings: &Settings,
    diags: &mut Diagnostics,
) -> Option<(Stack, Claims)> {
    let compose_file = find_compose_file(name, dir, diags)?;
    let mut env = root_env.clone();
    env.load_dir(dir, diags);
    warn_about_readable_secrets(dir, diags);
    let text = read_required(&compose_file, diags)?;
    let mut file_diags = Diagnostics::default();
    let parsed = compose_file::parse(&compose_file, &text, &env, &mut file_diags);
    let parsed_ok = !file_diags.has_errors();
    diags.extend(file_diags);
    if !parsed_ok {
        return None;
    }
    let meta = parsed.meta;
    let mut seen = BTreeSet::new();
    for dep in meta.requires.iter().chain(&meta.wants) {
        let problem = if dep.value == name {
            Some(format!("stack {name} depends on itself"))
        } else if !seen.insert(dep.value.as_str()) {
            Some(format!(
                "{} is listed more than once in requires/wants",
                dep.value
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            diags.push(
                Diagnostic::error(compose_file.clone(), message)
                    .at_line(Some(dep.line))
                    .hint("list each other stack once, in requires (hard) or wants (soft)"),
            );
        }
    }
    let claims = Claims {
        stack: name.to_string(),
        file: compose_file.clone(),
        container_names: parsed
            .services
            .iter()
            .filter(|s| parsed.running.contains(&s.name))
            .filter_map(|s| Some((s.name.clone(), s.container_name.clone()?)))
            .collect(),
        ports: parsed.ports,
    };
    let dependency_lines = meta
        .requires
        .iter()
        .chain(&meta.wants)
        .map(|d| (d.value.clone(), d.line))
        .collect();
    let ready = meta.ready.unwrap_or(Ready::Healthy);
    let start_timeout = meta
        .start_timeout
        .map_or(settings.start_timeout, |(timeout, _)| timeout);
    // Never shorter than what `compose down` needs to let every container finish.
    let stop_timeout = settings
        .stop_timeout
        .max(stop_budget(&parsed.services, &parsed.running) + STOP_SLACK);
    for service in &parsed.services {
        if let Some(line) = service.cgroup_parent {
            diags.push(
                Diagnostic::warning(
                    compose_file.clone(),
                    format!(
                        "service {} sets cgroup_parent: its containers run outside the stack's slice {}, where the stack's resources neither count nor limit them",
                        service.name,
                        stack_slice(name)
                    ),
                )
                .at_line(Some(line))
                .hint("remove cgroup_parent to keep the stack together; set limits in x-composectl resources"),
            );
        }
    }
    if ready == Ready::Healthy {
        let timeout_line = meta.start_timeout.map(|(_, line)| line);
        for service in parsed
            .services
            .iter()
            .filter(|s| parsed.running.contains(&s.name))
        {
            warn_about_health_budget(service, &compose_file, (start_timeout, timeout_line), diags);
        }
    }
    // Not a problem of the files: `check` lists them, `enable` generates them.
    let encrypted = crate::credentials::stored(name, &meta.secrets);
    let missing_secrets: Vec<String> = meta
        .secrets
        .iter()
        .filter(|secret| env.get(&secret.name).is_none() && !encrypted.contains_key(&secret.name))
        .map(|secret| secret.name.clone())
        .collect();
    let (own, resources_line) = meta.resources;
    let resources = own.clone().or(&settings.resources);
    // Each side alone was checked where it is written; together they may still contradict.
    if own.conflict().is_none()
        && settings.resources.conflict().is_none()
        && let Some(conflict) = resources.conflict()
    {
        diags.push(
            Diagnostic::error(
                compose_file.clone(),
                format!("x-composectl.resources, with composectl.toml's [resources]: {conflict}"),
            )
            .at_line((resources_line > 0).then_some(resources_line))
            .hint("set memory_high and memory_max together, in one of the two places"),
        );
    }
    let stack = Stack {
        name: name.to_string(),
        dependency_lines,
        dir: dir.to_path_buf(),
        description: meta
            .description
            .unwrap_or_else(|| format!("Compose stack {name}")),
        requires: meta.requires.into_iter().map(|d| d.value).collect(),
        keeps_running_with: meta.keeps_running_with.into_iter().collect(),
        wants: meta.wants.into_iter().map(|d| d.value).collect(),
        ready,
        start_timeout,
        stop_timeout,
        restart_sec: meta.restart_sec.unwrap_or(settings.restart_sec),
        mounts: bind_mounts(&parsed.binds, dir, root_dir, &compose_file, diags),
        running: parsed.running.clone(),
        services: parsed.services,
        networks: parsed.networks,
        env_files: env.files.clone(),
        env,
        compose_file,
        secrets: meta.secrets,
        encrypted,
        missing_secrets,
        log_rate_limit: (
            meta.log_rate_limit
                .interval
                .unwrap_or(settings.log_rate_limit_interval),
            meta.log_rate_limit
                .burst
                .unwrap_or(settings.log_rate_limit_burst),
        ),
        backup: meta.backup,
        update: meta.update,
        resources,
    };
    Some((stack, claims))
}

/// A healthcheck that may need longer to report healthy than the stack waits: the start would
/// time out before the service is healthy. Points at `start_timeout` when the stack sets it.
fn warn_about_health_budget(
    service: &Service,
    file: &Path,
    (start_timeout, timeout_line): (Duration, Option<usize>),
    diags: &mut Diagnostics,
) {
    let Some(budget) = service
        .health_budget
        .as_ref()
        .filter(|b| b.total > start_timeout)
    else {
        return;
    };
    let needed = crate::duration::format(budget.total);
    diags.push(
        Diagnostic::warning(
            file.to_path_buf(),
            format!(
                "start_timeout {} is shorter than service {}'s healthcheck may take to report healthy ({} = {needed})",
                crate::duration::format(start_timeout),
                service.name,
                budget.terms
            ),
        )
        .at_line(timeout_line.or(Some(budget.line)))
        .hint(format!(
            "the start would time out before the service is healthy: set x-composectl.start_timeout to {needed} or more, or shorten the healthcheck"
        )),
    );
}

/// Where the runtime and kernel filesystems live: always mounted by the time a stack starts,
/// and populated at boot rather than by the administrator (the Docker socket, /dev/...).
const RUNTIME_FILESYSTEMS: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/var/run"];

/// The bind-mount sources of a stack as absolute paths (relative ones are the stack
/// directory's, `~` is $HOME, as compose resolves them), warning about those that do not exist;
/// returns those that need `RequiresMountsFor=`.
fn bind_mounts(
    binds: &[Located],
    stack_dir: &Path,
    root_dir: &Path,
    file: &Path,
    diags: &mut Diagnostics,
) -> BTreeSet<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut mounts = BTreeSet::new();
    for bind in binds {
        let source = bind.value.as_str();
        let path = match source.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => match &home {
                Some(home) => home.join(rest.trim_start_matches('/')),
                None => continue,
            },
            _ if source.starts_with('/') => PathBuf::from(source),
            _ if source.starts_with('.') => stack_dir.join(source),
            // Windows paths (C:\..., \\server\...) mean nothing here.
            _ => continue,
        };
        let path = normalize(&path);
        // Unit files cannot hold control characters in a path list.
        if RUNTIME_FILESYSTEMS.iter().any(|fs| path.starts_with(fs))
            || source.chars().any(char::is_control)
        {
            continue;
        }
        if fs::symlink_metadata(&path).is_err() {
            diags.push(
                Diagnostic::warning(
                    file.to_path_buf(),
                    format!("bind mount source {} does not exist", path.display()),
                )
                .at_line(Some(bind.line))
                .hint("compose would create it as an empty directory owned by root: create it, fix the path, or mount the disk that holds it"),
            );
        }
        if !path.starts_with(root_dir) {
            mounts.insert(path);
        }
    }
    // RequiresMountsFor= of a path covers the mounts of every directory above it.
    let covered: Vec<PathBuf> = mounts
        .iter()
        .filter(|p| mounts.iter().any(|q| q != *p && q.starts_with(p)))
        .cloned()
        .collect();
    for path in covered {
        mounts.remove(&path);
    }
    mounts
}

/// `a/./b/../c` as `a/c`, without asking the file system (the path may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What a stack's stop needs beyond its containers' grace periods: compose's own work (stopping
/// the rest, removing containers and networks) and the supervisor's.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// compose's `stop_grace_period` where a service sets none.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// The longest `compose down` takes when every container uses its whole grace period before
/// SIGKILL: compose stops a service only once the services that depend on it have stopped, so
/// grace periods add up along the longest `depends_on` chain of the running services.
fn stop_budget(services: &[Service], running: &BTreeSet<String>) -> Duration {
    fn chain<'s>(
        name: &'s str,
        services: &BTreeMap<&'s str, &'s Service>,
        memo: &mut BTreeMap<&'s str, Duration>,
    ) -> Duration {
        if let Some(known) = memo.get(name) {
            return *known;
        }
        let Some(service) = services.get(name) else {
            return Duration::ZERO;
        };
        // Cycles are refused before this; the mark only keeps a broken file from looping.
        memo.insert(name, Duration::ZERO);
        let below = service
            .depends_on
            .iter()
            .map(|dep| chain(dep, services, memo))
            .max()
            .unwrap_or_default();
        let total = service.stop_grace.unwrap_or(DEFAULT_STOP_GRACE) + below;
        memo.insert(name, total);
        total
    }
    let running: BTreeMap<&str, &Service> = services
        .iter()
        .filter(|s| running.contains(&s.name))
        .map(|s| (s.name.as_str(), s))
        .collect();
    let mut memo = BTreeMap::new();
    running
        .keys()
        .map(|name| chain(name, &running, &mut memo))
        .max()
        .unwrap_or_default()
}

/// `.env.local` holds secrets: it should be readable by its owner only.
fn warn_about_readable_secrets(dir: &Path, diags: &mut Diagnostics) {
    let path = dir.join(".env.local");
    if let Ok(metadata) = fs::metadata(&path)
        && metadata.is_file()
        && metadata.permissions().mode() & 0o077 != 0
    {
        diags.push(
            Diagnostic::warning(
                path.clone(),
                format!(
                    "holds secrets but is readable by others (mode {:o})",
                    metadata.permissions().mode() & 0o777
                ),
            )
            .hint(format!("run: chmod 600 {}", path.display())),
        );
    }
}

fn dependency_line(stack: &Stack, dep: &str) -> Option<usize> {
    stack.dependency_lines.get(dep).copied()
}

fn check_dependencies(root: &Root, diags: &mut Diagnostics) {
    for stack in root.stacks.values() {
        for dep in stack.requires.iter().chain(&stack.wants) {
            if dep != &stack.name && !root.stacks.contains_key(dep) && !root.unloaded.contains(dep)
            {
                diags.push(
                    Diagnostic::error(
                        stack.compose_file.clone(),
                        format!("stack {} depends on unknown stack {dep:?}", stack.name),
                    )
                    .at_line(dependency_line(stack, dep))
                    .hint(root.known_stacks_hint(dep))
                    .of_stack(stack.name.clone()),
                );
            }
        }
    }
    for cycle in root.graph().cycles() {
        let first = &root.stacks[&cycle[0]];
        diags.push(
            Diagnostic::error(
                first.compose_file.clone(),
                format!("dependency cycle: {}", cycle.join(" -> ")),
            )
            .at_line(dependency_line(first, &cycle[1]))
            .hint("remove one of these requires/wants so the stacks can start in order")
            .of_stacks(cycle.iter().cloned()),
        );
    }
}

/// What became of networks.toml: a missing one is said once, not as every network it lacks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NetworksFile {
    Read,
    Missing,
    /// Its problems are reported already.
    Broken,
}

fn check_networks(
    root: &Root,
    networks_path: &Path,
    networks_file: NetworksFile,
    diags: &mut Diagnostics,
) {
    if networks_file == NetworksFile::Missing {
        // Which stacks join which network, to say once what the file must define.
        let mut joined: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for stack in root.stacks.values() {
            for network in stack.external_networks() {
                joined.entry(network).or_default().push(&stack.name);
            }
        }
        if !joined.is_empty() {
            let list: Vec<String> = joined
                .iter()
                .map(|(network, stacks)| format!("{network} ({})", stacks.join(", ")))
                .collect();
            diags.push(
                Diagnostic::error(
                    networks_path.to_path_buf(),
                    format!(
                        "is missing, and stacks join external networks it must define: {}",
                        list.join(", ")
                    ),
                )
                .hint(format!(
                    "create {} with a [networks.NAME] table and its subnet for each (man 5 networks.toml)",
                    networks_path.display()
                ))
                .of_stacks(joined.values().flatten().map(|s| s.to_string())),
            );
        }
        return;
    }
    for stack in root.stacks.values() {
        let file = &stack.compose_file;
        for decl in &stack.networks {
            let in_spec = root.networks.contains_key(&decl.name);
            if decl.external && !in_spec && !stack.uses_network(&decl.key) {
                diags.push(
                    Diagnostic::warning(
                        file.clone(),
                        format!(
                            "network {:?} is external and not in {}, but no running service \
                             uses it: compose leaves it out",
                            decl.name,
                            networks::FILE
                        ),
                    )
                    .at_line(Some(decl.line))
                    .hint("remove it from the compose file, or join a service to it")
                    .of_stack(stack.name.clone()),
                );
            } else if decl.external && !in_spec && networks_file == NetworksFile::Read {
                let near =
                    crate::diag::closest(&decl.name, root.networks.keys().map(String::as_str))
                        .map(|near| format!("did you mean {near}? "))
                        .unwrap_or_default();
                diags.push(
                    Diagnostic::error(
                        file.clone(),
                        format!(
                            "network {:?} is external but not defined in {}",
                            decl.name,
                            networks::FILE
                        ),
                    )
                    .at_line(Some(decl.line))
                    .hint(format!(
                        "{near}add [networks.{}] with its subnet to {}",
                        decl.name,
                        networks_path.display()
                    ))
                    .of_stack(stack.name.clone()),
                );
            } else if !decl.external && in_spec {
                diags.push(
                    Diagnostic::error(
                        file.clone(),
                        format!("network {:?} is defined in {} but not declared external", decl.name, networks::FILE),
                    )
                    .at_line(Some(decl.line))
                    .hint(format!("declare it as `{}: {{external: true}}` so compose joins the shared network instead of creating its own", decl.key))
                    .of_stack(stack.name.clone()),
                );
            }
        }
    }
}

/// Container names and host ports are global on an engine: two running services claiming the
/// same one fight over it, and `compose up` fails for the second. Every stack of a root can be
/// enabled alongside every other, so stacks collide whether or not they are enabled together.
fn check_collisions(claims: &[Claims], diags: &mut Diagnostics) {
    let owner = |claim: &Claims, service: &str| {
        if claims.len() == 1 {
            format!("service {service}")
        } else {
            format!("service {service} of stack {}", claim.stack)
        }
    };
    let mut names: BTreeMap<&str, (&Claims, &str)> = BTreeMap::new();
    for claim in claims {
        for (service, container) in &claim.container_names {
            if let Some((other, other_service)) = names.get(container.value.as_str()) {
                diags.push(
                    Diagnostic::error(
                        claim.file.clone(),
                        format!(
                            "container_name {:?} of service {service} is also used by {}",
                            container.value,
                            owner(other, other_service)
                        ),
                    )
                    .at_line(Some(container.line))
                    .hint("container names are unique per engine: rename one, or drop container_name (services behind different profiles may share one)")
                    .of_stacks([claim.stack.clone(), other.stack.clone()]),
                );
            } else {
                names.insert(&container.value, (claim, service));
            }
        }
    }
    let mut published: Vec<(&Claims, &Published)> = Vec::new();
    for claim in claims {
        for port in &claim.ports {
            let Some((start, end)) = port.spec.fixed_host_ports() else {
                continue;
            };
            let clash = published.iter().find(|(_, other)| {
                let spec = &other.spec;
                let (other_start, other_end) = spec.fixed_host_ports().unwrap_or((1, 0));
                spec.protocol == port.spec.protocol
                    && (spec.host_ip == port.spec.host_ip
                        || is_any_address(&spec.host_ip)
                        || is_any_address(&port.spec.host_ip))
                    && start <= other_end
                    && other_start <= end
            });
            if let Some((other, other_port)) = clash {
                let address = if port.spec.host_ip.is_empty() {
                    String::new()
                } else {
                    format!("{}:", port.spec.host_ip)
                };
                diags.push(
                    Diagnostic::error(
                        claim.file.clone(),
                        format!(
                            "host port {address}{start}/{} of service {} is also published by {}",
                            port.spec.protocol,
                            port.service,
                            owner(other, &other_port.service)
                        ),
                    )
                    .at_line(Some(port.line))
                    .hint("a host port can be published once per engine: change one of them, or bind them to different addresses")
                    .of_stacks([claim.stack.clone(), other.stack.clone()]),
                );
            }
            published.push((claim, port));
        }
    }
}

fn is_any_address(ip: &str) -> bool {
    matches!(ip, "" | "0.0.0.0" | "::")
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_stop_budget_adds_grace_periods_along_the_longest_chain() {
        let service = |name: &str, grace: Option<u64>, deps: &[&str]| Service {
            name: name.into(),
            healthcheck: false,
            container_name: None,
            profiles: Vec::new(),
            networks: Vec::new(),
            image: None,
            health_budget: None,
            stop_grace: grace.map(Duration::from_secs),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            cgroup_parent: None,
            line: 1,
        };
        let services = [
            service("db", Some(120), &[]),
            service("cache", None, &[]),
            service("api", Some(30), &["db", "cache"]),
            service("web", None, &["api"]),
            service("tools", Some(600), &["db"]),
        ];
        let running: BTreeSet<String> = ["db", "cache", "api", "web"].map(String::from).into();
        // web 10s, then api 30s, then db 120s; tools (600s) does not run.
        assert_eq!(stop_budget(&services, &running), Duration::from_secs(160));
        assert_eq!(
            stop_budget(&services[1..2], &running),
            Duration::from_secs(10)
        );
        assert_eq!(stop_budget(&[], &running), Duration::ZERO);
    }
    use super::*;

    #[test]
    fn stack_names_refuse_what_systemd_or_paths_would_misread() {
        for good in ["genai", "db-2", "a_b", "0"] {
            assert!(good.parse::<StackName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "_x",
            "a/b",
            "..",
            "a@b",
            "a b",
            "a\nb",
            "Genai",
            "a.b",
            &"x".repeat(65),
        ] {
            assert!(bad.parse::<StackName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stack_loaded_alone_ignores_its_siblings_but_not_its_own_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write(
            "networks.toml",
            "[networks.net]\nsubnet = \"10.240.0.0/24\"\n",
        );
        let app = "x-composectl:\n  requires: [db]\nservices:\n  app:\n    image: busybox\n    networks: [net]\nnetworks:\n  net:\n    external: true\n";
        write("stacks/app/compose.yaml", app);
        write("stacks/db/compose.yaml", "services: [not, a, mapping]\n");
        let name = |n: &str| n.parse::<StackName>().expect("name");

        let whole = select(root.path(), &[]).expect_err("db's compose file is broken");
        assert!(
            whole.to_string().contains("stacks/db/compose.yaml"),
            "{whole}"
        );

        let alone = load_one(root.path(), &name("app")).expect("app alone loads");
        assert_eq!(alone.root.stacks.keys().collect::<Vec<_>>(), ["app"]);
        assert_eq!(alone.root.stacks["app"].requires, ["db"]);
        assert!(alone.root.networks.contains_key("net"));

        let broken = load_one(root.path(), &name("db")).expect_err("db's own file");
        assert!(
            broken.to_string().contains("stacks/db/compose.yaml"),
            "{broken}"
        );
        let missing = load_one(root.path(), &name("gone")).expect_err("no such stack");
        assert!(missing.to_string().contains("stacks/gone"), "{missing}");
    }
}

/// The compatibility corpus (tests/corpus): real-world compose files and generated constructs,
/// each checked alone the way `check` checks a stack, against the verdict `docker compose config`
/// gave (recorded in expected.tsv by tests/corpus/verdicts.sh, so this test needs no docker).
/// Every case must get composectl's expected verdict without panicking, and composectl may differ
/// from compose only where the difference is deliberate (docs/compose-compatibility.md: deliberate differences).
#[cfg(test)]
mod corpus {
    use super::check_stack_dir;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
    }

    struct Row {
        case: String,
        compose: String,
        composectl: String,
        note: String,
    }

    fn expected() -> Vec<Row> {
        let text = std::fs::read_to_string(corpus().join("expected.tsv")).expect("expected.tsv");
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let mut fields = line.split('\t').map(str::to_string);
                let mut next = || fields.next().unwrap_or_default();
                Row {
                    case: next(),
                    compose: next(),
                    composectl: next(),
                    note: next(),
                }
            })
            .collect()
    }

    #[test]
    fn composectl_agrees_with_compose_on_the_corpus() {
        let rows = expected();
        let cases: BTreeSet<String> = std::fs::read_dir(corpus().join("cases"))
            .expect("cases")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let listed: BTreeSet<String> = rows.iter().map(|r| r.case.clone()).collect();
        assert_eq!(
            cases, listed,
            "every case directory has one row in expected.tsv"
        );

        let mut wrong = Vec::new();
        for row in &rows {
            assert!(
                row.compose == row.composectl || row.note.starts_with("deliberate:"),
                "{}: differs from compose without a deliberate: note",
                row.case
            );
            let diags = check_stack_dir(&corpus().join("cases").join(&row.case));
            let verdict = if diags.has_errors() {
                "refuse"
            } else {
                "accept"
            };
            if verdict != row.composectl {
                wrong.push(format!(
                    "{}: composectl {verdict}s, expected {} (compose {}s)\n{diags}",
                    row.case, row.composectl, row.compose
                ));
            }
        }
        let deliberate = rows.iter().filter(|r| r.compose != r.composectl).count();
        assert!(
            wrong.is_empty(),
            "{} of {} cases ({deliberate} deliberate differences):\n{}",
            wrong.len(),
            rows.len(),
            wrong.join("\n\n")
        );
    }
}
