//! Generates the man pages and shell completions shipped in the distro packages, from the clap
//! definition in `composectl::cli` (never written by hand).
//!
//! ```sh
//! cargo run --example gen_assets -- OUTDIR
//! ```
//!
//! Writes, replacing whatever was there:
//! - `OUTDIR/man/composectl.1` and one `composectl-<sub>.1` per (nested) subcommand;
//! - `OUTDIR/man/composectl-supervisor.1`, for the binary stack units run;
//! - `OUTDIR/completions/bash/composectl`, `OUTDIR/completions/zsh/_composectl`,
//!   `OUTDIR/completions/fish/composectl.fish`.
//!
//! `packaging/build.sh` runs it; new subcommands are picked up without touching this file.

// A build tool run by packaging/build.sh: its messages are for the packager's terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;
use composectl::SUPERVISOR_BIN as SUPERVISOR;
use composectl::cli::{Cli, SUPERVISOR_SYNOPSIS};

const BIN: &str = "composectl";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gen_assets: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: cargo run --example gen_assets -- OUTDIR");
    };
    let out = PathBuf::from(out);

    let man = fresh_dir(&out.join("man"))?;
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write man pages into {}", man.display()))?;
    let page = man.join(format!("{SUPERVISOR}.1"));
    let mut roff = Vec::new();
    clap_mangen::Man::new(supervisor_command()?).render(&mut roff)?;
    fs::write(&page, roff).with_context(|| format!("cannot write {}", page.display()))?;
    let pages = count_files(&man)?;
    if pages == 0 {
        bail!("clap_mangen wrote no man page");
    }

    let completions = out.join("completions");
    for (shell, dir, file) in [
        (Shell::Bash, "bash", BIN.to_owned()),
        (Shell::Zsh, "zsh", format!("_{BIN}")),
        (Shell::Fish, "fish", format!("{BIN}.fish")),
    ] {
        let dir = fresh_dir(&completions.join(dir))?;
        let path = dir.join(file);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
        fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }

    println!(
        "gen_assets: {pages} man pages in {}, bash/zsh/fish completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}

/// composectl-supervisor reads its command line without clap (`cli::supervisor_args`): its page
/// takes `run STACK` and the global options a unit passes from composectl's definition.
fn supervisor_command() -> Result<clap::Command> {
    let cli = Cli::command();
    let global = |id: &str| {
        cli.get_arguments()
            .find(|arg| arg.get_id() == id)
            .cloned()
            .with_context(|| format!("no global option {id}"))
    };
    let run = cli.find_subcommand("run").context("no run subcommand")?;
    let stack = run
        .get_arguments()
        .find(|arg| arg.get_id() == "stack")
        .cloned()
        .context("run takes no stack")?;
    Ok(clap::Command::new(SUPERVISOR)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .override_usage(SUPERVISOR_SYNOPSIS)
        .about("The supervisor of one stack: what compose@STACK.service runs")
        .long_about(
            "composectl-supervisor is `composectl run STACK` without composectl's other commands, \
so that each stack's supervisor maps less code. Stack units run it (ExecStart=); see composectl-run(1).",
        )
        .arg(global("root")?)
        .arg(global("user")?)
        .arg(global("system")?)
        .arg(
            clap::Arg::new("run")
                .value_name("run")
                .required(true)
                .help(run.get_about().cloned().unwrap_or_default()),
        )
        .arg(stack))
}

/// Creates `dir` empty, so pages of removed subcommands do not linger.
fn fresh_dir(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

fn count_files(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        if entry?.file_type()?.is_file() {
            n += 1;
        }
    }
    Ok(n)
}
