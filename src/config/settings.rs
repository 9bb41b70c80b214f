//! `composectl.toml`: optional settings for a root (the compose command and stack defaults).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::networks::line_of;
use crate::diag::{Diagnostic, Diagnostics};

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
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    compose: Option<Vec<String>>,
    #[serde(default)]
    defaults: DefaultsTable,
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
    log_rate_limit_burst: Option<u32>,
}

pub fn parse(path: &Path, text: &str, diags: &mut Diagnostics) -> Settings {
    let mut settings = Settings::default();
    let file: SettingsFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            diags.push(
                Diagnostic::error(path.to_path_buf(), e.message().trim().to_string())
                    .at_line(e.span().map(|span| line_of(text, span.start)))
                    .hint("known settings: compose = [\"docker\", \"compose\"] and a [defaults] table with start_timeout, stop_timeout, restart_sec, start_limit_interval, start_limit_burst, failure_grace, log_rate_limit_interval, log_rate_limit_burst"),
            );
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
    if let Some(burst) = defaults.start_limit_burst {
        settings.start_limit_burst = burst;
    }
    match defaults.log_rate_limit_burst {
        Some(0) => diags.push(
            Diagnostic::error(path.to_path_buf(), "defaults.log_rate_limit_burst is 0")
                .at_line(Some(line_of(
                    text,
                    text.find("log_rate_limit_burst").unwrap_or(0),
                )))
                .hint("burst counts the lines each container may log per interval, e.g. 10000"),
        ),
        Some(burst) => settings.log_rate_limit_burst = burst,
        None => {}
    }
    settings
}
