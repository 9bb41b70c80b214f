//! The compose CLI (`docker compose` unless composectl.toml names another), built in one place:
//! every call names the project, its file, its directory and its env layers in their fixed order.
//! Calls that run on a stop or failure path take a time limit, so a hung engine cannot hold them;
//! `process` runs them.

use std::time::Duration;

use anyhow::Result;
use tokio::process::Command;

use crate::model::{Root, Stack};

/// The compose command for one stack.
pub struct Compose<'a> {
    program: &'a [String],
    stack: &'a Stack,
}

impl<'a> Compose<'a> {
    pub fn new(root: &'a Root, stack: &'a Stack) -> Compose<'a> {
        Compose {
            program: &root.settings.compose,
            stack,
        }
    }

    /// `up --detach --remove-orphans`: creates what is missing or changed, leaves running
    /// containers that are up to date alone (how a restarted supervisor adopts them).
    pub async fn up(&self) -> Result<()> {
        self.run(
            self.with_file(),
            &["up", "--detach", "--remove-orphans"],
            None,
        )
        .await
    }

    /// `pull`, for `composectl update`.
    pub async fn pull(&self) -> Result<()> {
        self.run(self.with_file(), &["pull"], None).await
    }

    /// `down --remove-orphans` by project name alone, so it works even when the compose file
    /// changed or its directory is gone: containers and the project's own networks go, volumes
    /// stay. Killed after `limit`.
    pub async fn down(&self, limit: Duration) -> Result<()> {
        self.run(self.base(), &["down", "--remove-orphans"], Some(limit))
            .await
    }

    fn base(&self) -> Command {
        let mut command = Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
            .args(["--project-name", &self.stack.name]);
        command
    }

    fn with_file(&self) -> Command {
        let mut command = self.base();
        command
            .arg("--file")
            .arg(&self.stack.compose_file)
            .arg("--project-directory")
            .arg(&self.stack.dir)
            .current_dir(&self.stack.dir);
        for env_file in &self.stack.env_files {
            command.arg("--env-file").arg(env_file);
        }
        command
    }

    /// Runs one compose command; a failure quotes the last lines compose wrote on stderr.
    async fn run(
        &self,
        mut command: Command,
        args: &[&str],
        limit: Option<Duration>,
    ) -> Result<()> {
        let what = format!("`{} {}`", self.program.join(" "), args.join(" "));
        command.args(args);
        crate::process::run(
            command,
            &what,
            "install Compose v2 (docker compose) or set compose = [...] in composectl.toml",
            None,
            limit,
        )
        .await
    }
}
