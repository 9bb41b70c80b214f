//! composectl: systemd as the orchestrator of layered Docker Compose stacks.
//!
//! The pipeline: `config` reads the files of a root, `model` validates them into a `Root`,
//! `graph` orders the stacks, `units` renders unit files, and `app` runs the commands, the only
//! place with side effects on the terminal. See ARCHITECTURE.md.

pub mod app;
pub mod cli;
pub mod compose;
pub mod config;
pub mod control;
pub mod diag;
pub mod doctor;
pub mod duration;
pub mod engine;
pub mod error;
pub mod graph;
pub mod journal;
pub mod mode;
pub mod model;
pub mod supervisor;
pub mod systemd;
pub mod ui;
pub mod unitdir;
pub mod units;

use std::process::ExitCode;

use crate::error::Error;
use crate::ui::Ui;

/// Runs a parsed command line and turns its outcome into the process exit code.
pub fn run(cli: cli::Cli) -> ExitCode {
    let ui = Ui::new(&cli.global);
    match app::execute(cli, ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match &error {
                Error::Invalid(diags) => ui.report(diags),
                Error::Failed(e) => ui.fail(&format!("{e:#}")),
                Error::NotActive | Error::Restart(_) => {}
            }
            error.exit_code()
        }
    }
}
