//! run: the supervisor, as the main process of compose@STACK.service; with --reload, the
//! unit's ExecReload=, which asks it to apply changed files.

use std::time::Duration;

use anyhow::anyhow;

use crate::context::{Context, block_on};
use crate::error::{Error, Result};
use crate::model::{self, StackName};
use crate::output::{Report, Streamed, report};
use crate::runtime::{self, Action};
use crate::supervisor::{self, Ending};

/// Beyond the stack's start timeout, for `compose up` (systemd's TimeoutStartSec= bounds a
/// reload run as ExecReload= anyway).
const RELOAD_MARGIN: Duration = Duration::from_secs(60);

pub fn run(ctx: &Context, name: &StackName) -> Result<Box<dyn Report>> {
    supervisor::init_logging(name);
    let root = ctx.load_one(name)?;
    let stack = root.stack(name)?;
    match block_on(async { Ok(supervisor::run(&root, stack, ctx.mode).await?) })? {
        Ending::Stopped => Ok(Box::new(Streamed)),
        Ending::Restart(reason) => Err(Error::Restart(reason)),
    }
}

pub fn reload(ctx: &Context, name: &StackName) -> Result<Box<dyn Report>> {
    // The limit only: an invalid root is the supervisor's to report (it changes nothing then).
    let timeout = model::load_one(&ctx.root_dir, name)
        .ok()
        .and_then(|loaded| Some(loaded.root.stacks.get(&**name)?.start_timeout))
        .unwrap_or_else(|| crate::config::settings::Settings::default().start_timeout);
    let outcome = block_on(async {
        Ok(runtime::request(
            ctx.mode,
            name,
            Action::Reload,
            timeout + RELOAD_MARGIN,
            |text| {
                ctx.out.note(text);
            },
        )
        .await?)
    })?;
    if !outcome.ok {
        return Err(anyhow!("stack {name}: {}", outcome.message).into());
    }
    Ok(Box::new(report(outcome, |o, out| out.line(&o.message))))
}
