//! The commands: each turns a parsed command line into calls on the pipeline and prints the
//! result. Errors are returned, never printed here, so `lib::run` maps them to exit codes in one
//! place.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::cli::{Cli, Command, GraphFormat, StackArgs};
use crate::control;
use crate::diag::Diagnostics;
use crate::error::Result;
use crate::mode::Mode;
use crate::model::{self, Root, STACKS_DIR};
use crate::systemd::JobKind;
use crate::ui::Ui;
use crate::units::{self, UnitFile};

/// What every command needs: the mode, the root directory and the output settings.
pub struct Context {
    pub mode: Mode,
    pub root_dir: PathBuf,
    pub ui: Ui,
}

impl Context {
    fn new(cli: &Cli, ui: Ui) -> Result<Context> {
        let mode = if cli.global.user {
            Mode::User
        } else if cli.global.system {
            Mode::System
        } else {
            Mode::from_euid()
        };
        let root_dir = cli
            .global
            .root
            .clone()
            .unwrap_or_else(|| mode.default_root());
        // Units name the root in ExecStart=, so it must not depend on the working directory.
        let root_dir = std::path::absolute(&root_dir)
            .with_context(|| format!("cannot resolve the root path {}", root_dir.display()))?;
        Ok(Context { mode, root_dir, ui })
    }

    /// Loads and validates the whole root, printing its warnings.
    pub fn load(&self) -> Result<Root> {
        let loaded = model::load(&self.root_dir)?;
        self.ui.report(&loaded.warnings);
        Ok(loaded.root)
    }
}

pub fn execute(cli: Cli, ui: Ui) -> Result<()> {
    let ctx = Context::new(&cli, ui)?;
    match cli.command {
        Command::Check(stacks) => check(&ctx, &stacks),
        Command::Render { stacks, out } => render(&ctx, &stacks, out.as_deref()),
        Command::Diff { stacks, unit_dir } => diff(&ctx, &stacks, unit_dir),
        Command::Graph { stacks, format } => graph(&ctx, &stacks, format),
        Command::Enable { stacks, now } => control::enable(&ctx, &stacks, now),
        Command::Disable { stacks, now } => control::disable(&ctx, &stacks, now),
        Command::Start(stacks) => control::job(&ctx, &stacks, JobKind::Start),
        Command::Stop(stacks) => control::job(&ctx, &stacks, JobKind::Stop),
        Command::Restart(stacks) => control::job(&ctx, &stacks, JobKind::Restart),
        Command::Status(stacks) => control::status(&ctx, &stacks.names),
        Command::List => control::list(&ctx),
        Command::Networks { wait } => control::networks(&ctx, wait),
        Command::Update(stacks) => control::update(&ctx, &stacks),
        Command::Doctor => crate::doctor::doctor(&ctx),
        Command::Run { stack } => run_stack(&ctx, &stack),
        Command::Logs {
            stack,
            service,
            follow,
            lines,
            since,
        } => control::logs(
            &ctx,
            &stack,
            service.as_deref(),
            follow,
            lines,
            since.as_deref(),
        ),
    }
}

fn run_stack(ctx: &Context, name: &str) -> Result<()> {
    crate::supervisor::init_logging(name);
    let root = ctx.load()?;
    let stack = root.stack(name)?;
    match crate::supervisor::run(&root, stack, ctx.mode)? {
        crate::supervisor::Ending::Stopped => Ok(()),
        crate::supervisor::Ending::Restart(reason) => Err(crate::error::Error::Restart(reason)),
    }
}

/// The named stacks and everything they require or want; all stacks when none are named.
pub fn selection(root: &Root, args: &StackArgs) -> Result<BTreeSet<String>> {
    if args.names.is_empty() {
        return Ok(root.stacks.keys().cloned().collect());
    }
    let mut diags = Diagnostics::default();
    for name in &args.names {
        if let Err(diag) = root.stack(name) {
            diags.push(diag);
        }
    }
    if diags.has_errors() {
        return Err(diags.into());
    }
    Ok(root.graph().closure(args.names.iter().map(String::as_str)))
}

fn check(ctx: &Context, args: &StackArgs) -> Result<()> {
    control::validate_names(&args.names)?;
    let (root, diags) = model::load_partial(&ctx.root_dir);
    let stacks = match &root {
        // With every named stack loaded, their dependencies are checked too.
        Some(root) if args.names.iter().all(|n| root.stacks.contains_key(n)) => {
            selection(root, args)?
        }
        _ => args.names.iter().cloned().collect(),
    };
    let diags = if args.names.is_empty() {
        diags
    } else {
        only_about(diags, &ctx.root_dir.join(STACKS_DIR), &stacks)
    };
    if ctx.ui.json() {
        ctx.ui.print_json(&json!({
            "valid": !diags.has_errors(),
            "stacks": stacks,
            "diagnostics": diags.iter().collect::<Vec<_>>(),
        }));
    }
    if diags.has_errors() {
        return Err(diags.into());
    }
    ctx.ui.report(&diags);
    if !ctx.ui.json() {
        let names: Vec<_> = stacks.iter().map(String::as_str).collect();
        ctx.ui.say(format!(
            "{}: ok ({} stacks: {})",
            ctx.root_dir.display(),
            names.len(),
            names.join(", ")
        ));
    }
    Ok(())
}

/// Keeps the diagnostics about shared files and the selected stacks' directories.
fn only_about(diags: Diagnostics, stacks_dir: &Path, stacks: &BTreeSet<String>) -> Diagnostics {
    let mut kept = Diagnostics::default();
    for diag in diags.into_vec() {
        let relevant = match diag
            .file
            .as_deref()
            .and_then(|f| f.strip_prefix(stacks_dir).ok())
        {
            Some(inside) => inside
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .is_some_and(|stack| stacks.contains(stack)),
            None => true,
        };
        if relevant {
            kept.push(diag);
        }
    }
    kept
}

/// The unit files for the selected stacks, as `enable` would write them.
pub fn rendered_units(
    ctx: &Context,
    root: &Root,
    stacks: &BTreeSet<String>,
) -> Result<Vec<UnitFile>> {
    let exec = units::exec_path()?;
    Ok(units::render(root, stacks, ctx.mode, &exec)?)
}

fn render(ctx: &Context, args: &StackArgs, out: Option<&Path>) -> Result<()> {
    let root = ctx.load()?;
    let stacks = selection(&root, args)?;
    let files = rendered_units(ctx, &root, &stacks)?;
    if let Some(dir) = out {
        for file in &files {
            crate::unitdir::write_atomically(&dir.join(&file.path), &file.contents)?;
        }
        ctx.ui
            .say(format!("wrote {} files to {}", files.len(), dir.display()));
        return Ok(());
    }
    if ctx.ui.json() {
        let unit_dir = ctx.mode.unit_dir();
        let listed: Vec<_> = files
            .iter()
            .map(|f| json!({"path": unit_dir.join(&f.path), "contents": f.contents}))
            .collect();
        ctx.ui.print_json(&listed);
        return Ok(());
    }
    let unit_dir = ctx.mode.unit_dir();
    let text: Vec<String> = files
        .iter()
        .map(|f| format!("# {}\n{}", unit_dir.join(&f.path).display(), f.contents))
        .collect();
    print!("{}", text.join("\n"));
    Ok(())
}

#[derive(Serialize)]
struct FileChange {
    path: PathBuf,
    change: &'static str,
    diff: String,
}

fn diff(ctx: &Context, args: &StackArgs, unit_dir: Option<PathBuf>) -> Result<()> {
    let root = ctx.load()?;
    let stacks = selection(&root, args)?;
    let files = rendered_units(ctx, &root, &stacks)?;
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
    if args.names.is_empty() {
        for stack in crate::unitdir::UnitDir::new(&unit_dir).installed_stacks() {
            if !root.stacks.contains_key(&stack) {
                let path = unit_dir.join(units::dropin_path(&stack));
                changes.push(FileChange {
                    diff: format!("stack {stack} is no longer in the root\n"),
                    path,
                    change: "removed",
                });
            }
        }
    }
    if ctx.ui.json() {
        ctx.ui.print_json(&changes);
    } else if changes.is_empty() {
        ctx.ui.say(format!("{}: up to date", unit_dir.display()));
    } else {
        for change in &changes {
            ctx.ui
                .say(format!("{} {}", change.change, change.path.display()));
            ctx.ui.say(change.diff.trim_end());
        }
    }
    Ok(())
}

fn graph(ctx: &Context, args: &StackArgs, format: GraphFormat) -> Result<()> {
    let root = ctx.load()?;
    let stacks = selection(&root, args)?;
    let graph = root.graph().subgraph(&stacks);
    if ctx.ui.json() {
        ctx.ui
            .print_json(&json!({"layers": graph.layers(), "edges": graph.edges()}));
        return Ok(());
    }
    let text = match format {
        GraphFormat::Text => graph.to_text(),
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    print!("{text}");
    Ok(())
}
