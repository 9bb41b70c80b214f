//! composectl: systemd as the orchestrator of layered Docker Compose stacks.
//!
//! The pipeline: `config` reads the files of a root, `model` validates them into a `Root`,
//! `graph` orders the stacks, `units` renders unit files, `unitdir` installs them, `systemd`
//! drives the manager, `engine` and `compose` the containers, `supervisor` runs a stack, `swarm`
//! deploys the root to Docker Swarm; the commands in `cmd` use them and return reports that
//! `output` prints. See ARCHITECTURE.md.

mod backup;
pub mod cli;
mod cmd;
mod compose_cli;
mod config;
mod context;
mod credentials;
mod diag;
mod duration;
mod engine;
mod error;
mod files;
mod graph;
mod journal;
mod mode;
mod model;
mod output;
mod parallel;
mod process;
mod runtime;
mod secrets;
mod state;
mod supervisor;
mod swarm;
mod systemd;
mod unitdir;
mod units;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::FromArgMatches;

pub use config::reference;
pub use model::StackName;
pub use units::SUPERVISOR_BIN;

use crate::output::Output;

/// Parses a command line, runs it and turns its outcome into the process exit code: the one
/// place errors become exit codes.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let completing = clap_complete::CompleteEnv::with_factory(cli::command)
        .var(cli::COMPLETE_VAR)
        .try_complete(args.iter(), std::env::current_dir().ok().as_deref());
    match completing {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error::exit::USAGE);
        }
    }
    let parsed = cli::command()
        .try_get_matches_from(&args)
        .and_then(|matches| cli::Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let json = error.use_stderr() && cli::wants_json(&args);
            return match output::print_usage_error(&error, json) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                _ => ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(error::exit::USAGE)),
            };
        }
    };
    let out = Output::new(&cli.global);
    let outcome = cmd::execute(cli, out).and_then(|report| out.report(&*report));
    exit_code(out, outcome)
}

/// The supervisor alone: `composectl-supervisor`, which units start instead of `composectl run`
/// (same command line, `--user|--system --root DIR run STACK`). One runs per stack, and without
/// the other commands' code (clap, templates, diffs, archives, Swarm) its binary is half the size:
/// fewer pages of program resident in each.
pub fn supervise(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let (global, stack) = match cli::supervisor_args(args) {
        Ok(parsed) => parsed,
        Err(error) => return exit_code(Output::new(&cli::GlobalArgs::default()), Err(error)),
    };
    let out = Output::new(&global);
    let outcome = cmd::supervise(&global, out, &stack).and_then(|report| out.report(&*report));
    exit_code(out, outcome)
}

fn exit_code(out: Output, outcome: Result<u8, error::Error>) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            out.error(&error);
            error.exit_code()
        }
    }
}
