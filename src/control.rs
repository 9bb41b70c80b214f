//! The commands that install units and drive systemd: enable, disable, start, stop, restart,
//! status, list, logs. Each validates its input before it writes anything or calls systemd.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use serde_json::json;

use crate::app::{Context, rendered_units};
use crate::cli::RequiredStacks;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model::{self, STACKS_DIR};
use crate::systemd::{self, JobKind, Systemd, UnitStatus};
use crate::unitdir::{self, UnitDir};
use crate::units::{self, UnitFile};

/// One runtime per command: composectl makes a few D-Bus calls and waits for signals.
fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

fn require_privileges(ctx: &Context) -> Result<()> {
    if ctx.mode == Mode::System && !nix::unistd::geteuid().is_root() {
        return Err(Error::usage(
            "system mode changes /etc/systemd/system and the system manager: run with sudo, or use --user for your own stacks",
        ));
    }
    Ok(())
}

pub(crate) fn validate_names(names: &[String]) -> Result<()> {
    for name in names {
        model::validate_stack_name(name)
            .map_err(|reason| Error::usage(format!("invalid stack name {name:?}: {reason}")))?;
    }
    Ok(())
}

fn unit_names(stacks: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    stacks
        .into_iter()
        .map(|s| units::stack_unit(s.as_ref()))
        .collect()
}

fn shared_files(files: &[UnitFile]) -> Vec<UnitFile> {
    files.iter().filter(|f| !f.is_dropin()).cloned().collect()
}

/// Prints each finished job on a terminal, so a long start shows which layer it is at.
fn progress_printer(ctx: &Context) -> impl FnMut(&str, &str) {
    let show = !ctx.ui.quiet && std::io::stdout().is_terminal();
    move |unit: &str, result: &str| {
        if show {
            println!("  {unit}: {result}");
        }
    }
}

pub fn enable(ctx: &Context, args: &RequiredStacks, now: bool) -> Result<()> {
    validate_names(&args.names)?;
    require_privileges(ctx)?;
    let root = ctx.load()?;
    let selection = crate::app::selection(
        &root,
        &crate::cli::StackArgs {
            names: args.names.clone(),
        },
    )?;
    let files = rendered_units(ctx, &root, &selection)?;
    let unit_dir = UnitDir::new(ctx.mode.unit_dir());
    let lock = unit_dir.lock()?;
    // Other stacks stay as installed; the selection and the shared drop-ins are replaced.
    let mut dropins: BTreeMap<PathBuf, String> = unit_dir
        .installed_dropins()
        .into_iter()
        .filter(|(path, _)| units::stack_of_dropin(path).is_some())
        .collect();
    for file in files.iter().filter(|f| f.is_dropin()) {
        dropins.insert(file.path.clone(), file.contents.clone());
    }
    let changed = unit_dir.apply(&lock, &shared_files(&files), &dropins)?;
    let stack_units = unit_names(&selection);
    block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        // EnableUnitFiles reads the files on disk; one reload afterwards covers both.
        let mut enable = stack_units.clone();
        enable.push(units::TARGET_UNIT.to_string());
        systemd.enable(&enable).await?;
        systemd.reload().await?;
        for path in &changed {
            if !ctx.ui.quiet {
                println!("wrote {}", unit_dir.path().join(path).display());
            }
        }
        if now {
            let named = unit_names(&args.names);
            let results = systemd
                .run_jobs(
                    JobKind::Start,
                    &named,
                    &stack_units,
                    &mut progress_printer(ctx),
                )
                .await?;
            systemd::check_outcome(&systemd, JobKind::Start, &results, &stack_units).await?;
        }
        ctx.ui.say(format!(
            "enabled{}: {}",
            if now { " and started" } else { "" },
            selection.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        Ok(())
    })
}

/// Stacks whose installed drop-in requires `stack`.
fn installed_dependents(dropins: &BTreeMap<PathBuf, String>, stack: &str) -> Vec<String> {
    let requires = format!("Requires={}", units::stack_unit(stack));
    dropins
        .iter()
        .filter(|(_, contents)| contents.lines().any(|line| line.trim() == requires))
        .filter_map(|(path, _)| units::stack_of_dropin(path).map(str::to_string))
        .collect()
}

pub fn disable(ctx: &Context, args: &RequiredStacks, now: bool) -> Result<()> {
    validate_names(&args.names)?;
    require_privileges(ctx)?;
    let unit_dir = UnitDir::new(ctx.mode.unit_dir());
    let lock = unit_dir.lock()?;
    let mut dropins = unit_dir.installed_dropins();
    let installed = unitdir::stacks_of(&dropins);
    let targets: BTreeSet<&str> = args.names.iter().map(String::as_str).collect();
    for name in &targets {
        if !installed.contains(*name) {
            return Err(Error::usage(format!("stack {name} is not enabled")));
        }
        let blockers: Vec<_> = installed_dependents(&dropins, name)
            .into_iter()
            .filter(|d| !targets.contains(d.as_str()))
            .collect();
        if !blockers.is_empty() {
            return Err(Error::usage(format!(
                "cannot disable {name}: enabled stack {} requires it; disable {} first, or together with it",
                blockers.join(", "),
                blockers.join(" ")
            )));
        }
    }
    let stack_units = unit_names(&targets);
    block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        if now {
            let results = systemd
                .run_jobs(
                    JobKind::Stop,
                    &stack_units,
                    &stack_units,
                    &mut progress_printer(ctx),
                )
                .await?;
            systemd::check_outcome(&systemd, JobKind::Stop, &results, &stack_units).await?;
        }
        systemd.disable(&stack_units).await?;
        for name in &targets {
            dropins.remove(&units::dropin_path(name));
        }
        let remaining = dropins.keys().any(|p| units::stack_of_dropin(p).is_some());
        if remaining {
            unit_dir.apply(&lock, &[], &dropins)?;
        } else {
            systemd.disable(&[units::TARGET_UNIT.to_string()]).await?;
            unit_dir.apply(&lock, &[], &BTreeMap::new())?;
            unit_dir.remove_all(&lock)?;
        }
        systemd.reload().await?;
        ctx.ui.say(format!(
            "disabled: {}",
            targets.into_iter().collect::<Vec<_>>().join(", ")
        ));
        Ok(())
    })
}

pub fn job(ctx: &Context, args: &RequiredStacks, kind: JobKind) -> Result<()> {
    validate_names(&args.names)?;
    require_privileges(ctx)?;
    let installed = UnitDir::new(ctx.mode.unit_dir()).installed_stacks();
    for name in &args.names {
        if !installed.contains(name) {
            return Err(Error::usage(format!(
                "stack {name} is not enabled: run composectl enable {name}"
            )));
        }
    }
    let stack_units = unit_names(&args.names);
    block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        let watched = unit_names(&installed);
        let results = systemd
            .run_jobs(kind, &stack_units, &watched, &mut progress_printer(ctx))
            .await?;
        systemd::check_outcome(&systemd, kind, &results, &stack_units).await?;
        ctx.ui
            .say(format!("{}: {}", kind.verb(), args.names.join(", ")));
        Ok(())
    })
}

fn since(usec: u64) -> String {
    if usec == 0 {
        return "-".into();
    }
    let then = UNIX_EPOCH + Duration::from_micros(usec);
    match SystemTime::now().duration_since(then) {
        Ok(ago) => format!(
            "{} ago",
            crate::duration::format(Duration::from_secs(ago.as_secs()))
        ),
        Err(_) => "just now".into(),
    }
}

/// A stack's containers, summarised: running of total, healthy of those with a healthcheck.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ContainerSummary {
    pub running: usize,
    pub total: usize,
    pub healthy: usize,
    pub with_healthcheck: usize,
}

impl std::fmt::Display for ContainerSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} running", self.running, self.total)?;
        if self.with_healthcheck > 0 {
            write!(f, ", {}/{} healthy", self.healthy, self.with_healthcheck)?;
        }
        Ok(())
    }
}

/// Every compose project's containers from one engine query; None when the engine is away.
async fn container_summaries() -> Option<BTreeMap<String, ContainerSummary>> {
    let engine = Engine::connect().ok()?;
    let containers = engine.containers(None).await.ok()?;
    let mut summaries: BTreeMap<String, ContainerSummary> = BTreeMap::new();
    for container in containers {
        let summary = summaries.entry(container.project.clone()).or_default();
        summary.total += 1;
        summary.running += usize::from(container.running);
        summary.with_healthcheck += usize::from(container.health.is_some());
        summary.healthy += usize::from(container.healthy());
    }
    Some(summaries)
}

struct StackState {
    stack: String,
    unit: UnitStatus,
    containers: Option<ContainerSummary>,
}

async fn statuses(systemd: &Systemd, stacks: &BTreeSet<String>) -> Result<Vec<StackState>> {
    let summaries = container_summaries().await;
    let mut out = Vec::new();
    for stack in stacks {
        out.push(StackState {
            stack: stack.clone(),
            unit: systemd.status(&units::stack_unit(stack)).await?,
            containers: summaries
                .as_ref()
                .map(|s| s.get(stack).cloned().unwrap_or_default()),
        });
    }
    Ok(out)
}

pub fn status(ctx: &Context, names: &[String]) -> Result<()> {
    validate_names(names)?;
    let installed = UnitDir::new(ctx.mode.unit_dir()).installed_stacks();
    let stacks: BTreeSet<String> = if names.is_empty() {
        installed
    } else {
        names.iter().cloned().collect()
    };
    let rows = block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        statuses(&systemd, &stacks).await
    })?;
    let containers = |row: &StackState| {
        row.containers
            .as_ref()
            .map_or("engine unreachable".to_string(), ToString::to_string)
    };
    if ctx.ui.json() {
        let list: Vec<_> = rows
            .iter()
            .map(|row| json!({"stack": row.stack, "unit": row.unit, "containers": row.containers}))
            .collect();
        ctx.ui.print_json(&list);
    } else if rows.len() == 1 && !names.is_empty() {
        let row = &rows[0];
        let s = &row.unit;
        ctx.ui.say(format!(
            "{} ({})\n  enabled:    {}\n  state:      {}/{} since {}\n  status:     {}\n  containers: {}\n  restarts:   {}\n  main pid:   {}",
            row.stack,
            s.unit,
            s.unit_file_state,
            s.active_state,
            s.sub_state,
            since(s.since_usec),
            if s.status_text.is_empty() { "-" } else { &s.status_text },
            containers(row),
            s.n_restarts,
            s.main_pid
        ));
    } else if rows.is_empty() {
        ctx.ui.say("no stacks are enabled");
    } else {
        ctx.ui.say(format!(
            "{:<16} {:<9} {:<20} {:<10} {:>8}  {:<28} STATUS",
            "STACK", "ENABLED", "STATE", "SINCE", "RESTARTS", "CONTAINERS"
        ));
        for row in &rows {
            let s = &row.unit;
            ctx.ui.say(format!(
                "{:<16} {:<9} {:<20} {:<10} {:>8}  {:<28} {}",
                row.stack,
                s.unit_file_state,
                format!("{}/{}", s.active_state, s.sub_state),
                since(s.since_usec),
                s.n_restarts,
                containers(row),
                s.status_text
            ));
        }
    }
    if rows.is_empty() || rows.iter().any(|row| row.unit.active_state != "active") {
        return Err(Error::NotActive);
    }
    Ok(())
}

pub fn list(ctx: &Context) -> Result<()> {
    let (root, diags) = model::load_partial(&ctx.root_dir);
    ctx.ui.report(&diags);
    let in_root: BTreeSet<String> = root
        .map(|r| r.stacks.into_keys().collect())
        .unwrap_or_default();
    let installed = UnitDir::new(ctx.mode.unit_dir()).installed_stacks();
    let all: BTreeSet<String> = in_root.union(&installed).cloned().collect();
    let rows = block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        statuses(&systemd, &all).await
    })?;
    let note = |stack: &str| match (in_root.contains(stack), installed.contains(stack)) {
        (true, true) => "installed",
        (true, false) => "not installed",
        _ => "orphan: not in the root (composectl disable it)",
    };
    if ctx.ui.json() {
        let list: Vec<_> = rows
            .iter()
            .map(|row| {
                let stack = &row.stack;
                json!({"stack": stack, "in_root": in_root.contains(stack), "installed": installed.contains(stack),
                       "enabled": row.unit.unit_file_state, "active": row.unit.active_state, "sub": row.unit.sub_state})
            })
            .collect();
        ctx.ui.print_json(&list);
        return Ok(());
    }
    ctx.ui.say(format!(
        "{:<16} {:<9} {:<10} NOTE",
        "STACK", "ENABLED", "ACTIVE"
    ));
    for StackState { stack, unit: s, .. } in &rows {
        let enabled = if installed.contains(stack) {
            s.unit_file_state.as_str()
        } else {
            "-"
        };
        ctx.ui.say(format!(
            "{:<16} {:<9} {:<10} {}",
            stack,
            enabled,
            s.active_state,
            note(stack)
        ));
    }
    Ok(())
}

pub fn logs(
    ctx: &Context,
    stack: &str,
    service: Option<&str>,
    follow: bool,
    lines: Option<u32>,
    since: Option<&str>,
) -> Result<()> {
    validate_names(&[stack.to_string()])?;
    let known = UnitDir::new(ctx.mode.unit_dir())
        .installed_stacks()
        .contains(stack)
        || ctx.root_dir.join(STACKS_DIR).join(stack).is_dir();
    if !known {
        return Err(Error::usage(format!(
            "no stack named {stack:?} in the root or the unit directory"
        )));
    }
    let mut command = systemd::journalctl();
    if follow {
        command.arg("--follow");
    }
    if let Some(n) = lines {
        command.args(["--lines", &n.to_string()]);
    }
    if let Some(since) = since {
        command.args(["--since", since]);
    }
    let extra: Vec<String> = service
        .map(|s| vec![format!("COMPOSE_SERVICE={s}")])
        .unwrap_or_default();
    command.args(systemd::unit_matches(&units::stack_unit(stack), &extra));
    let status = command
        .status()
        .map_err(|e| anyhow!("cannot run journalctl: {e}; is systemd installed?"))?;
    if !status.success() {
        return Err(Error::Failed(anyhow!("journalctl failed ({status})")));
    }
    Ok(())
}

pub fn networks(ctx: &Context) -> Result<()> {
    let root = ctx.load()?;
    let names: Vec<&str> = root.networks.keys().map(String::as_str).collect();
    let report = block_on(async {
        let engine = Engine::connect()?;
        engine.version().await?;
        Ok(crate::supervisor::ensure_networks(&engine, &root, &names).await?)
    })?;
    if ctx.ui.json() {
        ctx.ui.print_json(&report);
    } else {
        for line in report {
            ctx.ui.say(line);
        }
    }
    Ok(())
}

pub fn update(ctx: &Context, args: &RequiredStacks) -> Result<()> {
    validate_names(&args.names)?;
    require_privileges(ctx)?;
    let root = ctx.load()?;
    for name in &args.names {
        root.stack(name)?;
    }
    let installed = UnitDir::new(ctx.mode.unit_dir()).installed_stacks();
    block_on(async {
        for name in &args.names {
            ctx.ui.say(format!("pulling the images of {name}"));
            crate::supervisor::pull(&root, root.stack(name)?).await?;
        }
        let enabled: Vec<String> = args
            .names
            .iter()
            .filter(|n| installed.contains(*n))
            .cloned()
            .collect();
        if enabled.is_empty() {
            return Ok(());
        }
        let systemd = Systemd::connect(ctx.mode).await?;
        let stack_units = unit_names(&enabled);
        let results = systemd
            .run_jobs(
                JobKind::Restart,
                &stack_units,
                &unit_names(&installed),
                &mut progress_printer(ctx),
            )
            .await?;
        systemd::check_outcome(&systemd, JobKind::Restart, &results, &stack_units).await?;
        ctx.ui
            .say(format!("updated and restarted: {}", enabled.join(", ")));
        Ok(())
    })
}
