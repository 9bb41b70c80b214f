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
use crate::engine::{ContainerSummary, Engine};
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model::{self, STACKS_DIR};
use crate::systemd::{self, JobKind, Jobs, Systemd, UnitStatus};
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

/// Runs `kind` on the stacks' units and waits for it, watching them and (transitively) the
/// stacks they require according to the installed `dropins`.
async fn run_stack_jobs(
    ctx: &Context,
    systemd: &Systemd,
    kind: JobKind,
    stacks: &[String],
    dropins: &BTreeMap<PathBuf, String>,
) -> Result<()> {
    let requires: BTreeMap<String, Vec<String>> = dropins
        .iter()
        .filter_map(|(path, contents)| {
            let stack = units::stack_of_dropin(path)?;
            Some((
                units::stack_unit(stack),
                unit_names(units::required_stacks(contents)),
            ))
        })
        .collect();
    let units = unit_names(stacks);
    let mut watched: BTreeSet<String> = units.iter().cloned().collect();
    let mut next = units.clone();
    while let Some(unit) = next.pop() {
        for required in requires.get(&unit).into_iter().flatten() {
            if watched.insert(required.clone()) {
                next.push(required.clone());
            }
        }
    }
    let watched: Vec<String> = watched.into_iter().collect();
    let jobs = Jobs {
        kind,
        units: &units,
        watched: &watched,
        requires: &requires,
    };
    Ok(systemd.run_jobs(&jobs, &mut progress_printer(ctx)).await?)
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
    ensure_docker_config(ctx.mode)?;
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
            run_stack_jobs(ctx, &systemd, JobKind::Start, &args.names, &dropins).await?;
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
    dropins
        .iter()
        .filter(|(_, contents)| units::required_stacks(contents).iter().any(|s| s == stack))
        .filter_map(|(path, _)| units::stack_of_dropin(path).map(str::to_string))
        .collect()
}

/// What stopped stacks left on the engine (containers of a failed start, of a stack that was
/// already failed or stopped by hand): after `disable --now` nothing of them should remain.
/// Volumes stay. Best effort: an engine that does not answer is reported, not waited for.
async fn remove_leftovers(ctx: &Context, stacks: &[String]) {
    let engine = match Engine::connect() {
        Ok(engine) if engine.answers(crate::engine::PROBE).await => engine,
        _ => {
            ctx.ui.warn(
                "the Docker engine does not answer: containers the stacks left, if any, stay",
            );
            return;
        }
    };
    for stack in stacks {
        match engine.remove_project(stack).await {
            Ok(0) => {}
            Ok(n) => ctx
                .ui
                .say(format!("removed {n} containers {stack} left behind")),
            Err(e) => ctx.ui.warn(&format!("{stack}: {e:#}")),
        }
    }
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
            let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            run_stack_jobs(ctx, &systemd, JobKind::Stop, &targets, &dropins).await?;
            remove_leftovers(ctx, &targets).await;
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
    let dropins = UnitDir::new(ctx.mode.unit_dir()).installed_dropins();
    let installed = unitdir::stacks_of(&dropins);
    for name in &args.names {
        if !installed.contains(name) {
            return Err(Error::usage(format!(
                "stack {name} is not enabled: run composectl enable {name}"
            )));
        }
    }
    block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        run_stack_jobs(ctx, &systemd, kind, &args.names, &dropins).await?;
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
        Ok(ago) => format!("{} ago", crate::duration::human(ago)),
        Err(_) => "just now".into(),
    }
}

/// Every compose project's containers from one engine query; None when the engine is away.
async fn container_summaries() -> Option<BTreeMap<String, ContainerSummary>> {
    let engine = Engine::connect().ok()?;
    let containers = engine.containers(None).await.ok()?;
    let mut summaries: BTreeMap<String, ContainerSummary> = BTreeMap::new();
    for container in &containers {
        summaries
            .entry(container.project.clone())
            .or_default()
            .add(container);
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
            match s.status_line() {
                line if line.is_empty() => "-".to_string(),
                line => line,
            },
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
                s.status_line()
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

pub fn networks(ctx: &Context, wait: bool) -> Result<()> {
    let root = ctx.load()?;
    let specs: Vec<_> = root.networks.values().collect();
    let checks = block_on(async {
        let engine = if wait {
            Engine::wait(root.settings.start_timeout, |text| ctx.ui.say(text)).await?
        } else {
            let engine = Engine::connect()?;
            engine.version().await?;
            engine
        };
        Ok(engine.ensure_networks(&specs).await?)
    })?;
    if ctx.ui.json() {
        ctx.ui.print_json(&checks);
    } else {
        for check in &checks {
            let state = match check.state {
                crate::engine::NetworkState::Ok => "ok",
                crate::engine::NetworkState::Created => "created",
                crate::engine::NetworkState::Drifted => "drifted",
            };
            ctx.ui
                .say(format!("{}: {state} ({})", check.name, check.subnet));
        }
    }
    Ok(crate::engine::drift_error(&checks)?)
}

pub fn update(ctx: &Context, args: &RequiredStacks) -> Result<()> {
    validate_names(&args.names)?;
    require_privileges(ctx)?;
    let root = ctx.load()?;
    for name in &args.names {
        root.stack(name)?;
    }
    let dropins = UnitDir::new(ctx.mode.unit_dir()).installed_dropins();
    let installed = unitdir::stacks_of(&dropins);
    block_on(async {
        for name in &args.names {
            ctx.ui.say(format!("pulling the images of {name}"));
            crate::compose::Compose::new(&root, root.stack(name)?)
                .pull()
                .await?;
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
        run_stack_jobs(ctx, &systemd, JobKind::Restart, &enabled, &dropins).await?;
        ctx.ui
            .say(format!("updated and restarted: {}", enabled.join(", ")));
        Ok(())
    })
}
