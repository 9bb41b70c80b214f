//! Generates the man pages and shell completions shipped in the distro packages, from the clap
//! definition in `composectl::cli` and the key table in `composectl::reference` (never written
//! by hand).
//!
//! ```sh
//! cargo run --example gen_assets -- OUTDIR
//! ```
//!
//! Writes, replacing whatever was there:
//! - `OUTDIR/man/composectl.1` and one `composectl-<sub>.1` per (nested) subcommand, with the
//!   examples and files of `cli::EXAMPLES` and `cli::FILES`;
//! - `OUTDIR/man/composectl-supervisor.1`, for the binary stack units run;
//! - `OUTDIR/man/x-composectl.5`, `networks.toml.5`, `composectl.toml.5`: every key a user can
//!   write, from the table the parsers check keys against;
//! - `OUTDIR/completions/bash/composectl`, `OUTDIR/completions/zsh/_composectl`,
//!   `OUTDIR/completions/fish/composectl.fish`: scripts that ask composectl itself what to
//!   complete (`COMPOSECTL_COMPLETE`), so stack names come from the root.
//!
//! `packaging/build.sh` runs it; new subcommands and keys are picked up without touching this
//! file.

// A build tool run by packaging/build.sh: its messages are for the packager's terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use composectl::SUPERVISOR_BIN as SUPERVISOR;
use composectl::cli::{self, SUPERVISOR_SYNOPSIS};
use composectl::reference;
use roff::{Roff, bold, roman};

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
    let mut command = cli::command().disable_help_subcommand(true);
    command.build();
    command_pages(&command, "", &man)?;
    for format in reference::FORMATS {
        let page = man.join(format!("{}.5", format.page));
        fs::write(
            &page,
            reference::man_page(format, env!("CARGO_PKG_VERSION")),
        )
        .with_context(|| format!("cannot write {}", page.display()))?;
    }
    let page = man.join(format!("{SUPERVISOR}.1"));
    let mut roff = Vec::new();
    clap_mangen::Man::new(supervisor_command()?).render(&mut roff)?;
    fs::write(&page, roff).with_context(|| format!("cannot write {}", page.display()))?;
    let pages = count_files(&man)?;
    if pages == 0 {
        bail!("clap_mangen wrote no man page");
    }

    let completions = out.join("completions");
    let shells: [(&dyn EnvCompleter, &str, String); 3] = [
        (&Bash, "bash", BIN.to_owned()),
        (&Zsh, "zsh", format!("_{BIN}")),
        (&Fish, "fish", format!("{BIN}.fish")),
    ];
    for (shell, dir, file) in shells {
        let dir = fresh_dir(&completions.join(dir))?;
        let path = dir.join(file);
        let mut buf = Vec::new();
        shell.write_registration(cli::COMPLETE_VAR, BIN, BIN, BIN, &mut buf)?;
        fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }

    println!(
        "gen_assets: {pages} man pages in {}, bash/zsh/fish completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}

/// The page of `command` (`path`: its words after composectl) and of each subcommand: clap's
/// sections, then EXAMPLES, FILES, EXIT STATUS (composectl's own page) and SEE ALSO.
fn command_pages(command: &clap::Command, path: &str, dir: &Path) -> Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        command_pages(sub, &sub_path, dir)?;
    }
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    let mut extra = Roff::new();
    // Every command reads the root (composectl's page lists it first among its files).
    let root = &cli::section_for(cli::FILES, "")[..1];
    let files: Vec<(&str, &str)> = if path.is_empty() {
        cli::section_for(cli::FILES, "").to_vec()
    } else {
        root.iter()
            .chain(cli::section_for(cli::FILES, path))
            .copied()
            .collect()
    };
    for (title, entries) in [
        ("EXAMPLES", cli::section_for(cli::EXAMPLES, path)),
        ("FILES", &files[..]),
    ] {
        if entries.is_empty() {
            continue;
        }
        extra.control("SH", [title]);
        for (first, second) in entries {
            extra.control("TP", []);
            extra.text([bold(*first)]);
            extra.text([roman(*second)]);
        }
    }
    let see_also = if path.is_empty() {
        extra.control("SH", ["EXIT STATUS"]);
        extra.text([roman(
            command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default(),
        )]);
        let mut pages: Vec<String> = command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{BIN}-{}(1)", s.get_name()))
            .collect();
        pages.push(format!("{SUPERVISOR}(1)"));
        pages.extend(reference::FORMATS.iter().map(|f| format!("{}(5)", f.page)));
        pages.extend([
            "systemd.service(5)".into(),
            "journalctl(1)".into(),
            "docker-compose(1)".into(),
        ]);
        pages
    } else {
        vec![
            format!("{BIN}(1)"),
            "x-composectl(5)".into(),
            "networks.toml(5)".into(),
            "composectl.toml(5)".into(),
        ]
    };
    extra.control("SH", ["SEE ALSO"]);
    extra.text([roman(see_also.join(", "))]);
    page.extend(extra.render().into_bytes());
    if command.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    let file = dir.join(man.get_filename());
    fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))
}

/// composectl-supervisor reads its command line without clap (`cli::supervisor_args`): its page
/// takes `run STACK` and the global options a unit passes from composectl's definition.
fn supervisor_command() -> Result<clap::Command> {
    let cli = cli::command();
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
