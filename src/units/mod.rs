//! Rendering the unit files for a set of stacks from the templates in `units/`.
//!
//! The layout splits what is the same everywhere from what belongs to one installation:
//! - shared units, identical for every root of a mode (packages ship them too): the template
//!   `compose@.service`, `composectl.target` grouping the stacks for boot,
//!   `composectl-networks.service` creating the shared networks, and the optional timers
//!   `composectl-update.timer` and `composectl-backup@.timer` with their services;
//! - composectl's drop-ins: `10-composectl.conf` for the template (command line with the root,
//!   timeouts, restart policy), the networks, update and backup units (command lines), and
//!   `20-composectl.conf`
//!   per stack (description, Requires/Wants/After). systemd lets an instance's drop-in replace
//!   a template drop-in of the same name, so the two must differ; the stack's sorts later and
//!   wins where both set a value.
//!
//! `render`, `diff` and `enable` all use exactly this output.

pub mod escape;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;

use crate::config::settings::UpdateTimer;
use crate::duration;
use crate::mode::Mode;
use crate::model::{Root, stack_slice};

pub const TEMPLATE_UNIT: &str = "compose@.service";
pub const TARGET_UNIT: &str = "composectl.target";
pub const NETWORKS_UNIT: &str = "composectl-networks.service";
pub const UPDATE_UNIT: &str = "composectl-update.service";
pub const UPDATE_TIMER: &str = "composectl-update.timer";
pub const BACKUP_UNIT: &str = "composectl-backup@.service";
pub const BACKUP_TIMER: &str = "composectl-backup@.timer";
pub const NOTIFY_UNIT: &str = "composectl-notify@.service";
/// The units that are the same for every root of a mode.
pub const SHARED_UNITS: [&str; 8] = [
    TEMPLATE_UNIT,
    TARGET_UNIT,
    NETWORKS_UNIT,
    UPDATE_UNIT,
    UPDATE_TIMER,
    BACKUP_UNIT,
    BACKUP_TIMER,
    NOTIFY_UNIT,
];
pub const DROPIN_NAME: &str = "10-composectl.conf";
pub const STACK_DROPIN_NAME: &str = "20-composectl.conf";

const TEMPLATE_DROPIN: &str = "compose@.service.d.conf";
const STACK_DROPIN: &str = "compose@stack.service.d.conf";
const NETWORKS_DROPIN: &str = "composectl-networks.service.d.conf";
const UPDATE_DROPIN: &str = "composectl-update.service.d.conf";
const BACKUP_DROPIN: &str = "composectl-backup@.service.d.conf";
const NOTIFY_DROPIN: &str = "composectl-notify@.service.d.conf";

const SLICE_DROPIN: &str = "compose-stack.slice.d.conf";

const TEMPLATES: [(&str, &str); 15] = [
    (TEMPLATE_UNIT, include_str!("../../units/compose@.service")),
    (
        TEMPLATE_DROPIN,
        include_str!("../../units/compose@.service.d.conf"),
    ),
    (
        STACK_DROPIN,
        include_str!("../../units/compose@stack.service.d.conf"),
    ),
    (
        SLICE_DROPIN,
        include_str!("../../units/compose-stack.slice.d.conf"),
    ),
    (TARGET_UNIT, include_str!("../../units/composectl.target")),
    (
        NETWORKS_UNIT,
        include_str!("../../units/composectl-networks.service"),
    ),
    (
        NETWORKS_DROPIN,
        include_str!("../../units/composectl-networks.service.d.conf"),
    ),
    (
        UPDATE_UNIT,
        include_str!("../../units/composectl-update.service"),
    ),
    (
        UPDATE_TIMER,
        include_str!("../../units/composectl-update.timer"),
    ),
    (
        UPDATE_DROPIN,
        include_str!("../../units/composectl-update.service.d.conf"),
    ),
    (
        BACKUP_UNIT,
        include_str!("../../units/composectl-backup@.service"),
    ),
    (
        BACKUP_TIMER,
        include_str!("../../units/composectl-backup@.timer"),
    ),
    (
        BACKUP_DROPIN,
        include_str!("../../units/composectl-backup@.service.d.conf"),
    ),
    (
        NOTIFY_UNIT,
        include_str!("../../units/composectl-notify@.service"),
    ),
    (
        NOTIFY_DROPIN,
        include_str!("../../units/composectl-notify@.service.d.conf"),
    ),
];

/// A stack's backup timer (`systemctl enable --now composectl-backup@STACK.timer`).
pub fn backup_timer(stack: &str) -> String {
    format!("composectl-backup@{stack}.timer")
}

/// Root's docker configuration directory (registry logins, buildx state): the one part of root's
/// home the system sandbox leaves writable, so `enable` makes sure it exists.
pub const ROOT_DOCKER_CONFIG: &str = "/root/.docker";

/// Overrides the binary path written into `ExecStart=` (packagers, tests); otherwise the path of
/// the running composectl.
pub const EXEC_ENV: &str = "COMPOSECTL_EXEC";

/// The binary a stack's unit runs, installed beside composectl: `composectl run` without the
/// other commands, so each stack's supervisor maps less code.
pub const SUPERVISOR_BIN: &str = "composectl-supervisor";

pub fn stack_unit(stack: &str) -> String {
    format!("compose@{stack}.service")
}

/// composectl's drop-in for a unit, relative to the unit directory.
pub fn unit_dropin(unit: &str) -> PathBuf {
    PathBuf::from(format!("{unit}.d")).join(DROPIN_NAME)
}

/// A stack's drop-in, relative to the unit directory.
pub fn dropin_path(stack: &str) -> PathBuf {
    PathBuf::from(format!("{}.d", stack_unit(stack))).join(STACK_DROPIN_NAME)
}

/// The unit a failing stack starts when composectl.toml has `[notify]`.
pub fn notify_unit(stack: &str) -> String {
    format!("composectl-notify@{stack}.service")
}

/// The drop-in of a stack's slice, relative to the unit directory.
pub fn slice_dropin_path(stack: &str) -> PathBuf {
    PathBuf::from(format!("{}.d", stack_slice(stack))).join(STACK_DROPIN_NAME)
}

/// Both drop-ins composectl writes for a stack: its unit's and its slice's.
pub fn stack_dropins(stack: &str) -> [PathBuf; 2] {
    [dropin_path(stack), slice_dropin_path(stack)]
}

/// The stack whose unit a composectl-owned drop-in path configures, if it is one.
pub fn stack_of_dropin(path: &Path) -> Option<&str> {
    if path.file_name()? != STACK_DROPIN_NAME {
        return None;
    }
    path.parent()?
        .to_str()?
        .strip_prefix("compose@")?
        .strip_suffix(".service.d")
        .filter(|stack| !stack.is_empty())
}

/// Whether a drop-in path is one of a stack's (its unit's or its slice's) rather than shared.
pub fn is_stack_dropin(path: &Path) -> bool {
    stack_of_dropin(path).is_some()
        || (path.file_name() == Some(STACK_DROPIN_NAME.as_ref())
            && path.parent().and_then(Path::to_str).is_some_and(|dir| {
                dir.strip_prefix("compose-")
                    .and_then(|rest| rest.strip_suffix(".slice.d"))
                    .is_some_and(|stack| !stack.is_empty())
            }))
}

/// The key of a stack's drop-in that lists its required stacks: systemd ignores `X-` keys, and
/// `Wants=` alone would not tell requires from wants.
const REQUIRES_KEY: &str = "X-Composectl-Requires=";

/// The stacks a stack's drop-in (as `render` writes it) requires.
pub fn required_stacks(dropin: &str) -> Vec<String> {
    dropin
        .lines()
        .filter_map(|line| line.trim().strip_prefix(REQUIRES_KEY))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

/// A unit file to install, relative to the unit directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFile {
    pub path: PathBuf,
    pub contents: String,
}

impl UnitFile {
    /// Drop-ins belong to one installation; the other files are shared.
    pub fn is_dropin(&self) -> bool {
        self.path
            .parent()
            .is_some_and(|dir| !dir.as_os_str().is_empty())
    }
}

/// The composectl binary units should run.
pub fn exec_path() -> Result<PathBuf> {
    let path = match std::env::var_os(EXEC_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe().context("cannot find the path of the composectl binary")?,
    };
    if !path.is_absolute() {
        bail!("{EXEC_ENV}={} is not an absolute path", path.display());
    }
    Ok(path)
}

/// The supervisor binary beside the composectl binary `exec`.
pub fn supervisor_path(exec: &Path) -> PathBuf {
    exec.with_file_name(SUPERVISOR_BIN)
}

fn engine() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    // Unit files are not HTML; the filters below are the only escaping, and files end in a newline.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .context("template syntax")?,
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .context("built-in unit templates are invalid")?;
    }
    env.add_filter("exec_arg", |value: &str| escape::exec_arg(value));
    env.add_filter("unit_value", |value: &str| escape::unit_value(value));
    env.add_filter("plain_value", |value: &str| escape::plain_value(value));
    env.add_filter("path_item", |value: &str| escape::path_item(value));
    Ok(env)
}

fn render_template(
    env: &Environment<'_>,
    name: &str,
    context: &BTreeMap<&str, Value>,
) -> Result<String> {
    Ok(env.get_template(name)?.render(context)?)
}

/// A thread renders at least this many drop-ins: fewer cost less than starting it.
const DROPINS_PER_THREAD: usize = 32;

/// Renders the shared units and one drop-in per stack in `stacks` (which must exist in `root`).
pub fn render(
    root: &Root,
    stacks: &BTreeSet<String>,
    mode: Mode,
    exec: &Path,
) -> Result<Vec<UnitFile>> {
    let env = engine()?;
    let settings = &root.settings;
    let span = |d: std::time::Duration| Value::from(duration::format(d));
    let mut shared: BTreeMap<&str, Value> = BTreeMap::new();
    shared.insert("version", Value::from(env!("CARGO_PKG_VERSION")));
    shared.insert("system", Value::from(mode == Mode::System));
    shared.insert("mode", Value::from(mode.flag()));
    shared.insert("exec", Value::from(exec.to_string_lossy()));
    shared.insert(
        "supervisor",
        Value::from(supervisor_path(exec).to_string_lossy()),
    );
    shared.insert("root", Value::from(root.dir.to_string_lossy()));
    shared.insert("wanted_by", Value::from(mode.default_target()));
    shared.insert("docker_config", Value::from(ROOT_DOCKER_CONFIG));
    shared.insert("start_limit_interval", span(settings.start_limit_interval));
    shared.insert("start_limit_burst", Value::from(settings.start_limit_burst));
    shared.insert("restart_sec", span(settings.restart_sec));
    shared.insert("start_timeout", span(settings.start_timeout));
    shared.insert("stop_timeout", span(settings.stop_timeout));
    shared.insert(
        "update_check",
        Value::from(settings.update_timer == UpdateTimer::Check),
    );

    let mut files = Vec::new();
    for (template, path) in [
        (TEMPLATE_UNIT, PathBuf::from(TEMPLATE_UNIT)),
        (TEMPLATE_DROPIN, unit_dropin(TEMPLATE_UNIT)),
        (TARGET_UNIT, PathBuf::from(TARGET_UNIT)),
        (NETWORKS_UNIT, PathBuf::from(NETWORKS_UNIT)),
        (NETWORKS_DROPIN, unit_dropin(NETWORKS_UNIT)),
        (UPDATE_UNIT, PathBuf::from(UPDATE_UNIT)),
        (UPDATE_TIMER, PathBuf::from(UPDATE_TIMER)),
        (UPDATE_DROPIN, unit_dropin(UPDATE_UNIT)),
        (BACKUP_UNIT, PathBuf::from(BACKUP_UNIT)),
        (BACKUP_TIMER, PathBuf::from(BACKUP_TIMER)),
        (BACKUP_DROPIN, unit_dropin(BACKUP_UNIT)),
        (NOTIFY_UNIT, PathBuf::from(NOTIFY_UNIT)),
        (NOTIFY_DROPIN, unit_dropin(NOTIFY_UNIT)),
    ] {
        files.push(UnitFile {
            path,
            contents: render_template(&env, template, &shared)?,
        });
    }
    // Drop-ins are independent of each other: on every core (a root of 200 stacks).
    let names: Vec<&String> = stacks.iter().collect();
    let dropins = crate::parallel::map(
        &names,
        DROPINS_PER_THREAD,
        |name| -> Result<[UnitFile; 2]> {
            let stack = root
                .stacks
                .get(*name)
                .with_context(|| format!("no stack named {name}"))?;
            let mut context = shared.clone();
            let relative = stack
                .compose_file
                .strip_prefix(&root.dir)
                .unwrap_or(&stack.compose_file);
            context.insert("compose_file", Value::from(relative.to_string_lossy()));
            context.insert("description", Value::from(stack.description.as_str()));
            // Joined here, for one line per key: as lists, their conversion into template values and
            // a loop writing a line per stack took about a tenth of a render of 200 stacks that each
            // require 50.
            context.insert("requires", Value::from(stack.requires.join(" ")));
            let dependency_units: Vec<String> = stack
                .requires
                .iter()
                .chain(&stack.wants)
                .map(|stack| stack_unit(stack))
                .collect();
            context.insert("dependency_units", Value::from(dependency_units.join(" ")));
            context.insert("start_timeout", span(stack.start_timeout));
            // Only where the containers' grace periods need more than the template's timeout.
            if stack.stop_timeout > settings.stop_timeout {
                context.insert("grace_stop_timeout", span(stack.stop_timeout));
            }
            context.insert("restart_sec", span(stack.restart_sec));
            let mounts: Vec<String> = stack
                .mounts
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            context.insert("mounts", Value::from(mounts));
            let credentials: Vec<String> = stack
                .encrypted
                .values()
                .map(|id| format!("{id}:{}", crate::credentials::path(id).display()))
                .collect();
            context.insert("credentials", Value::from(credentials));
            context.insert("slice", Value::from(stack_slice(name)));
            let notify = settings.notify.as_ref().map(|_| notify_unit(name));
            context.insert("notify", Value::from(notify.unwrap_or_default()));
            let (interval, burst) = stack.log_rate_limit;
            context.insert("log_interval", span(interval));
            context.insert("log_burst", Value::from(burst));
            // Every container's share, and one more for the supervisor's own messages.
            let shares = u32::try_from(stack.running.len() + 1).unwrap_or(u32::MAX);
            context.insert("unit_log_burst", Value::from(burst.saturating_mul(shares)));
            let unit = UnitFile {
                path: dropin_path(name),
                contents: render_template(&env, STACK_DROPIN, &context)?,
            };
            context.insert("stack", Value::from(name.as_str()));
            let resources: Vec<Vec<String>> = stack
                .resources
                .directives()
                .into_iter()
                .map(|(setting, value)| vec![setting.to_string(), value])
                .collect();
            context.insert("resources", Value::from(resources));
            let slice = UnitFile {
                path: slice_dropin_path(name),
                contents: render_template(&env, SLICE_DROPIN, &context)?,
            };
            Ok([unit, slice])
        },
    );
    for pair in dropins {
        files.extend(pair?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_stacks_are_read_back_from_what_render_writes() {
        let root = crate::model::select(Path::new(env!("CARGO_MANIFEST_DIR")), &[])
            .expect("the example root loads")
            .root;
        let stacks: BTreeSet<String> = root.stacks.keys().cloned().collect();
        let files = render(
            &root,
            &stacks,
            Mode::System,
            Path::new("/usr/bin/composectl"),
        )
        .expect("renders");
        for (name, stack) in &root.stacks {
            let dropin = files
                .iter()
                .find(|f| f.path == dropin_path(name))
                .expect("a drop-in per stack");
            assert_eq!(required_stacks(&dropin.contents), stack.requires, "{name}");
        }
        assert!(root.stacks.values().any(|s| s.requires.len() > 1));
    }

    #[test]
    fn system_units_load_the_encrypted_secrets_and_user_units_do_not() {
        let mut root = crate::model::select(Path::new(env!("CARGO_MANIFEST_DIR")), &[])
            .expect("the example root loads")
            .root;
        let database = root.stacks.get_mut("database").expect("database");
        database.encrypted.insert(
            "POSTGRES_PASSWORD".into(),
            "composectl.database.POSTGRES_PASSWORD".into(),
        );
        let stacks = BTreeSet::from(["database".to_string()]);
        let dropin = |mode| {
            render(&root, &stacks, mode, Path::new("/usr/bin/composectl"))
                .expect("renders")
                .into_iter()
                .find(|f| f.path == dropin_path("database"))
                .expect("database's drop-in")
                .contents
        };
        let line = "\nLoadCredentialEncrypted=composectl.database.POSTGRES_PASSWORD:/etc/credstore.encrypted/composectl.database.POSTGRES_PASSWORD\n";
        assert!(
            dropin(Mode::System).contains(line),
            "{}",
            dropin(Mode::System)
        );
        assert!(!dropin(Mode::User).contains("LoadCredential"));
    }

    #[test]
    fn dropin_paths_round_trip() {
        assert_eq!(stack_of_dropin(&dropin_path("genai")), Some("genai"));
        assert_eq!(stack_of_dropin(&unit_dropin(TEMPLATE_UNIT)), None);
        assert_eq!(
            stack_of_dropin(Path::new("compose@x.service.d/override.conf")),
            None
        );
        assert_eq!(
            stack_of_dropin(Path::new("other.service.d/20-composectl.conf")),
            None
        );
    }
}
