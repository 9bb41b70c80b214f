//! What every command works with: the mode, the root directory, the output, and how to load the
//! root, render its units and reach the unit directory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};

use crate::cli::GlobalArgs;
use crate::diag::Diagnostics;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model::{self, Root, StackName};
use crate::output::Output;
use crate::unitdir::UnitDir;
use crate::units::{self, UnitFile};

pub struct Context {
    pub mode: Mode,
    pub root_dir: PathBuf,
    pub out: Output,
}

impl Context {
    pub fn new(global: &GlobalArgs, out: Output) -> Result<Context> {
        let mode = if global.user {
            Mode::User
        } else if global.system {
            Mode::System
        } else {
            Mode::from_euid()
        };
        let root_dir = global.root.clone().unwrap_or_else(|| mode.default_root());
        // Units name the root in ExecStart=, so it must not depend on the working directory.
        let root_dir = std::path::absolute(&root_dir)
            .with_context(|| format!("cannot resolve the root path {}", root_dir.display()))?;
        Ok(Context {
            mode,
            root_dir,
            out,
        })
    }

    /// Loads and validates the whole root, printing its warnings.
    pub fn load(&self) -> Result<Root> {
        Ok(self.select(&[])?.0)
    }

    /// The root and the stacks a command works on, by the one rule (`model::select`): the named
    /// stacks and what they require or want, every stack when none are named; prints warnings.
    pub fn select(&self, names: &[StackName]) -> Result<(Root, BTreeSet<String>)> {
        let selection = model::select(&self.root_dir, names)?;
        self.out.diagnostics(&selection.warnings);
        Ok((selection.root, selection.stacks))
    }

    /// The root with only `name` loaded (see [`model::load_one`]).
    pub fn load_one(&self, name: &StackName) -> Result<Root> {
        self.loaded(model::load_one(&self.root_dir, name))
    }

    fn loaded(&self, loaded: Result<model::Loaded, Diagnostics>) -> Result<Root> {
        let loaded = loaded?;
        self.out.diagnostics(&loaded.warnings);
        Ok(loaded.root)
    }

    /// The unit files for the selected stacks, as `enable` would write them.
    pub fn render(&self, root: &Root, stacks: &BTreeSet<String>) -> Result<Vec<UnitFile>> {
        let exec = units::exec_path()?;
        Ok(units::render(root, stacks, self.mode, &exec)?)
    }

    pub fn unit_dir(&self) -> UnitDir {
        UnitDir::new(self.mode.unit_dir())
    }

    /// Commands that change the system manager need root.
    pub fn require_privileges(&self) -> Result<()> {
        if self.mode == Mode::System && !nix::unistd::geteuid().is_root() {
            return Err(Error::usage(
                "system mode changes /etc/systemd/system and the system manager: run with sudo, or use --user for your own stacks",
            ));
        }
        Ok(())
    }

    /// Hears about each finished job, so a long start shows which layer it is at.
    pub fn progress(&self) -> impl FnMut(&str, &str) {
        let out = self.out;
        move |unit: &str, result: &str| {
            let _ = out.progress(&format!("  {unit}: {result}"));
        }
    }
}

/// Runs a future to completion on a current-thread runtime: commands make a few D-Bus and engine
/// calls and wait for signals, and never need more than one thread.
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?
        .block_on(future)
}
