//! notify: what `composectl-notify@STACK.service` runs when a stack's unit fails (its
//! `OnFailure=`, written when composectl.toml has `[notify]`): the configured command, with the
//! stack, systemd's result and the stack's last journal lines.
//!
//! systemd 252 starts `OnFailure=` units on every failure, also those it restarts the stack
//! after; whether the unit stayed failed is read here, so a notification says "failed" once
//! the restarts are used up, and restarts are heard only where `restarts = true` asks for them.

use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;
use tokio::process::Command;

use crate::config::settings::{self, Notify};
use crate::context::{Context, block_on};
use crate::diag::Diagnostics;
use crate::error::{Error, Result};
use crate::model::StackName;
use crate::output::{Report, report};
use crate::state::StackState;
use crate::systemd::{Systemd, UnitStatus};
use crate::units;

/// How long the user's command may take: a notifier that hangs must not hold the unit.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Journal lines handed to the command.
const LOG_LINES: usize = 20;

#[derive(Serialize)]
struct Notified {
    stack: String,
    /// failed, restarting, or test.
    state: String,
    result: String,
    /// False when the failure was one systemd restarts the stack after and `restarts` is off.
    sent: bool,
}

/// `[notify]` of the root's composectl.toml, read alone: a stack whose compose file broke is
/// one to hear about.
fn notify_settings(ctx: &Context) -> Result<Notify> {
    let path = ctx.root_dir.join(settings::FILE);
    let mut diags = Diagnostics::default();
    let text = crate::config::read_optional(&path, &mut diags);
    let parsed = text.map(|text| settings::parse(&path, &text, &mut diags));
    if diags.has_errors() {
        return Err(diags.into());
    }
    parsed.and_then(|s| s.notify).ok_or_else(|| {
        Error::usage(format!(
            "{} has no [notify] command: write one (man 5 composectl.toml), then composectl enable",
            path.display()
        ))
    })
}

pub fn notify(ctx: &Context, stack: &StackName, test: bool) -> Result<Box<dyn Report>> {
    let notify = notify_settings(ctx)?;
    let unit = units::stack_unit(stack);
    let outcome = block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        let status = systemd.status(&unit).await?;
        let state = if test {
            "test"
        } else if status.active_state == "failed" {
            "failed"
        } else {
            "restarting"
        };
        let result = if status.result.is_empty() {
            "-".to_string()
        } else {
            status.result.clone()
        };
        // systemd may start the notifier twice for one failed state (a restart's failure and
        // the start limit's): the state's timestamp, once notified, is not notified again.
        let first = || {
            StackState::new(ctx.mode, stack)
                .first_notice(status.since_usec)
                .unwrap_or_else(|e| {
                    ctx.out
                        .warn(&format!("{e:#}; this failure may be notified twice"));
                    true
                })
        };
        let sent = test || ((state == "failed" || notify.restarts) && first());
        if sent {
            let log = systemd.last_log_lines(&status, LOG_LINES).join("\n");
            run_command(&notify.command, stack, &status, state, &log).await?;
        }
        Ok(Notified {
            stack: stack.to_string(),
            state: state.to_string(),
            result,
            sent,
        })
    })?;
    Ok(Box::new(report(outcome, |n, out| {
        if n.sent {
            out.line(format!("notified: {} {} ({})", n.stack, n.state, n.result))
        } else {
            out.line(format!(
                "not notified: {} failed ({}) and systemd restarts it; [notify] restarts = true notifies on these too",
                n.stack, n.result
            ))
        }
    })))
}

fn message(host: &str, stack: &str, state: &str, result: &str, restarts: u32) -> String {
    match state {
        "test" => format!("composectl on {host}: a test notification for stack {stack}"),
        "failed" => format!(
            "composectl on {host}: stack {stack} failed ({result}) and stays failed after {restarts} restarts: systemctl status compose@{stack}"
        ),
        _ => format!(
            "composectl on {host}: stack {stack} failed ({result}); systemd restarts it (restart {})",
            restarts + 1
        ),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

async fn run_command(
    command: &str,
    stack: &str,
    status: &UnitStatus,
    state: &str,
    log: &str,
) -> anyhow::Result<()> {
    let host = hostname();
    let message = message(&host, stack, state, &status.result, status.n_restarts);
    let mut shell = Command::new("/bin/sh");
    shell
        .args(["-c", command])
        .env("COMPOSECTL_STACK", stack)
        .env("COMPOSECTL_UNIT", &status.unit)
        .env("COMPOSECTL_HOST", &host)
        .env("COMPOSECTL_RESULT", &status.result)
        .env("COMPOSECTL_STATE", state)
        .env("COMPOSECTL_MESSAGE", &message)
        .env("COMPOSECTL_LOG", log);
    let input = format!("{message}\n\n{log}\n");
    crate::process::run(
        shell,
        "the [notify] command",
        "check the command in composectl.toml",
        Some(input.as_bytes()),
        Some(COMMAND_LIMIT),
    )
    .await
    .map(drop)
    .map_err(|e| anyhow!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_whether_the_stack_stays_failed() {
        assert!(
            message("h", "genai", "failed", "exit-code", 5)
                .contains("stays failed after 5 restarts")
        );
        assert!(
            message("h", "genai", "restarting", "oom-kill", 0)
                .contains("systemd restarts it (restart 1)")
        );
        assert!(message("h", "genai", "test", "", 0).contains("a test notification"));
    }
}
