//! The compose CLI (`docker compose` unless composectl.toml names another), built in one place:
//! every call names the project, its file, its directory and its env layers in their fixed order.
//! Calls that run on a stop or failure path take a time limit, so a hung engine cannot hold them;
//! `process` runs them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use tokio::process::Command;

use crate::model::{Root, Stack};

/// How long a question that changes nothing (`config`) may take.
const QUERY_LIMIT: Duration = Duration::from_secs(30);

/// The compose command for one stack.
pub struct Compose<'a> {
    program: &'a [String],
    stack: &'a Stack,
    /// An override file after the stack's own (the images an update rolled back to).
    pins: Option<PathBuf>,
    /// An override file putting its containers into the stack's slice (`placement_override`).
    placement: Option<PathBuf>,
}

impl<'a> Compose<'a> {
    pub fn new(root: &'a Root, stack: &'a Stack) -> Compose<'a> {
        Compose {
            program: &root.settings.compose,
            stack,
            pins: None,
            placement: None,
        }
    }

    /// Adds the override file that puts the containers into the stack's slice, when the
    /// supervisor wrote one.
    pub fn placed(mut self, placement: Option<PathBuf>) -> Compose<'a> {
        self.placement = placement;
        self
    }

    /// Adds the override file that pins the stack's images (see `state`), when there is one.
    pub fn pinned(mut self, pins: Option<PathBuf>) -> Compose<'a> {
        self.pins = pins;
        self
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
        .map(drop)
    }

    /// `pull` of what the tags name (never the pinned images), for `composectl update`;
    /// services compose builds are left to `build`.
    pub async fn pull(&self) -> Result<()> {
        let unpinned = Compose {
            pins: None,
            placement: self.placement.clone(),
            ..*self
        };
        unpinned
            .run(unpinned.with_file(), &["pull", "--ignore-buildable"], None)
            .await
            .map(drop)
    }

    /// Each service's configuration hash as compose computes it for the files now: a running
    /// container with another `com.docker.compose.config-hash` is recreated by `up`.
    pub async fn config_hashes(&self) -> Result<BTreeMap<String, String>> {
        let out = self
            .run(
                self.with_file(),
                &["config", "--hash", "*"],
                Some(QUERY_LIMIT),
            )
            .await?;
        Ok(out
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(service, hash)| (service.to_string(), hash.trim().to_string()))
            .collect())
    }

    /// `down --remove-orphans` by project name alone, so it works even when the compose file
    /// changed or its directory is gone: containers and the project's own networks go, volumes
    /// stay. Killed after `limit`.
    pub async fn down(&self, limit: Duration) -> Result<()> {
        self.run(self.base(), &["down", "--remove-orphans"], Some(limit))
            .await
            .map(drop)
    }

    fn base(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
            .args(["--project-name", &self.stack.name]);
        command
    }

    /// The command every call that reads the files starts from, and what `composectl compose`
    /// runs: the project, its file and directory, the pinned images, the env layers in order.
    pub fn with_file(&self) -> std::process::Command {
        let mut command = self.base();
        command
            .arg("--file")
            .arg(&self.stack.compose_file)
            .arg("--project-directory")
            .arg(&self.stack.dir)
            .current_dir(&self.stack.dir);
        for file in [&self.placement, &self.pins].into_iter().flatten() {
            command.arg("--file").arg(file);
        }
        for env_file in &self.stack.env_files {
            command.arg("--env-file").arg(env_file);
        }
        // Compose's own environment wins over its env files: the secrets systemd decrypted
        // for this unit replace any plaintext left in them.
        command.envs(crate::credentials::loaded(
            &self.stack.name,
            &self.stack.secrets,
        ));
        command
    }

    /// Runs one compose command and returns what it printed; a failure quotes the last lines
    /// compose wrote on stderr.
    async fn run(
        &self,
        command: std::process::Command,
        args: &[&str],
        limit: Option<Duration>,
    ) -> Result<String> {
        let what = format!("`{} {}`", self.program.join(" "), args.join(" "));
        let mut command = Command::from(command);
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

/// An override file that creates each service's containers under the stack's slice
/// (`cgroup_parent`), leaving out services that name a parent of their own: composectl adds it,
/// the user's compose file stays as written.
pub fn placement_override(stack: &Stack) -> String {
    let slice = crate::model::stack_slice(&stack.name);
    let mut text = format!(
        "# Written by composectl for this run of stack {}: its containers in {slice}.\nservices:\n",
        stack.name
    );
    for service in stack.services.iter().filter(|s| s.cgroup_parent.is_none()) {
        // Service and slice names hold no quote: single-quoted YAML takes them as they are.
        text.push_str(&format!(
            "  '{}':\n    cgroup_parent: '{slice}'\n",
            service.name
        ));
    }
    text
}
