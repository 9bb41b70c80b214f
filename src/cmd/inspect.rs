//! check, render, diff, graph: what the root says, what `enable` would write and what `reload`
//! would apply. Nothing here changes the system (`render --out` writes only into the directory it
//! is given).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::cli::GraphFormat;
use crate::compose_cli::Compose;
use crate::context::{Context, block_on};
use crate::diag::{Diagnostic, Diagnostics};
use crate::duration;
use crate::engine::Engine;
use crate::error::Result;
use crate::mode::Mode;
use crate::model::{self, Root, STACKS_DIR, StackName};
use crate::output::{Report, report};
use crate::runtime::Applied;
use crate::state::StackState;
use crate::unitdir::UnitDir;
use crate::units;

#[derive(Serialize)]
struct Checked {
    valid: bool,
    root: PathBuf,
    stacks: BTreeSet<String>,
    /// Warnings only: errors make `check` fail.
    diagnostics: Diagnostics,
    /// Declared secrets no env file sets yet, by stack: `secrets` or `enable` generates them.
    secrets_to_generate: BTreeMap<String, Vec<String>>,
    /// Declared secrets an env file holds in plaintext, by stack.
    plaintext_secrets: BTreeMap<String, Vec<String>>,
    /// Why they are not encrypted, when they are not.
    #[serde(skip)]
    plaintext_why: &'static str,
}

/// A warning when an operator's drop-in gives `stack` less time to stop than its containers'
/// grace periods need (composectl derives `TimeoutStopSec=` from them): systemd would SIGKILL
/// a database still writing its checkpoint.
fn stop_timeout_overridden(unit_dir: &UnitDir, stack: &model::Stack) -> Option<Diagnostic> {
    let set = unit_dir.operator_stop_timeout(&stack.name)?;
    let allowed = duration::parse(&set.value).ok()?;
    (allowed < stack.stop_timeout).then(|| {
        Diagnostic::warning(
            set.file.clone(),
            format!(
                "{}={} gives {} {} to stop, less than the {} its containers' stop_grace_period \
                 and compose need: systemd would kill what is still shutting down",
                set.key,
                set.value,
                units::stack_unit(&stack.name),
                duration::human(allowed),
                duration::human(stack.stop_timeout),
            ),
        )
        .at_line(Some(set.line))
        .hint(format!(
            "remove the line, or set {}={} or more",
            set.key,
            duration::format(stack.stop_timeout)
        ))
    })
}

pub fn check(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    let mut selection = model::select(&ctx.root_dir, names)?;
    let unit_dir = ctx.unit_dir();
    for name in &selection.stacks {
        let stack = &selection.root.stacks[name];
        if let Some(warning) = stop_timeout_overridden(&unit_dir, stack) {
            selection.warnings.push(warning);
        }
    }
    if !ctx.out.json() {
        ctx.out.diagnostics(&selection.warnings);
    }
    let root = &selection.root;
    let secrets_to_generate = selection
        .stacks
        .iter()
        .map(|name| &root.stacks[name])
        .filter(|s| !s.missing_secrets.is_empty())
        .map(|s| (s.name.clone(), s.missing_secrets.clone()))
        .collect();
    let plaintext_secrets = selection
        .stacks
        .iter()
        .map(|name| &root.stacks[name])
        .map(|s| {
            let plain: Vec<String> = s
                .secrets
                .iter()
                .map(|spec| spec.name.clone())
                .filter(|name| !s.encrypted.contains_key(name) && !s.missing_secrets.contains(name))
                .collect();
            (s.name.clone(), plain)
        })
        .filter(|(_, plain)| !plain.is_empty())
        .collect();
    let plaintext_why = match ctx.mode {
        Mode::User => "user mode: a user manager of systemd before 256 cannot decrypt credentials",
        Mode::System => "sudo composectl secrets encrypt seals them with this host's key",
    };
    let checked = Checked {
        valid: true,
        root: ctx.root_dir.clone(),
        stacks: selection.stacks,
        diagnostics: selection.warnings,
        secrets_to_generate,
        plaintext_secrets,
        plaintext_why,
    };
    Ok(Box::new(report(checked, |c, out| {
        if c.stacks.is_empty() {
            out.line(format!(
                "{}: ok, but there are no stacks yet: create {STACKS_DIR}/NAME/compose.yaml (man 5 x-composectl)",
                c.root.display()
            ))?;
        } else {
            let names: Vec<&str> = c.stacks.iter().map(String::as_str).collect();
            out.line(format!(
                "{}: ok ({} {}: {})",
                c.root.display(),
                names.len(),
                if names.len() == 1 { "stack" } else { "stacks" },
                names.join(", ")
            ))?;
        }
        for (stack, missing) in &c.secrets_to_generate {
            out.line(format!(
                "{stack}: secrets to generate: {} (composectl secrets {stack}, or enable)",
                missing.join(", ")
            ))?;
        }
        for (stack, plain) in &c.plaintext_secrets {
            out.line(format!(
                "{stack}: secrets in plaintext env files (mode 0600): {} ({})",
                plain.join(", "),
                c.plaintext_why
            ))?;
        }
        Ok(())
    })))
}

#[derive(Serialize)]
struct RenderedFile {
    path: PathBuf,
    contents: String,
}

#[derive(Serialize)]
struct Written {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

pub fn render(ctx: &Context, names: &[StackName], out: Option<&Path>) -> Result<Box<dyn Report>> {
    let (root, stacks) = ctx.select(names)?;
    let files = ctx.render(&root, &stacks)?;
    if let Some(dir) = out {
        for file in &files {
            crate::files::write_atomically(
                &dir.join(&file.path),
                &file.contents,
                crate::unitdir::FILE_MODE,
            )?;
        }
        let written = Written {
            dir: dir.to_path_buf(),
            files: files.iter().map(|f| dir.join(&f.path)).collect(),
        };
        return Ok(Box::new(report(written, |w, out| {
            out.line(format!(
                "wrote {} files to {}",
                w.files.len(),
                w.dir.display()
            ))
        })));
    }
    let unit_dir = ctx.mode.unit_dir();
    let rendered: Vec<RenderedFile> = files
        .into_iter()
        .map(|f| RenderedFile {
            path: unit_dir.join(&f.path),
            contents: f.contents,
        })
        .collect();
    Ok(Box::new(report(rendered, |files, out| {
        for (index, file) in files.iter().enumerate() {
            if index > 0 {
                out.data("\n")?;
            }
            out.data(&format!("# {}\n{}", file.path.display(), file.contents))?;
        }
        Ok(())
    })))
}

#[derive(Serialize)]
struct FileChange {
    path: PathBuf,
    change: &'static str,
    diff: String,
}

#[derive(Serialize)]
struct Changes {
    unit_dir: PathBuf,
    changes: Vec<FileChange>,
    /// Running stacks whose files changed since their supervisor applied them: what `reload`
    /// would apply.
    running: Vec<Pending>,
}

#[derive(Serialize)]
struct Pending {
    stack: String,
    /// The compose file, as applied against as it is now.
    compose_diff: String,
    /// Variables of the env layers added, removed or changed (never their values).
    env: Vec<EnvChange>,
    /// The services `compose up` would recreate, create or remove.
    recreate: Vec<String>,
    /// Why `recreate` could not be worked out, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize)]
struct EnvChange {
    variable: String,
    change: &'static str,
}

/// What a reload of each running stack would apply: the files' changes since the supervisor
/// applied them, and the services whose configuration hash (compose's own) is no longer the one
/// their containers were created with.
fn pending(ctx: &Context, root: &Root, stacks: &BTreeSet<String>) -> Vec<Pending> {
    let mut pending = Vec::new();
    for name in stacks {
        let Some(applied) = Applied::load(ctx.mode, name) else {
            continue;
        };
        let stack = &root.stacks[name];
        let now = Applied::read(stack);
        let compose_diff = if applied.compose == now.compose {
            String::new()
        } else {
            let path = stack.compose_file.display().to_string();
            similar::TextDiff::from_lines(&applied.compose, &now.compose)
                .unified_diff()
                .header(&format!("{path} (applied)"), &path)
                .to_string()
        };
        let env = applied
            .env_changes(&now)
            .into_iter()
            .map(|(variable, change)| EnvChange { variable, change })
            .collect();
        let (recreate, note) = match block_on(recreated(ctx, root, name)) {
            Ok(services) => (services, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        };
        let item = Pending {
            stack: name.clone(),
            compose_diff,
            env,
            recreate,
            note,
        };
        if !item.compose_diff.is_empty() || !item.env.is_empty() || !item.recreate.is_empty() {
            pending.push(item);
        }
    }
    pending
}

/// The services whose containers `compose up` would create, recreate or remove.
async fn recreated(ctx: &Context, root: &Root, name: &str) -> Result<Vec<String>> {
    let stack = &root.stacks[name];
    let pins = StackState::new(ctx.mode, name).pinned();
    let wanted = Compose::new(root, stack)
        .pinned(pins)
        .placed(crate::runtime::placement(ctx.mode, name))
        .config_hashes()
        .await?;
    let engine = Engine::connect()?;
    let containers = engine.containers(Some(name)).await?;
    let mut services: BTreeSet<String> = containers
        .iter()
        .filter(|c| wanted.get(&c.service) != c.config_hash.as_ref())
        .map(|c| c.service.clone())
        .collect();
    services.extend(
        wanted
            .keys()
            .filter(|s| !containers.iter().any(|c| &c.service == *s))
            .cloned(),
    );
    Ok(services.into_iter().collect())
}

pub fn diff(
    ctx: &Context,
    names: &[StackName],
    unit_dir: Option<PathBuf>,
) -> Result<Box<dyn Report>> {
    let (root, stacks) = ctx.select(names)?;
    let files = ctx.render(&root, &stacks)?;
    let unit_dir = unit_dir.unwrap_or_else(|| ctx.mode.unit_dir());
    let mut changes = Vec::new();
    for file in &files {
        let path = unit_dir.join(&file.path);
        let (change, old) = match fs::read_to_string(&path) {
            Ok(old) if old == file.contents => continue,
            Ok(old) => ("changed", old),
            Err(_) => ("new", String::new()),
        };
        let diff = similar::TextDiff::from_lines(&old, &file.contents)
            .unified_diff()
            .header(&path.display().to_string(), &path.display().to_string())
            .to_string();
        changes.push(FileChange { path, change, diff });
    }
    if names.is_empty() {
        for stack in crate::unitdir::UnitDir::new(&unit_dir).installed().stacks() {
            if !root.stacks.contains_key(&stack) {
                changes.push(FileChange {
                    diff: format!("stack {stack} is no longer in the root\n"),
                    path: unit_dir.join(units::dropin_path(&stack)),
                    change: "removed",
                });
            }
        }
    }
    let running = pending(ctx, &root, &stacks);
    let changes = Changes {
        unit_dir,
        changes,
        running,
    };
    Ok(Box::new(report(changes, |c, out| {
        if c.changes.is_empty() {
            out.line(format!("{}: up to date", c.unit_dir.display()))?;
        }
        for change in &c.changes {
            out.data(&format!(
                "{} {}\n{}",
                change.change,
                change.path.display(),
                change.diff
            ))?;
        }
        for p in &c.running {
            let recreate = match (&p.note, p.recreate.is_empty()) {
                (Some(note), _) => format!("cannot tell which services it recreates: {note}"),
                (None, true) => "recreates nothing".to_string(),
                (None, false) => format!("recreates {}", p.recreate.join(", ")),
            };
            out.data(&format!(
                "running stack {}: composectl reload {} {recreate}\n",
                p.stack, p.stack
            ))?;
            for env in &p.env {
                out.data(&format!("  env {}: {}\n", env.variable, env.change))?;
            }
            out.data(&p.compose_diff)?;
        }
        Ok(())
    })))
}

pub fn graph(ctx: &Context, names: &[StackName], format: GraphFormat) -> Result<Box<dyn Report>> {
    let (root, stacks) = ctx.select(names)?;
    let graph = root.graph().subgraph(&stacks);
    let text = match format {
        GraphFormat::Text => graph.to_text(),
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    let value = json!({"layers": graph.layers(), "edges": graph.edges()});
    Ok(Box::new(report(value, move |_, out| out.data(&text))))
}
