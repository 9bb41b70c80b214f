//! Rendering the unit files for a set of stacks from the templates in `units/`.
//!
//! The layout: one template `compose@.service` for every stack, one drop-in per stack with its
//! ordering and timeouts, `composectl.target` grouping the stacks for boot, and
//! `composectl-networks.service` creating the shared networks. `render`, `diff` and `enable` all
//! use exactly this output.

pub mod escape;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tera::Tera;

use crate::duration;
use crate::mode::Mode;
use crate::model::Root;

pub const TEMPLATE_UNIT: &str = "compose@.service";
pub const TARGET_UNIT: &str = "composectl.target";
pub const NETWORKS_UNIT: &str = "composectl-networks.service";
pub const DROPIN_NAME: &str = "10-composectl.conf";

const TEMPLATES: [(&str, &str); 4] = [
    (TEMPLATE_UNIT, include_str!("../../units/compose@.service")),
    ("stack.conf", include_str!("../../units/stack.conf")),
    (TARGET_UNIT, include_str!("../../units/composectl.target")),
    (
        NETWORKS_UNIT,
        include_str!("../../units/composectl-networks.service"),
    ),
];

/// Overrides the binary path written into `ExecStart=` (packagers, tests); otherwise the path of
/// the running composectl.
pub const EXEC_ENV: &str = "COMPOSECTL_EXEC";

pub fn stack_unit(stack: &str) -> String {
    format!("compose@{stack}.service")
}

/// A stack's drop-in, relative to the unit directory.
pub fn dropin_path(stack: &str) -> PathBuf {
    PathBuf::from(format!("{}.d", stack_unit(stack))).join(DROPIN_NAME)
}

/// The stack a composectl-owned drop-in path belongs to, if it is one.
pub fn stack_of_dropin(path: &Path) -> Option<&str> {
    if path.file_name()? != DROPIN_NAME {
        return None;
    }
    path.parent()?
        .to_str()?
        .strip_prefix("compose@")?
        .strip_suffix(".service.d")
}

/// A unit file to install, relative to the unit directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFile {
    pub path: PathBuf,
    pub contents: String,
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

fn engine() -> Result<Tera> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_templates(TEMPLATES)
        .context("built-in unit templates are invalid")?;
    tera.register_filter("exec_arg", string_filter(escape::exec_arg));
    tera.register_filter("unit_value", string_filter(escape::unit_value));
    Ok(tera)
}

fn string_filter(
    f: fn(&str) -> String,
) -> impl Fn(&tera::Value, &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value>
+ Sync
+ Send {
    move |value, _| match value.as_str() {
        Some(s) => Ok(tera::Value::String(f(s))),
        None => Err(tera::Error::msg("unit filters take strings")),
    }
}

/// Renders the shared units and one drop-in per stack in `stacks` (which must exist in `root`).
pub fn render(
    root: &Root,
    stacks: &BTreeSet<String>,
    mode: Mode,
    exec: &Path,
) -> Result<Vec<UnitFile>> {
    let tera = engine()?;
    let settings = &root.settings;
    let mut shared = tera::Context::new();
    shared.insert("version", env!("CARGO_PKG_VERSION"));
    shared.insert("system", &(mode == Mode::System));
    shared.insert("mode", mode.flag());
    shared.insert("exec", &exec.to_string_lossy());
    shared.insert("root", &root.dir.to_string_lossy());
    shared.insert("wanted_by", mode.default_target());
    shared.insert(
        "start_limit_interval",
        &duration::format(settings.start_limit_interval),
    );
    shared.insert("start_limit_burst", &settings.start_limit_burst);
    shared.insert("restart_sec", &duration::format(settings.restart_sec));
    shared.insert("start_timeout", &duration::format(settings.start_timeout));
    shared.insert("stop_timeout", &duration::format(settings.stop_timeout));

    let mut files = Vec::new();
    for name in [TEMPLATE_UNIT, TARGET_UNIT, NETWORKS_UNIT] {
        files.push(UnitFile {
            path: PathBuf::from(name),
            contents: tera.render(name, &shared)?,
        });
    }
    for name in stacks {
        let stack = root
            .stacks
            .get(name)
            .with_context(|| format!("no stack named {name}"))?;
        let mut context = shared.clone();
        let relative = stack
            .compose_file
            .strip_prefix(&root.dir)
            .unwrap_or(&stack.compose_file);
        context.insert("compose_file", &relative.to_string_lossy());
        context.insert("description", &stack.description);
        context.insert("requires", &stack.requires);
        context.insert("wants", &stack.wants);
        context.insert("start_timeout", &duration::format(stack.start_timeout));
        context.insert("restart_sec", &duration::format(stack.restart_sec));
        files.push(UnitFile {
            path: dropin_path(name),
            contents: tera.render("stack.conf", &context)?,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropin_paths_round_trip() {
        assert_eq!(stack_of_dropin(&dropin_path("genai")), Some("genai"));
        assert_eq!(
            stack_of_dropin(Path::new("compose@x.service.d/override.conf")),
            None
        );
        assert_eq!(
            stack_of_dropin(Path::new("other.service.d/10-composectl.conf")),
            None
        );
    }
}
