//! `composectl doctor`: what this host lacks for composectl, and how to fix each item.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::context::{Context, block_on};
use crate::engine::{Engine, Placement};
use crate::error::{Result, exit};
use crate::mode::Mode;
use crate::model;
use crate::output::{Report, Text};
use crate::swarm::stack_cli;

#[derive(Debug, Serialize)]
struct Check {
    what: String,
    ok: bool,
    /// Only some commands need it (`composectl swarm`): missing, it does not fail doctor.
    optional: bool,
    detail: String,
    fix: String,
}

fn check(what: &str, result: std::result::Result<String, (String, String)>) -> Check {
    match result {
        Ok(detail) => Check {
            what: what.into(),
            ok: true,
            optional: false,
            detail,
            fix: String::new(),
        },
        Err((detail, fix)) => Check {
            what: what.into(),
            ok: false,
            optional: false,
            detail,
            fix,
        },
    }
}

/// A check only `composectl swarm` needs.
fn optional(what: &str, result: std::result::Result<String, (String, String)>) -> Check {
    Check {
        optional: true,
        ..check(what, result)
    }
}

/// The nearest existing directory at or above `path` is writable by us.
fn writable(path: &Path) -> bool {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn compose_version(command: &[String]) -> std::result::Result<String, (String, String)> {
    let output = Command::new(&command[0])
        .args(&command[1..])
        .args(["version", "--short"])
        .output()
        .map_err(|e| (format!("`{}` cannot run: {e}", command.join(" ")), "install Docker Compose v2 (Debian: apt install docker-compose; Docker's packages: docker-compose-plugin)".into()))?;
    let version = String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    if output.status.success() && version.starts_with('2') {
        Ok(format!("{} {version}", command.join(" ")))
    } else {
        Err((
            format!("`{} version` says {:?}; composectl needs Compose v2", command.join(" "), version),
            "install the Compose v2 plugin (apt install docker-compose from Debian 13, or docker-compose-plugin), or set compose = [...] in composectl.toml".into(),
        ))
    }
}

/// Every check, ok or not; exit code 1 when something is missing.
struct Findings {
    checks: Vec<Check>,
}

impl Report for Findings {
    fn text(&self, out: &mut Text<'_>) -> std::io::Result<()> {
        for c in &self.checks {
            if c.ok {
                out.line(format!("ok       {:<18} {}", c.what, c.detail))?;
            } else if c.optional {
                out.line(format!(
                    "-        {:<18} {}\n         fix: {}",
                    c.what, c.detail, c.fix
                ))?;
            } else {
                // What is missing is the point of doctor: printed even with --quiet.
                out.data(&format!(
                    "MISSING  {:<18} {}\n         fix: {}\n",
                    c.what, c.detail, c.fix
                ))?;
            }
        }
        Ok(())
    }

    fn json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.checks).ok()
    }

    fn exit_code(&self) -> u8 {
        if self.checks.iter().all(|c| c.ok || c.optional) {
            exit::OK
        } else {
            exit::FAILED
        }
    }
}

pub fn doctor(ctx: &Context) -> Result<Box<dyn Report>> {
    let mut checks = Vec::new();
    let root_state = model::select(&ctx.root_dir, &[]);
    checks.push(check(
        "root",
        match &root_state {
            Ok(loaded) => Ok(format!(
                "{} ({} stacks)",
                ctx.root_dir.display(),
                loaded.stacks.len()
            )),
            Err(diags) => Err((
                format!(
                    "{}: {} problem(s), first: {}",
                    ctx.root_dir.display(),
                    diags.errors().count(),
                    diags
                        .errors()
                        .next()
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                ),
                "run `composectl check` and fix what it reports".into(),
            )),
        },
    ));
    let compose = root_state
        .as_ref()
        .map(|l| l.root.settings.compose.clone())
        .unwrap_or_else(|_| crate::config::settings::Settings::default().compose);
    let (engine, placement) = block_on(async {
        Ok(async {
            let engine = Engine::connect().map_err(|e| e.to_string())?;
            let version = engine
                .version()
                .await
                .map(|v| format!("Docker {v} on {}", engine.socket()))
                .map_err(|e| e.to_string())?;
            Ok((
                version,
                engine
                    .placement(ctx.mode)
                    .await
                    .map_err(|e| format!("{e:#}")),
            ))
        }
        .await
        .map_or_else(|e| (Err(e), None), |(v, p)| (Ok(v), Some(p))))
    })?;
    checks.push(check("docker engine", engine.map_err(|e| (e, "start it (systemctl enable --now docker) and make sure you may use its socket (root, or the docker group)".into()))));
    if let Some(placement) = placement {
        // Required only where a stack asks for resources: elsewhere the slices account for the
        // stacks, and the containers run fine without them.
        let limited = root_state
            .as_ref()
            .is_ok_and(|l| l.root.stacks.values().any(|s| !s.resources.is_empty()));
        let result = match placement {
            Ok(Placement::Slice) => Ok("each stack's containers run in its slice, compose-NAME.slice".into()),
            Ok(Placement::Engine(reason)) => Err((
                "containers run in the engine's cgroups, not in their stacks' slices: stacks with x-composectl resources are refused".into(),
                reason,
            )),
            Err(e) => Err((e, "check that the engine answers `docker info`".into())),
        };
        checks.push(if limited {
            check("stack slices", result)
        } else {
            optional("stack slices", result)
        });
    }
    checks.push(check("compose v2", compose_version(&compose)));
    let manager = block_on(async {
        Ok(crate::systemd::Systemd::connect(ctx.mode)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}")))
    })?;
    checks.push(check(
        "systemd manager",
        manager.map(|()| format!("{} manager answers on D-Bus", ctx.mode.flag())).map_err(|e| {
            let fix = match ctx.mode {
                Mode::System => "composectl needs a host booted with systemd (render and check work anywhere)",
                Mode::User => "log in through a session, or `loginctl enable-linger $USER` and export XDG_RUNTIME_DIR=/run/user/$(id -u); or use --system as root",
            };
            (e, fix.to_string())
        }),
    ));
    if ctx.mode == Mode::System {
        checks.push(check(
            "privileges",
            if nix::unistd::geteuid().is_root() {
                Ok("root".into())
            } else {
                Err((
                    "system mode needs root".into(),
                    "run with sudo, or use --user for stacks of your own".into(),
                ))
            },
        ));
    }
    let unit_dir = ctx.mode.unit_dir();
    checks.push(check(
        "unit directory",
        if writable(&unit_dir) {
            Ok(format!("{} is writable", unit_dir.display()))
        } else {
            Err((
                format!("{} is not writable", unit_dir.display()),
                "run with sudo (system mode) or fix the directory's owner".into(),
            ))
        },
    ));
    checks.push(check(
        "journald",
        if Path::new("/run/systemd/journal/socket").exists() {
            Ok("listening".into())
        } else {
            Err((
                "no /run/systemd/journal/socket: container logs will not reach the journal".into(),
                "start systemd-journald".into(),
            ))
        },
    ));
    // Optional: without it, secrets stay in .env.local (mode 0600), as in user mode.
    checks.push(optional("encrypted secrets", encrypted_secrets(ctx.mode)));

    checks.push(optional(
        "swarm manager",
        block_on(async { Ok(swarm_manager().await) })?,
    ));
    checks.push(optional("docker CLI (swarm)", docker_cli()));

    Ok(Box::new(Findings { checks }))
}

/// Whether secrets can be sealed with systemd-creds here: system mode, as root, with a host key
/// (or TPM2) that works.
fn encrypted_secrets(mode: Mode) -> std::result::Result<String, (String, String)> {
    if mode == Mode::User {
        return Err((
            "user mode: a user manager of systemd before 256 cannot decrypt credentials".into(),
            "secrets stay in .env.local, mode 0600; system-mode stacks can keep them encrypted"
                .into(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err((
            "not checked: the host key is root's".into(),
            "run sudo composectl doctor".into(),
        ));
    }
    match crate::credentials::usable() {
        Ok(()) => Ok(format!(
            "systemd-creds seals them into {} (composectl secrets encrypt)",
            crate::credentials::STORE
        )),
        Err(e) => Err((
            format!("{e:#}"),
            "systemd 250 or later creates the host key (/var/lib/systemd/credential.secret) on first use; check that /var/lib/systemd is writable".into(),
        )),
    }
}

/// Whether the engine manages a swarm, which only `composectl swarm` needs.
async fn swarm_manager() -> std::result::Result<String, (String, String)> {
    let fix = "only `composectl swarm` needs one: `docker swarm init --advertise-addr ADDRESS` makes this \
               engine a single-node swarm manager (other hosts join with the command `docker swarm join-token \
               worker` prints), or point DOCKER_HOST at a manager of your swarm";
    let engine = Engine::connect().map_err(|e| (format!("{e:#}"), fix.to_string()))?;
    let swarm = engine
        .swarm_state()
        .await
        .map_err(|e| (format!("{e:#}"), fix.to_string()))?;
    match (swarm.state.as_str(), swarm.manager) {
        ("active", true) => Ok(format!(
            "{} manages a swarm of {} node(s), {} manager(s)",
            engine.socket(),
            swarm.nodes,
            swarm.managers
        )),
        ("active", false) => Err((
            format!("{} is a swarm worker", engine.socket()),
            "point DOCKER_HOST at a manager of the swarm (`docker node ls` on a manager lists them)".into(),
        )),
        (state, _) => Err((
            format!("{} is not part of a swarm (state: {state})", engine.socket()),
            fix.to_string(),
        )),
    }
}

/// The docker CLI, for `docker stack deploy`.
fn docker_cli() -> std::result::Result<String, (String, String)> {
    let fix = "only `composectl swarm deploy` needs it: install the docker CLI (Debian: docker-cli; Docker's packages: docker-ce-cli)";
    let output = Command::new(stack_cli::DOCKER)
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .map_err(|e| {
            (
                format!("`{}` cannot run: {e}", stack_cli::DOCKER),
                fix.to_string(),
            )
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if version.is_empty() {
        return Err((
            format!("`{} version` printed no client version", stack_cli::DOCKER),
            fix.to_string(),
        ));
    }
    Ok(format!("docker {version}"))
}
