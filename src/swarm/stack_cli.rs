//! `docker stack deploy`, the one thing composectl needs the docker CLI for (the engine API has
//! no stacks: the CLI turns a compose file into services, networks and volumes), built in one
//! place. The CLI is pointed at the engine composectl's API client uses (`--host`), so a docker
//! context can never send it elsewhere, and reads the translated file on stdin.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use tokio::process::Command;

/// The docker CLI.
pub const DOCKER: &str = "docker";

/// Deploys `yaml` as stack `stack` through the engine on `socket`. `local_images`: the nodes
/// use the images they have, and the CLI asks no registry for digests. `prune`: services of the
/// stack the file no longer has are removed. Killed after `limit`.
pub async fn deploy(
    socket: &str,
    stack: &str,
    dir: &Path,
    yaml: &str,
    local_images: bool,
    prune: bool,
    limit: Duration,
) -> Result<()> {
    let mut command = Command::new(DOCKER);
    command
        .args(["--host", &format!("unix://{socket}")])
        .args(["stack", "deploy", "--compose-file", "-"])
        .args([
            "--resolve-image",
            if local_images { "never" } else { "always" },
        ])
        // Paths in the file are absolute, but a relative one would be the stack directory's.
        .current_dir(dir);
    if prune {
        command.arg("--prune");
    }
    command.arg(stack);
    crate::process::run(
        command,
        &format!("`docker stack deploy {stack}`"),
        "install the docker CLI (Debian: docker-cli, Docker's packages: docker-ce-cli)",
        Some(yaml.as_bytes()),
        Some(limit),
    )
    .await
    .map(drop)
}
