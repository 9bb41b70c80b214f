//! The compose CLI (`docker compose` unless composectl.toml names another), built in one place:
//! every call names the project, its file, its directory and its env layers in their fixed order.
//! Calls that run on a stop or failure path take a time limit, so a hung engine cannot hold them.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::model::{Root, Stack};

/// How many of compose's last stderr lines a failure quotes.
const QUOTED_LINES: usize = 8;

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
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow!(
                    "cannot run {what}: {e}; install Compose v2 (docker compose) or set compose = [...] in composectl.toml"
                )
            })?;
        let stderr = child.stderr.take();
        let finished = async {
            let mut tail = VecDeque::with_capacity(QUOTED_LINES);
            if let Some(stderr) = stderr {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tail.len() == QUOTED_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
            (child.wait().await, tail)
        };
        let (status, tail) = match limit {
            Some(limit) => tokio::time::timeout(limit, finished).await.map_err(|_| {
                anyhow!(
                    "{what} did not finish within {}",
                    crate::duration::format(limit)
                )
            })?,
            None => finished.await,
        };
        let status = status.map_err(|e| anyhow!("{what}: {e}"))?;
        if !status.success() {
            let quoted: Vec<String> = tail
                .into_iter()
                .map(|line| format!("\n    {line}"))
                .collect();
            bail!("{what} failed ({status}){}", quoted.concat());
        }
        Ok(())
    }
}
