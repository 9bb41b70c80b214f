//! `composectl.toml`: optional settings for a root (the compose command and stack defaults).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::reference::{self, COMPOSECTL_TOML};
use super::resources::Resources;
use crate::diag::{Diagnostic, Diagnostics, line_of};

pub const FILE: &str = "composectl.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The compose command, as argv: `docker compose` unless configured.
    pub compose: Vec<String>,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    pub restart_sec: Duration,
    /// systemd's StartLimitIntervalSec / StartLimitBurst: a crash loop ends in `failed`.
    pub start_limit_interval: Duration,
    pub start_limit_burst: u32,
    /// How long a container that died or turned unhealthy may take to come back on its own
    /// (restart policy, healthcheck retries) before the supervisor gives up on the stack.
    pub failure_grace: Duration,
    /// The supervisor forwards at most `log_rate_limit_burst` lines per container and
    /// `log_rate_limit_interval`; journald's limit for the unit is sized from them.
    pub log_rate_limit_interval: Duration,
    pub log_rate_limit_burst: u32,
    /// `[backup] dir`: where `composectl backup` writes (the mode's default when unset).
    pub backup_dir: Option<PathBuf>,
    /// `[backup] keep`: how many archives of a stack `backup` keeps there (all when unset).
    pub backup_keep: Option<usize>,
    /// `[update] timer`: what composectl-update.service does, `update` or `check`.
    pub update_timer: UpdateTimer,
    /// `[resources]`: every stack's slice settings, unless its x-composectl sets the key.
    pub resources: Resources,
    /// `[notify]`: what runs when a stack fails; off when unset.
    pub notify: Option<Notify>,
}

/// The command a failing stack's `OnFailure=` unit runs, and on which failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// A shell command line (`/bin/sh -c`).
    pub command: String,
    /// Also on each failure systemd restarts the stack after, not only once it stays failed.
    pub restarts: bool,
}

/// What the optional update timer runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateTimer {
    /// `composectl update --all`: health-gated, rolled back when not ready.
    #[default]
    Update,
    /// `composectl update --check --all`: only says which images are newer (in the journal).
    Check,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            compose: vec!["docker".into(), "compose".into()],
            start_timeout: Duration::from_secs(5 * 60),
            stop_timeout: Duration::from_secs(2 * 60),
            restart_sec: Duration::from_secs(10),
            start_limit_interval: Duration::from_secs(10 * 60),
            start_limit_burst: 5,
            failure_grace: Duration::from_secs(10),
            // journald's own default for one unit: each container gets what a unit would get.
            log_rate_limit_interval: Duration::from_secs(30),
            log_rate_limit_burst: 10_000,
            backup_dir: None,
            backup_keep: None,
            update_timer: UpdateTimer::Update,
            resources: Resources::default(),
            notify: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    compose: Option<Vec<String>>,
    #[serde(default)]
    defaults: DefaultsTable,
    #[serde(default)]
    backup: BackupTable,
    #[serde(default)]
    update: UpdateTable,
    /// Sizes are strings, weights integers: each value is read as written, then checked by
    /// the same rules as x-composectl's.
    #[serde(default)]
    resources: std::collections::BTreeMap<String, Spanned<toml::Value>>,
    notify: Option<Spanned<NotifyTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyTable {
    command: Option<String>,
    #[serde(default)]
    restarts: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupTable {
    dir: Option<Spanned<PathBuf>>,
    keep: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpdateTable {
    timer: Option<UpdateTimer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsTable {
    start_timeout: Option<String>,
    stop_timeout: Option<String>,
    restart_sec: Option<String>,
    start_limit_interval: Option<String>,
    start_limit_burst: Option<u32>,
    failure_grace: Option<String>,
    log_rate_limit_interval: Option<String>,
    log_rate_limit_burst: Option<Spanned<u32>>,
}

pub fn parse(path: &Path, text: &str, diags: &mut Diagnostics) -> Settings {
    let mut settings = Settings::default();
    if !reference::check_toml(&COMPOSECTL_TOML, path, text, diags) {
        return settings;
    }
    let file: SettingsFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            diags.push(reference::toml_error(&COMPOSECTL_TOML, path, text, &e));
            return settings;
        }
    };
    if let Some(compose) = file.compose {
        if compose.is_empty() || compose[0].trim().is_empty() {
            diags.push(
                Diagnostic::error(path.to_path_buf(), "compose is empty")
                    .hint("write the command as a list, e.g. compose = [\"docker\", \"compose\"]"),
            );
        } else {
            settings.compose = compose;
        }
    }
    let defaults = file.defaults;
    for (key, value, slot) in [
        (
            "start_timeout",
            defaults.start_timeout,
            &mut settings.start_timeout,
        ),
        (
            "stop_timeout",
            defaults.stop_timeout,
            &mut settings.stop_timeout,
        ),
        (
            "restart_sec",
            defaults.restart_sec,
            &mut settings.restart_sec,
        ),
        (
            "start_limit_interval",
            defaults.start_limit_interval,
            &mut settings.start_limit_interval,
        ),
        (
            "failure_grace",
            defaults.failure_grace,
            &mut settings.failure_grace,
        ),
        (
            "log_rate_limit_interval",
            defaults.log_rate_limit_interval,
            &mut settings.log_rate_limit_interval,
        ),
    ] {
        let Some(value) = value else { continue };
        match crate::duration::parse(&value) {
            Ok(duration) => *slot = duration,
            Err(message) => diags.push(
                Diagnostic::error(path.to_path_buf(), format!("defaults.{key}: {message}"))
                    .hint("write a duration such as 90s, 15min or 1h 30min"),
            ),
        }
    }
    let line = |spanned_at: usize| Some(line_of(text, spanned_at));
    if let Some(dir) = file.backup.dir {
        if dir.get_ref().is_absolute() {
            settings.backup_dir = Some(dir.get_ref().clone());
        } else {
            diags.push(
                Diagnostic::error(path.to_path_buf(), format!("backup.dir {} is not an absolute path", dir.get_ref().display()))
                    .at_line(line(dir.span().start))
                    .hint("write the directory for archives as an absolute path, e.g. dir = \"/var/backups/composectl\""),
            );
        }
    }
    if let Some(keep) = file.backup.keep {
        if *keep.get_ref() == 0 {
            diags.push(
                Diagnostic::error(path.to_path_buf(), "backup.keep is 0")
                    .at_line(line(keep.span().start))
                    .hint("keep counts the newest archives of a stack to keep, at least 1; leave it out to keep all"),
            );
        } else {
            settings.backup_keep = Some(*keep.get_ref());
        }
    }
    settings.update_timer = file.update.timer.unwrap_or_default();
    if let Some(notify) = file.notify {
        let at = line(notify.span().start);
        let table = notify.into_inner();
        match table.command.filter(|c| !c.trim().is_empty()) {
            Some(command) => {
                settings.notify = Some(Notify {
                    command,
                    restarts: table.restarts,
                });
            }
            None => diags.push(
                Diagnostic::error(path.to_path_buf(), "[notify] has no command")
                    .at_line(at)
                    .hint("write the command that sends the notification, e.g. command = \"curl -fsS -m 10 --data-binary @- https://ntfy.sh/my-topic\"; or remove [notify]"),
            ),
        }
    }
    for (key, value) in &file.resources {
        let text = match value.get_ref() {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(number) => number.to_string(),
            other => other.to_string(),
        };
        if let Err(message) = settings.resources.set(key, &text) {
            diags.push(
                Diagnostic::error(path.to_path_buf(), format!("resources.{message}"))
                    .at_line(line(value.span().start))
                    .hint("see man 5 composectl.toml for what each resource takes"),
            );
        }
    }
    if let Some(conflict) = settings.resources.conflict() {
        diags.push(
            Diagnostic::error(path.to_path_buf(), format!("resources: {conflict}"))
                .hint("set memory_high below memory_max (where the kernel starts reclaiming), or leave one out"),
        );
    }
    if let Some(burst) = defaults.start_limit_burst {
        settings.start_limit_burst = burst;
    }
    if let Some(burst) = defaults.log_rate_limit_burst {
        if *burst.get_ref() == 0 {
            diags.push(
                Diagnostic::error(path.to_path_buf(), "defaults.log_rate_limit_burst is 0")
                    .at_line(line(burst.span().start))
                    .hint("burst counts the lines each container may log per interval, e.g. 10000"),
            );
        } else {
            settings.log_rate_limit_burst = *burst.get_ref();
        }
    }
    settings
}
