//! backup and restore: a stack's volumes (and the paths it marks) to one archive and back,
//! stopping the stack and what requires it meanwhile when that is asked for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::{self, Backup, Restored, Written};
use crate::config::meta::BackupMode;
use crate::context::{Context, block_on};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Stack, StackName};
use crate::output::{Report, report};
use crate::systemd::{JobKind, Jobs, Systemd};
use crate::units;

/// The units stopped for a backup or restore, to start again afterwards.
struct Stopped(Vec<String>);

/// Stops `stack` and the active stacks that require it, directly or not (they would stop with
/// it anyway); nothing when it is not active.
async fn stop_with_dependents(ctx: &Context, stack: &str) -> Result<Stopped> {
    let systemd = Systemd::connect(ctx.mode).await?;
    let installed = ctx.unit_dir().installed();
    let mut stacks = vec![stack.to_string()];
    let mut next = vec![stack.to_string()];
    while let Some(current) = next.pop() {
        for dependent in installed.dependents(&current) {
            if !stacks.contains(&dependent) {
                stacks.push(dependent.clone());
                next.push(dependent);
            }
        }
    }
    let units: Vec<String> = stacks.iter().map(|s| units::stack_unit(s)).collect();
    let active: Vec<String> = systemd
        .unit_states(&units)
        .await?
        .into_iter()
        .filter(|state| state.active_state == "active")
        .map(|state| state.unit)
        .collect();
    if !active.contains(&units::stack_unit(stack)) {
        return Ok(Stopped(Vec::new()));
    }
    let _ = ctx.out.progress(&format!("stopping {}", active.join(", ")));
    let jobs = Jobs::new(JobKind::Stop, active.clone(), installed.required_units());
    systemd.run_jobs(&jobs, &mut ctx.progress()).await?;
    Ok(Stopped(active))
}

/// Starts what `stop_with_dependents` stopped, and waits until it is ready.
async fn start_again(ctx: &Context, stopped: Stopped) -> Result<()> {
    if stopped.0.is_empty() {
        return Ok(());
    }
    let systemd = Systemd::connect(ctx.mode).await?;
    let installed = ctx.unit_dir().installed();
    let jobs = Jobs::new(JobKind::Start, stopped.0, installed.required_units());
    systemd.run_jobs(&jobs, &mut ctx.progress()).await?;
    Ok(())
}

async fn engine() -> Result<Engine> {
    let engine = Engine::connect()?;
    engine.version().await?;
    Ok(engine)
}

#[derive(Serialize)]
struct BackedUp {
    #[serde(flatten)]
    written: Written,
    /// Older archives of the stack removed for `--keep`.
    pruned: Vec<PathBuf>,
    /// The stack's secrets sealed with this host's key: not in the archive, and no copy of
    /// /etc carries them to another host.
    encrypted_secrets: Vec<String>,
}

/// Images of databases whose files, copied while the server writes, may not restore.
const DATABASE_IMAGES: [&str; 10] = [
    "postgres",
    "postgis",
    "pgvector",
    "timescaledb",
    "mysql",
    "mariadb",
    "mongo",
    "cockroach",
    "clickhouse",
    "influxdb",
];

/// A live backup of a running database without a dump hook copies its files mid-write: say
/// what that risks and what to do instead (the copy is still made: it is better than none).
fn live_databases(stack: &Stack) -> Diagnostics {
    let mut warnings = Diagnostics::default();
    if stack.backup.mode != BackupMode::Live {
        return warnings;
    }
    for service in stack
        .services
        .iter()
        .filter(|s| stack.running.contains(&s.name))
        .filter(|s| !stack.backup.hooks.iter().any(|h| h.service == s.name))
    {
        let Some(image) = &service.image else {
            continue;
        };
        // The repository's last path component, without tag or digest.
        let name = image.rsplit('/').next().unwrap_or(image);
        let name = name.split([':', '@']).next().unwrap_or(name);
        if DATABASE_IMAGES.iter().any(|db| name.contains(db)) {
            warnings.push(
                Diagnostic::warning(
                    stack.compose_file.clone(),
                    format!(
                        "service {} ({image}) is a database whose files this live backup copies while it writes: the copy may not restore",
                        service.name
                    ),
                )
                .at_line(Some(service.line))
                .hint(format!(
                    "add an x-composectl backup.pre hook with its dump tool for service {} (pg_dump, mysqldump, mongodump), or set backup.mode: stopped",
                    service.name
                )),
            );
        }
    }
    warnings
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
    let dest = to
        .or_else(|| root.settings.backup_dir.clone())
        .unwrap_or_else(|| ctx.mode.backup_dir());
    let dest = std::path::absolute(&dest).map_err(anyhow::Error::from)?;
    let keep = keep.or(root.settings.backup_keep);
    ctx.out.diagnostics(&live_databases(stack));
    let backed_up = block_on(async {
        let engine = engine().await?;
        let mut archive = Backup::new(&dest)?;
        let _ = ctx
            .out
            .progress(&format!("{name}: running the backup hooks"));
        archive.run_hooks(&engine, stack).await?;
        let stopped = match stack.backup.mode {
            BackupMode::Stopped => stop_with_dependents(ctx, name).await?,
            BackupMode::Live => Stopped(Vec::new()),
        };
        let written = archive
            .write(&engine, stack, &dest, |text| {
                let _ = ctx.out.progress(&format!("{name}: {text}"));
            })
            .await;
        // Started again whether or not the archive could be written.
        let started = start_again(ctx, stopped).await;
        let written = written?;
        started?;
        let pruned = match keep {
            Some(keep) => backup::prune(&dest, name, keep)?,
            None => Vec::new(),
        };
        Ok(BackedUp {
            written,
            pruned,
            encrypted_secrets: stack.encrypted.keys().cloned().collect(),
        })
    })?;
    Ok(Box::new(report(backed_up, |b, out| {
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
            Stopped(Vec::new())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_backup_of_a_database_without_a_dump_hook_is_warned_about() {
        let root = crate::model::select(Path::new(env!("CARGO_MANIFEST_DIR")), &[])
            .expect("the example root loads")
            .root;
        let mut database = root.stacks["database"].clone();
        // postgres has its pg_dumpall hook; qdrant is not a database of the list.
        assert!(live_databases(&database).is_empty());
        database.backup.hooks.clear();
        let warnings = live_databases(&database);
        let messages: Vec<_> = warnings.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "service postgres (pgvector/pgvector:pg16) is a database whose files this live backup copies while it writes: the copy may not restore"
            ]
        );
        database.backup.mode = BackupMode::Stopped;
        assert!(live_databases(&database).is_empty());
    }
}
