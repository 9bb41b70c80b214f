//! update and update --check: newer images, pulled and applied by each stack's supervisor with a
//! health gate and a rollback (supervisor/change.rs), or only reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;

use crate::backup;
use crate::compose_cli::Compose;
use crate::context::{Context, block_on};
use crate::engine::{self, Engine};
use crate::error::{Error, Result, exit};
use crate::model::{Root, Stack, StackName};
use crate::output::{Report, Text};
use crate::runtime::{self, Action, ImageChange};
use crate::state::StackState;
use crate::systemd::{Systemd, UnitState};
use crate::units;

/// Room beyond the supervisor's own deadlines (two start timeouts: the update, its rollback) for
/// `compose up` itself.
const UPDATE_MARGIN: Duration = Duration::from_secs(120);

/// The stacks to act on, in dependency order: the named ones, or with `--all` every enabled one.
fn stacks_in_order(
    ctx: &Context,
    root: &Root,
    names: &[StackName],
    all: bool,
) -> Result<Vec<String>> {
    let chosen: BTreeSet<String> = if all {
        let installed = ctx.unit_dir().installed().stacks();
        installed
            .into_iter()
            .filter(|s| root.stacks.contains_key(s))
            .collect()
    } else {
        names.iter().map(ToString::to_string).collect()
    };
    Ok(root
        .graph()
        .subgraph(&chosen)
        .layers()
        .into_iter()
        .flatten()
        .collect())
}

#[derive(Serialize)]
struct Updated {
    stack: String,
    /// `updated`, `unchanged`, `not-running`.
    result: &'static str,
    message: String,
    images: Vec<ImageChange>,
    recreated: Vec<String>,
    /// The archive `update.backup` took before the supervisor changed anything.
    backup: Option<PathBuf>,
}

pub fn update(ctx: &Context, names: &[StackName], all: bool) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    let (root, _) = ctx.select(if all { &[] } else { names })?;
    let stacks = stacks_in_order(ctx, &root, names, all)?;
    let updated = block_on(async {
        let systemd = Systemd::connect(ctx.mode).await?;
        let units: Vec<String> = stacks.iter().map(|s| units::stack_unit(s)).collect();
        let states = systemd.unit_states(&units).await?;
        let mut updated: Vec<Updated> = Vec::new();
        for (index, (name, state)) in stacks.iter().zip(&states).enumerate() {
            match update_one(ctx, &root, name, state).await {
                Ok(done) => updated.push(done),
                Err(e) => {
                    // Later stacks may require this one: they are left as they are.
                    let mut lines: Vec<String> = updated
                        .iter()
                        .map(|u| format!("{}: {}", u.stack, u.message))
                        .collect();
                    lines.push(format!("{name}: {e:#}"));
                    let rest = &stacks[index + 1..];
                    if !rest.is_empty() {
                        lines.push(format!("not updated: {}", rest.join(", ")));
                    }
                    return Err(Error::Failed(anyhow!("{}", lines.join("\n"))));
                }
            }
        }
        Ok(updated)
    })?;
    Ok(Box::new(crate::output::report(updated, |updated, out| {
        for u in updated {
            out.line(format!("{}: {}", u.stack, u.message))?;
        }
        Ok(())
    })))
}

/// Backs a running stack up first with `update.backup`, then pulls its images and has its
/// supervisor take them.
async fn update_one(
    ctx: &Context,
    root: &Root,
    name: &str,
    state: &UnitState,
) -> anyhow::Result<Updated> {
    let stack = &root.stacks[name];
    // Before the pull: once pulled, a mere restart starts the new images, backup or not. And
    // only when an image is newer, as `update --check` finds it: the update timer runs daily,
    // and backups of a stack that stays as it is would only pile up.
    let archive = if stack.update.backup
        && state.active_state == "active"
        && anything_newer(ctx, stack).await?
    {
        let taken = backup::take(ctx, root, stack, None, None)
            .await
            .context("the backup before the update failed, so nothing was changed")?;
        Some(taken.written.archive)
    } else {
        None
    };
    let _ = ctx.out.progress(&format!("{name}: pulling"));
    Compose::new(root, stack).pull().await?;
    match state.active_state.as_str() {
        "active" => {}
        "inactive" | "failed" => {
            // No health gate without a running stack: its next start uses what was pulled.
            // Nor a backup: nothing rolls it back, and its hooks need it running.
            StackState::new(ctx.mode, name).unpin()?;
            return Ok(Updated {
                stack: name.to_string(),
                result: "not-running",
                message: format!(
                    "not running ({}): pulled; it starts on the new images{}",
                    state.active_state,
                    if stack.update.backup {
                        " (not backed up: it is not running)"
                    } else {
                        ""
                    }
                ),
                images: Vec::new(),
                recreated: Vec::new(),
                backup: None,
            });
        }
        other => bail!(
            "it is {other} ({}): update it once it is active",
            state.sub_state
        ),
    }
    let limit = stack.start_timeout * 2 + UPDATE_MARGIN;
    let outcome = runtime::request(ctx.mode, name, Action::Update, limit, |text| {
        let _ = ctx.out.progress(&format!("{name}: {text}"));
    })
    .await;
    let outcome = match outcome {
        Ok(outcome) if outcome.ok => outcome,
        Ok(outcome) => bail!(
            "{}{}",
            outcome.message,
            backup_note(name, archive.as_deref(), outcome.rolled_back)
        ),
        Err(e) => bail!("{e:#}{}", backup_note(name, archive.as_deref(), false)),
    };
    let mut message = outcome.message;
    if let Some(archive) = &archive {
        message.push_str(&format!(" (backed up first: {})", archive.display()));
    }
    Ok(Updated {
        stack: name.to_string(),
        result: if outcome.images.is_empty() {
            "unchanged"
        } else {
            "updated"
        },
        message,
        images: outcome.images,
        recreated: outcome.recreated,
        backup: archive,
    })
}

/// Whether `update --check` would list an image of `stack` (an answer it cannot give counts as
/// newer: the backup is then taken rather than skipped).
async fn anything_newer(ctx: &Context, stack: &Stack) -> anyhow::Result<bool> {
    let engine = Engine::connect()?;
    let checked = check_stack(ctx, &engine, stack, &mut RegistryAnswers::new()).await?;
    Ok(checked.iter().any(|c| c.state != "up-to-date"))
}

/// What a failed update adds about the backup `update.backup` took before it. After a
/// rollback the previous images run on data the new ones may have migrated: the way back is a
/// restore, which loses the writes made since the backup, so only the operator can choose it.
fn backup_note(stack: &str, archive: Option<&Path>, rolled_back: bool) -> String {
    let Some(archive) = archive else {
        return String::new();
    };
    let archive = archive.display();
    if rolled_back {
        format!(
            "\n{stack}: the new images may have changed the data in its volumes before the rollback, and the images they replaced now run on that data. Backed up before the update: {archive}; to go back to that data, losing what was written since:\n  composectl restore {stack} {archive} --stop"
        )
    } else {
        format!("\n{stack}: backed up before the update: {archive}")
    }
}

/// One service's image, compared with what runs and what its registry has.
#[derive(Serialize)]
struct Checked {
    stack: String,
    service: String,
    image: String,
    /// `up-to-date`, `newer-local` (pulled or built, not running yet), `newer-in-registry`,
    /// `missing` (not pulled yet), `pinned` (rolled back from the image its tag names),
    /// `unknown` (could not be checked).
    state: &'static str,
    /// The image ID the service runs.
    running: Option<String>,
    /// The image ID the tag names here.
    local: Option<String>,
    detail: String,
}

struct CheckReport(Vec<Checked>);

impl Report for CheckReport {
    fn text(&self, out: &mut Text<'_>) -> std::io::Result<()> {
        for c in &self.0 {
            out.line(format!(
                "{:<16} {:<16} {:<18} {} {}",
                c.stack, c.service, c.state, c.image, c.detail
            ))?;
        }
        Ok(())
    }

    fn json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.0).ok()
    }

    fn exit_code(&self) -> u8 {
        if self.0.iter().any(|c| c.state == "unknown") {
            exit::FAILED
        } else if self.0.iter().any(|c| c.state != "up-to-date") {
            exit::NEWER
        } else {
            exit::OK
        }
    }
}

pub fn check(ctx: &Context, names: &[StackName], all: bool) -> Result<Box<dyn Report>> {
    let (root, _) = ctx.select(if all { &[] } else { names })?;
    let stacks = stacks_in_order(ctx, &root, names, all)?;
    let checked = block_on(async {
        let engine = Engine::connect()?;
        engine.version().await?;
        let mut registry = RegistryAnswers::new();
        let mut checked = Vec::new();
        for name in &stacks {
            checked.extend(check_stack(ctx, &engine, &root.stacks[name], &mut registry).await?);
        }
        Ok(checked)
    })?;
    Ok(Box::new(CheckReport(checked)))
}

/// The registry's digest per image, asked once however many services use it.
type RegistryAnswers = BTreeMap<String, Result<String, String>>;

/// Each running service's image of `stack`, compared with what runs and what its registry has.
async fn check_stack(
    ctx: &Context,
    engine: &Engine,
    stack: &Stack,
    registry: &mut RegistryAnswers,
) -> anyhow::Result<Vec<Checked>> {
    let name = &stack.name;
    let running: BTreeMap<String, String> = engine
        .containers(Some(name))
        .await?
        .into_iter()
        .map(|c| (c.service, c.image))
        .collect();
    let pins = StackState::new(ctx.mode, name).pins();
    let mut checked = Vec::new();
    for service in stack
        .services
        .iter()
        .filter(|s| stack.running.contains(&s.name))
    {
        let Some(image) = &service.image else {
            continue;
        };
        let local = engine.image(image).await?;
        let mut result = Checked {
            stack: name.clone(),
            service: service.name.clone(),
            image: image.clone(),
            state: "up-to-date",
            running: running.get(&service.name).cloned(),
            local: local.as_ref().map(|l| l.id.clone()),
            detail: String::new(),
        };
        match &local {
            None => {
                result.state = "missing";
                result.detail = "not pulled yet".into();
            }
            Some(local) if !local.repo_digests.is_empty() => {
                if !registry.contains_key(image) {
                    let answer = engine
                        .registry_digest(image)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    registry.insert(image.clone(), answer);
                }
                match &registry[image] {
                    Ok(digest)
                        if !local
                            .repo_digests
                            .iter()
                            .any(|d| d.ends_with(digest.as_str())) =>
                    {
                        result.state = "newer-in-registry";
                        result.detail = format!("registry has {digest}");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        result.state = "unknown";
                        result.detail = e.clone();
                    }
                }
            }
            // Built or imported here: no registry to ask.
            Some(_) => {}
        }
        if result.state == "up-to-date"
            && let (Some(running), Some(local)) = (&result.running, &result.local)
            && running != local
        {
            if pins.contains_key(&service.name) {
                result.state = "pinned";
                result.detail = format!(
                    "rolled back from {}; update tries it again",
                    engine::short_id(local)
                );
            } else {
                result.state = "newer-local";
                result.detail = format!(
                    "runs {}, the tag names {}",
                    engine::short_id(running),
                    engine::short_id(local)
                );
            }
        }
        checked.push(result);
    }
    Ok(checked)
}
