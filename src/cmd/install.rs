//! enable and disable: the units in the unit directory, systemd's view of them, and with --now
//! the stacks themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::anyhow;
use serde::Serialize;

use crate::context::{Context, block_on};
use crate::engine::{self, Engine, Placement};
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model::{Root, StackName};
use crate::output::{Report, report};
use crate::secrets::{self, Secret};
use crate::systemd::{JobKind, JobOutcome, Jobs, Systemd};
use crate::units;

#[derive(Serialize)]
struct Enabled {
    stacks: BTreeSet<String>,
    /// Secrets generated now (names and files, never values).
    generated: Vec<Secret>,
    /// Files written into the unit directory (unchanged ones are left out).
    wrote: Vec<PathBuf>,
    started: bool,
    jobs: Vec<JobOutcome>,
}

/// The system sandbox applies `ReadWritePaths=` only to a directory that exists: without it,
/// stacks with `build:` fail (buildx writes there) and registry logins cannot be refreshed.
fn ensure_docker_config(mode: Mode) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if mode != Mode::System {
        return Ok(());
    }
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .create(units::ROOT_DOCKER_CONFIG)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(anyhow!("cannot create {}: {e}", units::ROOT_DOCKER_CONFIG).into())
        }
        _ => Ok(()),
    }
}

pub fn enable(ctx: &Context, names: &[StackName], now: bool) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    let (root, stacks) = ctx.select(names)?;
    // Generated before the units are rendered: a secret sealed now is one they load.
    let mut generated = secrets::generate(&root, &stacks, secrets::store(ctx.mode, &root))?;
    generated.retain(|s| s.generated);
    let root = if generated.is_empty() {
        root
    } else {
        ctx.select(names)?.0
    };
    check_placement(ctx, &root, &stacks)?;
    let files = ctx.render(&root, &stacks)?;
    // Without it every start would fail with systemd's "Failed to locate executable".
    let supervisor = units::supervisor_path(&units::exec_path()?);
    if !supervisor.is_file() {
        return Err(anyhow!(
            "{} is missing: stack units run it; install it beside composectl (the packages and cargo install do)",
            supervisor.display()
        )
        .into());
    }
    let unit_dir = ctx.unit_dir();
    let (generated, changed, jobs) = block_on(async {
        // Reached before anything is written: a manager that cannot be reached changes nothing.
        let systemd = Systemd::connect(ctx.mode).await?;
        let lock = unit_dir.lock()?;
        // Other stacks stay as installed; the selection and the shared drop-ins are replaced.
        let mut installed = unit_dir.installed();
        installed
            .dropins
            .retain(|path, _| units::is_stack_dropin(path));
        for file in files.iter().filter(|f| f.is_dropin()) {
            installed
                .dropins
                .insert(file.path.clone(), file.contents.clone());
        }
        let shared: Vec<_> = files.iter().filter(|f| !f.is_dropin()).cloned().collect();
        let changed = unit_dir.apply(&lock, &shared, &installed.dropins)?;
        ensure_docker_config(ctx.mode)?;
        // EnableUnitFiles reads the files on disk; one reload afterwards covers both.
        let mut enable: Vec<String> = stacks.iter().map(|s| units::stack_unit(s)).collect();
        enable.push(units::TARGET_UNIT.to_string());
        systemd.enable(&enable).await?;
        systemd.reload().await?;
        if !now {
            return Ok((generated, changed, Vec::new()));
        }
        let units = names.iter().map(|n| units::stack_unit(n)).collect();
        let jobs = Jobs::new(JobKind::Start, units, installed.required_units());
        let jobs = systemd.run_jobs(&jobs, &mut ctx.progress()).await?;
        Ok((generated, changed, jobs))
    })?;
    let enabled = Enabled {
        stacks,
        generated,
        wrote: changed.iter().map(|p| unit_dir.path().join(p)).collect(),
        started: now,
        jobs,
    };
    Ok(Box::new(report(enabled, |e, out| {
        for secret in &e.generated {
            out.line(format!(
                "generated secret {} of {} into {}",
                secret.variable,
                secret.stack,
                secret.file.display()
            ))?;
        }
        for path in &e.wrote {
            out.line(format!("wrote {}", path.display()))?;
        }
        let names: Vec<&str> = e.stacks.iter().map(String::as_str).collect();
        out.line(format!(
            "enabled{}: {}",
            if e.started { " and started" } else { "" },
            names.join(", ")
        ))
    })))
}

/// A stack with resources needs its containers in its slice, or its limits would hold its
/// supervisor alone: refused (exit 2) where the engine cannot place them, before anything is
/// written. An engine that does not answer now is left to the supervisor, which says the same.
fn check_placement(ctx: &Context, root: &Root, stacks: &BTreeSet<String>) -> Result<()> {
    let limited: Vec<&str> = stacks
        .iter()
        .filter(|s| !root.stacks[*s].resources.is_empty())
        .map(String::as_str)
        .collect();
    if limited.is_empty() {
        return Ok(());
    }
    let placement = block_on(async {
        let engine = Engine::connect()?;
        engine.placement(ctx.mode).await.map_err(Into::into)
    });
    match placement {
        Ok(Placement::Slice) => Ok(()),
        Ok(Placement::Engine(reason)) => {
            let (who, verb, whose) = match limited.as_slice() {
                [one] => (
                    format!("stack {one}"),
                    "sets",
                    "its containers cannot run in its slice",
                ),
                many => (
                    format!("stacks {}", many.join(", ")),
                    "set",
                    "their containers cannot run in their slices",
                ),
            };
            Err(Error::usage(format!(
                "{who} {verb} resources, but {whose} here: {reason}; \
                 or remove x-composectl resources (and [resources] of composectl.toml) to run without limits"
            )))
        }
        Err(e) => {
            ctx.out.warn(&format!(
                "cannot tell whether the containers of {} can run in their slices: {e:#}; their supervisors check when they start",
                limited.join(", ")
            ));
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct Disabled {
    stacks: BTreeSet<String>,
    stopped: bool,
    jobs: Vec<JobOutcome>,
    /// Containers removed per stack, that the stopped stacks had left behind.
    removed: BTreeMap<String, usize>,
}

pub fn disable(ctx: &Context, names: &[StackName], now: bool) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    let unit_dir = ctx.unit_dir();
    let lock = unit_dir.lock()?;
    let mut installed = unit_dir.installed();
    let targets: BTreeSet<String> = names.iter().map(ToString::to_string).collect();
    for name in &targets {
        if !installed.contains(name) {
            return Err(Error::usage(format!("stack {name} is not enabled")));
        }
        let blockers: Vec<_> = installed
            .dependents(name)
            .into_iter()
            .filter(|d| !targets.contains(d))
            .collect();
        if !blockers.is_empty() {
            return Err(Error::usage(format!(
                "cannot disable {name}: enabled stack {} requires it; disable {} first, or together with it",
                blockers.join(", "),
                blockers.join(" ")
            )));
        }
    }
    let mut stack_units: Vec<String> = targets.iter().map(|s| units::stack_unit(s)).collect();
    // The stacks' backup timers go with them, the update timer with the last stack.
    let last = installed.stacks().iter().all(|s| targets.contains(s));
    stack_units.extend(targets.iter().map(|s| units::backup_timer(s)));
    if last {
        stack_units.push(units::UPDATE_TIMER.to_string());
    }
    let (jobs, removed) = block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        let mut jobs = Vec::new();
        let mut removed = BTreeMap::new();
        if now {
            let stop = Jobs::new(
                JobKind::Stop,
                stack_units.clone(),
                installed.required_units(),
            );
            jobs = systemd.run_jobs(&stop, &mut ctx.progress()).await?;
            removed = remove_leftovers(ctx, &targets).await;
        }
        systemd.disable(&stack_units).await?;
        for name in &targets {
            for path in units::stack_dropins(name) {
                installed.dropins.remove(&path);
            }
        }
        if last {
            systemd.disable(&[units::TARGET_UNIT.to_string()]).await?;
            unit_dir.apply(&lock, &[], &BTreeMap::new())?;
            unit_dir.remove_all(&lock)?;
        } else {
            unit_dir.apply(&lock, &[], &installed.dropins)?;
        }
        systemd.reload().await?;
        Ok((jobs, removed))
    })?;
    let disabled = Disabled {
        stacks: targets,
        stopped: now,
        jobs,
        removed,
    };
    Ok(Box::new(report(disabled, |d, out| {
        for (stack, count) in &d.removed {
            out.line(format!("removed {count} containers {stack} left behind"))?;
        }
        let names: Vec<&str> = d.stacks.iter().map(String::as_str).collect();
        out.line(format!("disabled: {}", names.join(", ")))
    })))
}

/// What stopped stacks left on the engine (containers of a failed start, of a stack that was
/// already failed or stopped by hand): after `disable --now` nothing of them should remain.
/// Volumes stay. Best effort: an engine that does not answer is reported, not waited for.
async fn remove_leftovers(ctx: &Context, stacks: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut removed = BTreeMap::new();
    let engine = match Engine::connect() {
        Ok(engine) if engine.answers(engine::PROBE).await => engine,
        _ => {
            ctx.out.warn(
                "the Docker engine does not answer: containers the stacks left, if any, stay",
            );
            return removed;
        }
    };
    for stack in stacks {
        match engine.remove_project(stack).await {
            Ok(0) => {}
            Ok(n) => {
                removed.insert(stack.clone(), n);
            }
            Err(e) => ctx.out.warn(&format!("{stack}: {e:#}")),
        }
    }
    removed
}
