//! start, stop, restart and reload: systemd jobs on installed stacks, waited for and checked.

use serde::Serialize;

use crate::context::{Context, block_on};
use crate::error::{Error, Result};
use crate::model::StackName;
use crate::output::{Report, report};
use crate::systemd::{JobKind, JobOutcome, Jobs, Systemd};
use crate::unitdir::Installed;
use crate::units;

#[derive(Serialize)]
struct Ran {
    action: &'static str,
    stacks: Vec<String>,
    jobs: Vec<JobOutcome>,
}

/// Runs `kind` on the installed stacks and waits for it, watching the stacks they require.
async fn run_jobs(
    ctx: &Context,
    installed: &Installed,
    kind: JobKind,
    stacks: &[String],
) -> Result<Vec<JobOutcome>> {
    let systemd = Systemd::connect(ctx.mode).await?;
    let units = stacks.iter().map(|s| units::stack_unit(s)).collect();
    let jobs = Jobs::new(kind, units, installed.required_units());
    Ok(systemd.run_jobs(&jobs, &mut ctx.progress()).await?)
}

/// The installed stacks among `names`; naming one that is not installed is a usage error.
fn installed_stacks(installed: &Installed, names: &[StackName]) -> Result<Vec<String>> {
    names
        .iter()
        .map(|name| {
            if installed.contains(name) {
                Ok(name.to_string())
            } else {
                Err(Error::usage(format!(
                    "stack {name} is not enabled: run composectl enable {name}"
                )))
            }
        })
        .collect()
}

pub fn run(ctx: &Context, names: &[StackName], kind: JobKind) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    if kind == JobKind::Reload {
        // A reload applies the files: a broken root is refused here, at its file and line.
        ctx.select(names)?;
    }
    let installed = ctx.unit_dir().installed();
    let stacks = installed_stacks(&installed, names)?;
    let jobs = block_on(run_jobs(ctx, &installed, kind, &stacks))?;
    let ran = Ran {
        action: kind.verb(),
        stacks,
        jobs,
    };
    Ok(Box::new(report(ran, |r, out| {
        out.line(format!("{}: {}", r.action, r.stacks.join(", ")))
    })))
}
