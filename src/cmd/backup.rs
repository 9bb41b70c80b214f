//! backup and restore: a stack's volumes (and the paths it marks) to one archive and back,
//! stopping the stack and what requires it meanwhile when that is asked for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::{self, Restored, Stopped, start_again, stop_with_dependents};
use crate::context::{Context, block_on};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::StackName;
use crate::output::{Report, report};
use crate::systemd::Systemd;
use crate::units;

async fn engine() -> Result<Engine> {
    let engine = Engine::connect()?;
    engine.version().await?;
    Ok(engine)
}

pub fn backup(
    ctx: &Context,
    name: &StackName,
    to: Option<PathBuf>,
    keep: Option<usize>,
) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    let (root, _) = ctx.select(std::slice::from_ref(name))?;
    let stack = root.stack(name)?;
    let taken = block_on(async { Ok(backup::take(ctx, &root, stack, to, keep).await?) })?;
    Ok(Box::new(report(taken, |b, out| {
        let m = &b.written.manifest;
        let volumes: Vec<&str> = m.volumes.iter().map(|v| v.volume.name.as_str()).collect();
        out.line(format!(
            "wrote {} ({}, {:.1}s): volumes: {}",
            b.written.archive.display(),
            size(b.written.bytes),
            b.written.seconds,
            if volumes.is_empty() {
                "none".to_string()
            } else {
                volumes.join(", ")
            }
        ))?;
        for hook in &m.hooks {
            out.line(format!(
                "  {} ({}): `{}` in {}",
                hook.member,
                size(hook.bytes),
                hook.run,
                hook.service
            ))?;
        }
        for path in &m.paths {
            out.line(format!("  {}: {}", path.member, path.path.display()))?;
        }
        for path in &b.pruned {
            out.line(format!("removed {}", path.display()))?;
        }
        if !b.encrypted_secrets.is_empty() {
            out.line(format!(
                "note: secrets {} are encrypted with this host's key, not in the archive: on another host, set them again (composectl secrets --reveal here, secrets set there)",
                b.encrypted_secrets.join(", ")
            ))?;
        }
        Ok(())
    })))
}

/// Bytes for people.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[derive(Serialize)]
struct RestoredFrom {
    stack: String,
    archive: PathBuf,
    created: String,
    #[serde(flatten)]
    restored: Restored,
}

pub fn restore(
    ctx: &Context,
    name: &StackName,
    archive: &Path,
    stop: bool,
) -> Result<Box<dyn Report>> {
    ctx.require_privileges()?;
    ctx.select(std::slice::from_ref(name))?;
    // A wrong archive is bad input: said before anything is touched.
    let opened = backup::open(archive).map_err(|e| Error::usage(format!("{e:#}")))?;
    if opened.manifest.stack != **name {
        return Err(Error::usage(format!(
            "{} is a backup of stack {}, not {name}",
            archive.display(),
            opened.manifest.stack
        )));
    }
    let restored = block_on(async {
        let engine = engine().await?;
        let systemd = Systemd::connect(ctx.mode).await?;
        let unit = units::stack_unit(name);
        let active = systemd
            .unit_states(std::slice::from_ref(&unit))
            .await?
            .first()
            .is_some_and(|s| s.active_state != "inactive" && s.active_state != "failed");
        if active && !stop {
            return Err(Error::usage(format!(
                "stack {name} is running: restoring would overwrite the volumes it uses. Run with --stop (stops it and what requires it, restores, starts them again), or stop it first"
            )));
        }
        let stopped = if active {
            stop_with_dependents(ctx, name).await?
        } else {
            Stopped::default()
        };
        let containers: BTreeSet<String> = engine
            .containers(Some(name))
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        if !containers.is_empty() {
            start_again(ctx, stopped).await?;
            return Err(Error::usage(format!(
                "stack {name} has containers outside systemd ({}): remove them first (docker compose -p {name} down), or composectl disable --now {name}",
                containers.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let restored = backup::restore(&engine, &opened, |text| {
            let _ = ctx.out.progress(&format!("{name}: {text}"));
        })
        .await;
        let started = start_again(ctx, stopped).await;
        let restored = restored?;
        started?;
        Ok(restored)
    })?;
    let from = RestoredFrom {
        stack: name.to_string(),
        archive: archive.to_path_buf(),
        created: opened.manifest.created.clone(),
        restored,
    };
    Ok(Box::new(report(from, |r, out| {
        out.line(format!(
            "restored {} from {} (of {}, {:.1}s): volumes: {}",
            r.stack,
            r.archive.display(),
            r.created,
            r.restored.seconds,
            r.restored.volumes.join(", ")
        ))
    })))
}
