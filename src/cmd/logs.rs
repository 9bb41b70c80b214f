//! logs: a stack's journal, through journalctl.

use std::os::unix::process::ExitStatusExt;

use anyhow::anyhow;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::{STACKS_DIR, StackName};
use crate::output::{Report, Streamed};
use crate::{systemd, units};

pub struct Query<'a> {
    pub stack: &'a StackName,
    pub service: Option<&'a str>,
    pub follow: bool,
    pub lines: Option<u32>,
    pub since: Option<&'a str>,
}

pub fn logs(ctx: &Context, query: &Query<'_>) -> Result<Box<dyn Report>> {
    let stack = query.stack;
    let known = ctx.unit_dir().installed().contains(stack)
        || ctx.root_dir.join(STACKS_DIR).join(&**stack).is_dir();
    if !known {
        return Err(Error::usage(format!(
            "no stack named \"{stack}\" in the root or the unit directory"
        )));
    }
    let mut command = systemd::journalctl();
    if ctx.out.json() {
        // journald's own JSON, one entry a line.
        command.args(["--output", "json"]);
    }
    if query.follow {
        command.arg("--follow");
    }
    if let Some(n) = query.lines {
        command.args(["--lines", &n.to_string()]);
    }
    if let Some(since) = query.since {
        command.args(["--since", since]);
    }
    let extra: Vec<String> = query
        .service
        .map(|s| vec![format!("COMPOSE_SERVICE={s}")])
        .unwrap_or_default();
    command.args(systemd::unit_matches(&units::stack_unit(stack), &extra));
    let status = command
        .status()
        .map_err(|e| anyhow!("cannot run journalctl: {e}; is systemd installed?"))?;
    // Killed by SIGPIPE: whoever read the lines (`logs | head`) has all they wanted.
    if status.success() || status.signal() == Some(nix::libc::SIGPIPE) {
        return Ok(Box::new(Streamed));
    }
    Err(Error::Failed(anyhow!("journalctl failed ({status})")))
}
