//! `composectl doctor`: what this host lacks for composectl, and how to fix each item.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::app::Context;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model;

#[derive(Debug, Serialize)]
struct Check {
    what: String,
    ok: bool,
    detail: String,
    fix: String,
}

fn check(what: &str, result: std::result::Result<String, (String, String)>) -> Check {
    match result {
        Ok(detail) => Check {
            what: what.into(),
            ok: true,
            detail,
            fix: String::new(),
        },
        Err((detail, fix)) => Check {
            what: what.into(),
            ok: false,
            detail,
            fix,
        },
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(e.into()))
}

pub fn doctor(ctx: &Context) -> Result<()> {
    let mut checks = Vec::new();
    let root_state = model::load(&ctx.root_dir);
    checks.push(check(
        "root",
        match &root_state {
            Ok(loaded) => Ok(format!(
                "{} ({} stacks)",
                ctx.root_dir.display(),
                loaded.root.stacks.len()
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
    let engine = runtime()?.block_on(async {
        let engine = Engine::connect().map_err(|e| e.to_string())?;
        engine
            .version()
            .await
            .map(|v| format!("Docker {v} on {}", engine.socket()))
            .map_err(|e| e.to_string())
    });
    checks.push(check("docker engine", engine.map_err(|e| (e, "start it (systemctl enable --now docker) and make sure you may use its socket (root, or the docker group)".into()))));
    checks.push(check("compose v2", compose_version(&compose)));
    let manager = runtime()?.block_on(async {
        crate::systemd::Systemd::connect(ctx.mode)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
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

    let failed = checks.iter().filter(|c| !c.ok).count();
    if ctx.ui.json() {
        ctx.ui.print_json(&checks);
    } else {
        for c in &checks {
            if c.ok {
                ctx.ui.say(format!("ok       {:<18} {}", c.what, c.detail));
            } else {
                println!(
                    "MISSING  {:<18} {}\n         fix: {}",
                    c.what, c.detail, c.fix
                );
            }
        }
    }
    if failed > 0 {
        return Err(Error::Failed(anyhow::anyhow!("{failed} problem(s) found")));
    }
    Ok(())
}
