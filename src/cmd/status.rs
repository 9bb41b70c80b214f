//! status and list: systemd's view of the stacks' units, with their containers as their
//! supervisors report them, or from one engine query for the stacks whose supervisor does not.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::context::{Context, block_on};
use crate::engine::{self, ContainerSummary, Engine};
use crate::error::{Result, exit};
use crate::model::{self, StackName};
use crate::output::{Report, Text, report};
use crate::state::StackState;
use crate::systemd::{Shown, Systemd, UnitStatus};
use crate::units;

/// "1h 2min ago", as systemctl says it; "-" for never.
fn since(usec: u64) -> String {
    if usec == 0 {
        return "-".into();
    }
    let then = UNIX_EPOCH + Duration::from_micros(usec);
    let ago = SystemTime::now().duration_since(then).unwrap_or_default();
    format!("{} ago", crate::duration::human(ago))
}

/// Every compose project's containers from one engine query; None when the engine is away.
async fn container_summaries() -> Option<BTreeMap<String, ContainerSummary>> {
    let engine = Engine::connect().ok()?;
    if !engine.answers(engine::PROBE).await {
        return None;
    }
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

#[derive(Serialize)]
struct State {
    stack: String,
    unit: UnitStatus,
    /// What the supervisor says (see `UnitStatus::status_line`).
    status: String,
    /// None when the engine does not answer.
    containers: Option<ContainerSummary>,
    /// Service → image ID a rolled-back update pinned it to.
    pinned: BTreeMap<String, String>,
    /// What the stack's slice accounts, when its containers run there; None otherwise (they
    /// run in the engine's cgroups, or systemd does not account memory and CPU here).
    usage: Option<Usage>,
}

/// A stack's memory and CPU time: its slice's, supervisor and containers together.
#[derive(Serialize)]
struct Usage {
    slice: String,
    memory_bytes: Option<u64>,
    cpu_nsec: Option<u64>,
}

impl Usage {
    /// What the slice accounts, if systemd accounts anything here.
    fn of(slice: UnitStatus) -> Option<Usage> {
        (slice.memory_bytes.is_some() || slice.cpu_nsec.is_some()).then_some(Usage {
            slice: slice.unit,
            memory_bytes: slice.memory_bytes,
            cpu_nsec: slice.cpu_nsec,
        })
    }

    fn memory(usage: Option<&Usage>) -> String {
        usage
            .and_then(|u| u.memory_bytes)
            .map_or("-".into(), human_bytes)
    }

    fn cpu(usage: Option<&Usage>) -> String {
        usage.and_then(|u| u.cpu_nsec).map_or("-".into(), |nsec| {
            let time = Duration::from_nanos(nsec);
            if time < Duration::from_secs(60) {
                format!("{:.3}s", time.as_secs_f64())
            } else {
                crate::duration::human(time)
            }
        })
    }
}

/// 1.5G, as systemctl status writes memory (powers of 1024).
fn human_bytes(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "K", "M", "G"] {
        if value < 1024.0 {
            return if unit == "B" {
                format!("{bytes}B")
            } else {
                format!("{value:.1}{unit}")
            };
        }
        value /= 1024.0;
    }
    format!("{value:.1}T")
}

/// What a running supervisor reports of its containers (its STATUS=, kept current from the
/// engine's events); None while it starts, stops, changes or is not running.
fn reported(unit: &UnitStatus) -> Option<ContainerSummary> {
    if unit.active_state == "active" && unit.sub_state == "running" {
        unit.status_text.parse().ok()
    } else {
        None
    }
}

/// Every stack's unit and containers: systemd's answers, and the engine's for the stacks whose
/// supervisor does not report them (one query, none when every supervisor does).
async fn states(ctx: &Context, stacks: &BTreeSet<String>, shown: Shown) -> Result<Vec<State>> {
    // Only the slices that hold their stack's containers (its supervisor wrote a placement)
    // are worth asking about, and in the same calls: one round trip for units and accounting.
    let placed: Vec<&String> = stacks
        .iter()
        .filter(|s| crate::runtime::placement(ctx.mode, s).is_some())
        .collect();
    let unit_names: Vec<String> = stacks
        .iter()
        .map(|s| units::stack_unit(s))
        .chain(placed.iter().map(|s| model::stack_slice(s)))
        .collect();
    let systemd = Systemd::connect(ctx.mode).await?;
    let mut statuses = systemd.statuses_of(&unit_names, shown).await?;
    let mut slices: BTreeMap<&String, UnitStatus> = placed
        .into_iter()
        .zip(statuses.split_off(stacks.len()))
        .collect();
    let reports: Vec<Option<ContainerSummary>> = statuses.iter().map(reported).collect();
    let engine = if reports.iter().any(Option::is_none) {
        container_summaries().await
    } else {
        None
    };
    Ok(stacks
        .iter()
        .zip(statuses)
        .zip(reports)
        .map(|((stack, unit), report)| State {
            usage: slices.remove(stack).and_then(Usage::of),
            stack: stack.clone(),
            status: unit.status_line(),
            containers: report.or_else(|| {
                engine
                    .as_ref()
                    .map(|s| s.get(stack).cloned().unwrap_or_default())
            }),
            unit,
            pinned: StackState::new(ctx.mode, stack).pins(),
        })
        .collect())
}

fn containers(state: &State) -> String {
    state
        .containers
        .as_ref()
        .map_or("engine unreachable".to_string(), ToString::to_string)
}

/// The status of the stacks, or of every enabled stack; exit code 3 unless all are active.
struct Status {
    stacks: Vec<State>,
    /// One stack was named: show it in detail.
    detailed: bool,
}

impl Report for Status {
    fn text(&self, out: &mut Text<'_>) -> std::io::Result<()> {
        if self.stacks.is_empty() {
            return out.line("no stacks are enabled");
        }
        if self.detailed {
            let state = &self.stacks[0];
            let s = &state.unit;
            out.line(format!(
                "{} ({})\n  enabled:    {}\n  state:      {}/{} since {}\n  status:     {}\n  containers: {}\n  memory:     {}\n  cpu:        {}\n  restarts:   {}\n  main pid:   {}",
                state.stack,
                s.unit,
                s.unit_file_state,
                s.active_state,
                s.sub_state,
                since(s.since_usec),
                if state.status.is_empty() { "-" } else { &state.status },
                containers(state),
                Usage::memory(state.usage.as_ref()),
                Usage::cpu(state.usage.as_ref()),
                s.n_restarts,
                s.main_pid
            ))?;
            for (service, image) in &state.pinned {
                out.line(format!(
                    "  pinned:     {service} to {} (an update rolled back; composectl update {} tries again)",
                    engine::short_id(image),
                    state.stack
                ))?;
            }
            return Ok(());
        }
        out.line(format!(
            "{:<16} {:<9} {:<20} {:<14} {:>8}  {:<28} {:>8} {:>10}  STATUS",
            "STACK", "ENABLED", "STATE", "SINCE", "RESTARTS", "CONTAINERS", "MEMORY", "CPU"
        ))?;
        for state in &self.stacks {
            let s = &state.unit;
            out.line(format!(
                "{:<16} {:<9} {:<20} {:<14} {:>8}  {:<28} {:>8} {:>10}  {}",
                state.stack,
                s.unit_file_state,
                format!("{}/{}", s.active_state, s.sub_state),
                since(s.since_usec),
                s.n_restarts,
                containers(state),
                Usage::memory(state.usage.as_ref()),
                Usage::cpu(state.usage.as_ref()),
                state.status
            ))?;
        }
        Ok(())
    }

    fn json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.stacks).ok()
    }

    fn exit_code(&self) -> u8 {
        let all_active =
            !self.stacks.is_empty() && self.stacks.iter().all(|s| s.unit.active_state == "active");
        if all_active {
            exit::OK
        } else {
            exit::NOT_ACTIVE
        }
    }
}

pub fn status(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    let stacks: BTreeSet<String> = if names.is_empty() {
        ctx.unit_dir().installed().stacks()
    } else {
        names.iter().map(ToString::to_string).collect()
    };
    let detailed = names.len() == 1;
    let shown = if detailed || ctx.out.json() {
        Shown::Everything
    } else {
        Shown::Table
    };
    let stacks = block_on(states(ctx, &stacks, shown))?;
    Ok(Box::new(Status { detailed, stacks }))
}

#[derive(Serialize)]
struct Listed {
    stack: String,
    in_root: bool,
    installed: bool,
    enabled: String,
    active: String,
    sub: String,
}

pub fn list(ctx: &Context) -> Result<Box<dyn Report>> {
    let (root, diags) = model::load_partial(&ctx.root_dir);
    ctx.out.diagnostics(&diags);
    let in_root: BTreeSet<String> = root
        .map(|r| r.stacks.into_keys().collect())
        .unwrap_or_default();
    let installed = ctx.unit_dir().installed().stacks();
    let all: BTreeSet<String> = in_root.union(&installed).cloned().collect();
    let listed: Vec<Listed> = block_on(states(ctx, &all, Shown::Table))?
        .into_iter()
        .map(|state| Listed {
            in_root: in_root.contains(&state.stack),
            installed: installed.contains(&state.stack),
            enabled: state.unit.unit_file_state,
            active: state.unit.active_state,
            sub: state.unit.sub_state,
            stack: state.stack,
        })
        .collect();
    Ok(Box::new(report(listed, |listed, out| {
        out.line(format!(
            "{:<16} {:<9} {:<10} NOTE",
            "STACK", "ENABLED", "ACTIVE"
        ))?;
        for l in listed {
            let note = match (l.in_root, l.installed) {
                (true, true) => "installed",
                (true, false) => "not installed",
                _ => "orphan: not in the root (composectl disable it)",
            };
            let enabled = if l.installed { l.enabled.as_str() } else { "-" };
            out.line(format!(
                "{:<16} {:<9} {:<10} {note}",
                l.stack, enabled, l.active
            ))?;
        }
        Ok(())
    })))
}
