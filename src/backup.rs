//! Backups of a stack: one tar archive (mode 0600) holding
//! - `hooks/OUTPUT`, what each declared hook printed (a database dump), run first;
//! - `volumes/N.tar`, each named volume of the project as the engine archives it;
//! - `paths/N.tar`, each host path the stack marks (`x-composectl.backup.paths`);
//! - `composectl-backup.json`, the manifest, last: what is where, the volumes' names, drivers,
//!   options and compose's labels (so a restore recreates them as compose expects them).
//!
//! Volumes and paths are read and written through the engine's archive endpoint, with a helper
//! container that mounts one of them and is never started: no tar in any image, no access to
//! /var/lib/docker needed, ownership and modes kept. Uncompressed, so deduplicating backup tools
//! (restic, borg) store unchanged data once. Each member is streamed into the archive as it
//! comes, its header written once its size is known, so a backup needs no more room than its
//! archive; the archive grows under a temporary name beside its destination and appears by
//! rename, whole or not at all.
//!
//! `take` is a backup as `composectl backup` takes it (hooks, the stack stopped meanwhile for
//! `mode: stopped`, pruning), shared with `update` for a stack with `update.backup`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::config::meta::BackupMode;
use crate::context::Context;
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{Engine, Source, VolumeInfo};
use crate::model::{Root, Stack};
use crate::systemd::{JobKind, Jobs, Systemd};
use crate::units;

const MANIFEST: &str = "composectl-backup.json";
const FORMAT: u32 = 1;
/// tar's block: headers are one, data is padded to a whole number of them.
const BLOCK: usize = 512;
/// Read and sent in pieces of this size: volumes may be far larger than memory.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub stack: String,
    /// UTC, RFC 3339.
    pub created: String,
    pub composectl: String,
    pub volumes: Vec<ArchivedVolume>,
    pub paths: Vec<ArchivedPath>,
    pub hooks: Vec<ArchivedHook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedVolume {
    #[serde(flatten)]
    pub volume: VolumeInfo,
    pub member: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedPath {
    pub path: PathBuf,
    pub member: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedHook {
    pub service: String,
    pub run: String,
    pub member: String,
    pub bytes: u64,
}

/// A written archive.
#[derive(Debug, Serialize)]
pub struct Written {
    pub archive: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    pub manifest: Manifest,
}

/// A backup being written: the archive grows member by member in a temporary file beside its
/// destination, and appears under its name only once complete.
pub struct Backup {
    file: tempfile::NamedTempFile,
    hooks: Vec<ArchivedHook>,
    started: Instant,
}

impl Backup {
    pub fn new(dest: &Path) -> Result<Backup> {
        crate::files::create_dirs(dest)?;
        // Created 0600: the archive holds the stack's data.
        let file = tempfile::Builder::new()
            .prefix(".composectl-backup-")
            .suffix(".partial")
            .tempfile_in(dest)
            .with_context(|| format!("cannot write in {}", dest.display()))?;
        Ok(Backup {
            file,
            hooks: Vec::new(),
            started: Instant::now(),
        })
    }

    /// Starts a member whose size is not known yet: a header block to fill in by `end`.
    fn begin(&mut self) -> Result<u64> {
        let file = self.file.as_file_mut();
        let at = file.stream_position()?;
        file.write_all(&[0; BLOCK])?;
        Ok(at)
    }

    /// Ends the member begun at `at`: pads its data to a block and writes its header, with the
    /// size it has now. Returns the size.
    fn end(&mut self, at: u64, name: &str) -> Result<u64> {
        let block = BLOCK as u64;
        let file = self.file.as_file_mut();
        let size = file.stream_position()? - at - block;
        let padding = (block - size % block) % block;
        file.write_all(&vec![0; usize::try_from(padding)?])?;
        let resume = file.stream_position()?;
        let mut header = tar::Header::new_gnu();
        header.set_path(name)?;
        header.set_size(size);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        );
        header.set_cksum();
        file.seek(SeekFrom::Start(at))?;
        file.write_all(header.as_bytes())?;
        file.seek(SeekFrom::Start(resume))?;
        Ok(size)
    }

    /// Runs the stack's hooks, each in a running container of its service, their output
    /// straight into the archive.
    pub async fn run_hooks(&mut self, engine: &Engine, stack: &Stack) -> Result<()> {
        if stack.backup.hooks.is_empty() {
            return Ok(());
        }
        let containers = engine.containers(Some(&stack.name)).await?;
        for hook in &stack.backup.hooks {
            let Some(container) = containers
                .iter()
                .find(|c| c.service == hook.service && c.running)
            else {
                bail!(
                    "service {} of stack {} is not running: its backup hook runs in its container (composectl start {})",
                    hook.service,
                    stack.name,
                    stack.name
                );
            };
            let at = self.begin()?;
            let command = vec!["sh".to_string(), "-c".to_string(), hook.run.clone()];
            let (code, stderr) = engine
                .exec_into(
                    &container.id,
                    command,
                    self.file.as_file_mut(),
                    hook.timeout,
                )
                .await
                .with_context(|| {
                    format!("backup hook `{}` in service {}", hook.run, hook.service)
                })?;
            if code != 0 {
                let said: Vec<String> = stderr.iter().map(|l| format!("\n    {l}")).collect();
                bail!(
                    "backup hook `{}` in service {} exited with code {code}; nothing was written{}",
                    hook.run,
                    hook.service,
                    said.concat()
                );
            }
            let member = format!("hooks/{}", hook.output);
            let bytes = self.end(at, &member)?;
            self.hooks.push(ArchivedHook {
                service: hook.service.clone(),
                run: hook.run.clone(),
                member,
                bytes,
            });
        }
        Ok(())
    }

    /// Archives the stack's volumes and marked paths, adds the manifest and puts the archive
    /// into `dest`.
    pub async fn write(
        mut self,
        engine: &Engine,
        stack: &Stack,
        dest: &Path,
        mut progress: impl FnMut(&str),
    ) -> Result<Written> {
        let mut volumes = Vec::new();
        for (index, volume) in engine.volumes(&stack.name).await?.into_iter().enumerate() {
            progress(&format!("archiving volume {}", volume.name));
            let member = format!("volumes/{index}.tar");
            let bytes = self
                .download(engine, Source::Volume(&volume.name), &member)
                .await?;
            volumes.push(ArchivedVolume {
                volume,
                member,
                bytes,
            });
        }
        let mut paths = Vec::new();
        for (index, marked) in stack.backup.paths.iter().enumerate() {
            let path = stack.dir.join(&marked.value);
            let path = fs::canonicalize(&path)
                .ok()
                .filter(|p| p.is_dir())
                .with_context(|| {
                    format!(
                        "{}:{}: backup path {} is not a directory: mark the directory that holds it",
                        stack.compose_file.display(),
                        marked.line,
                        path.display()
                    )
                })?;
            progress(&format!("archiving {}", path.display()));
            let member = format!("paths/{index}.tar");
            let bytes = self.download(engine, Source::Path(&path), &member).await?;
            paths.push(ArchivedPath {
                path,
                member,
                bytes,
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let manifest = Manifest {
            format: FORMAT,
            stack: stack.name.clone(),
            created: utc(now, true),
            composectl: env!("CARGO_PKG_VERSION").to_string(),
            volumes,
            paths,
            hooks: std::mem::take(&mut self.hooks),
        };
        let at = self.begin()?;
        self.file
            .as_file_mut()
            .write_all(&serde_json::to_vec_pretty(&manifest)?)?;
        self.end(at, MANIFEST)?;
        // The end of the archive: two empty blocks.
        let file = self.file.as_file_mut();
        file.write_all(&[0; 2 * BLOCK])?;
        file.sync_all()?;
        let archive = dest.join(format!("{}-{}.tar", stack.name, utc(now, false)));
        self.file
            .persist(&archive)
            .with_context(|| format!("cannot write {}", archive.display()))?;
        Ok(Written {
            bytes: fs::metadata(&archive)?.len(),
            archive,
            seconds: self.started.elapsed().as_secs_f64(),
            manifest,
        })
    }

    /// The engine's archive of `source`, as the member `name`; returns its size.
    async fn download(&mut self, engine: &Engine, source: Source<'_>, name: &str) -> Result<u64> {
        let helper = engine.create_helper(source, true).await?;
        let at = self.begin()?;
        let mut stream = engine.read_helper(&helper);
        let file = self.file.as_file_mut();
        let copied = async {
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?)?;
            }
            anyhow::Ok(())
        }
        .await;
        engine.remove_helper(&helper).await?;
        copied?;
        self.end(at, name)
    }
}

/// A backup as `composectl backup STACK` takes it, which `update` takes too for a stack with
/// `update.backup`.
#[derive(Debug, Serialize)]
pub struct Taken {
    #[serde(flatten)]
    pub written: Written,
    /// Older archives of the stack removed for `--keep`.
    pub pruned: Vec<PathBuf>,
    /// The stack's secrets sealed with this host's key: not in the archive, and no copy of
    /// /etc carries them to another host.
    pub encrypted_secrets: Vec<String>,
}

/// Backs `stack` up: its hooks, then (stopped with what requires it, for `mode: stopped`) its
/// volumes and paths, into `to`, else `[backup] dir`, else the mode's backup directory; then
/// keeps the newest `keep` (else `[backup] keep`) archives of the stack.
pub async fn take(
    ctx: &Context,
    root: &Root,
    stack: &Stack,
    to: Option<PathBuf>,
    keep: Option<usize>,
) -> Result<Taken> {
    let name = &stack.name;
    let dest = to
        .or_else(|| root.settings.backup_dir.clone())
        .unwrap_or_else(|| ctx.mode.backup_dir());
    let dest = std::path::absolute(&dest)?;
    let keep = keep.or(root.settings.backup_keep);
    ctx.out.diagnostics(&live_databases(stack));
    let engine = Engine::connect()?;
    engine.version().await?;
    let mut archive = Backup::new(&dest)?;
    let _ = ctx
        .out
        .progress(&format!("{name}: running the backup hooks"));
    archive.run_hooks(&engine, stack).await?;
    let stopped = match stack.backup.mode {
        BackupMode::Stopped => stop_with_dependents(ctx, name).await?,
        BackupMode::Live => Stopped::default(),
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
        Some(keep) => prune(&dest, name, keep)?,
        None => Vec::new(),
    };
    Ok(Taken {
        written,
        pruned,
        encrypted_secrets: stack.encrypted.keys().cloned().collect(),
    })
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

/// The units stopped for a backup or restore, to start again afterwards.
#[derive(Default)]
pub struct Stopped(Vec<String>);

/// Stops `stack` and the active stacks that require it, directly or not (they would stop with
/// it anyway); nothing when it is not active.
pub async fn stop_with_dependents(ctx: &Context, stack: &str) -> Result<Stopped> {
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
        return Ok(Stopped::default());
    }
    let _ = ctx.out.progress(&format!("stopping {}", active.join(", ")));
    let jobs = Jobs::new(JobKind::Stop, active.clone(), installed.required_units());
    systemd.run_jobs(&jobs, &mut ctx.progress()).await?;
    Ok(Stopped(active))
}

/// Starts what `stop_with_dependents` stopped, and waits until it is ready.
pub async fn start_again(ctx: &Context, stopped: Stopped) -> Result<()> {
    if stopped.0.is_empty() {
        return Ok(());
    }
    let systemd = Systemd::connect(ctx.mode).await?;
    let installed = ctx.unit_dir().installed();
    let jobs = Jobs::new(JobKind::Start, stopped.0, installed.required_units());
    systemd.run_jobs(&jobs, &mut ctx.progress()).await?;
    Ok(())
}

/// An archive to restore: its manifest, and where each member's data is in the file.
pub struct Archive {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Member name → (offset, size).
    members: BTreeMap<String, (u64, u64)>,
}

/// Reads an archive's manifest and finds its members.
pub fn open(archive: &Path) -> Result<Archive> {
    let file = File::open(archive).with_context(|| format!("cannot read {}", archive.display()))?;
    let mut members = BTreeMap::new();
    let mut manifest = None;
    let not_a_backup = || anyhow!("{} is not a composectl backup", archive.display());
    let mut tar = tar::Archive::new(file);
    // Seeking past each member's data: the manifest is last.
    for entry in tar.entries_with_seek().map_err(|_| not_a_backup())? {
        let mut entry = entry.map_err(|_| not_a_backup())?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name == MANIFEST {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            manifest =
                Some(serde_json::from_str::<Manifest>(&text).with_context(|| {
                    format!("{}: its manifest cannot be read", archive.display())
                })?);
        } else {
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    let manifest = manifest.ok_or_else(not_a_backup)?;
    if manifest.format != FORMAT {
        bail!(
            "{}: backup format {} is not one this composectl reads ({FORMAT})",
            archive.display(),
            manifest.format
        );
    }
    Ok(Archive {
        path: archive.to_path_buf(),
        manifest,
        members,
    })
}

/// What a restore put back.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub volumes: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub seconds: f64,
}

/// Puts an archive's volumes back (each recreated empty first) and its paths (written over
/// what is there). The stack must not run.
pub async fn restore(
    engine: &Engine,
    from: &Archive,
    mut progress: impl FnMut(&str),
) -> Result<Restored> {
    let started = Instant::now();
    let (archive, manifest) = (from.path.as_path(), &from.manifest);
    let member = |name: &str| {
        from.members
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("{}: {name} is missing", archive.display()))
    };
    for volume in &manifest.volumes {
        progress(&format!("restoring volume {}", volume.volume.name));
        let (offset, size) = member(&volume.member)?;
        engine.recreate_volume(&volume.volume).await?;
        upload(
            engine,
            Source::Volume(&volume.volume.name),
            archive,
            offset,
            size,
        )
        .await?;
    }
    for path in &manifest.paths {
        progress(&format!("restoring {}", path.path.display()));
        let (offset, size) = member(&path.member)?;
        crate::files::create_dirs(&path.path)?;
        upload(engine, Source::Path(&path.path), archive, offset, size).await?;
    }
    Ok(Restored {
        volumes: manifest
            .volumes
            .iter()
            .map(|v| v.volume.name.clone())
            .collect(),
        paths: manifest.paths.iter().map(|p| p.path.clone()).collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn upload(
    engine: &Engine,
    target: Source<'_>,
    archive: &Path,
    offset: u64,
    size: u64,
) -> Result<()> {
    let helper = engine.create_helper(target, false).await?;
    let written = match region(archive, offset, size) {
        Ok(data) => engine.write_helper(&helper, data).await,
        Err(e) => Err(e),
    };
    engine.remove_helper(&helper).await?;
    written
}

/// `size` bytes of `path` from `offset` on, read in chunks as they are sent.
fn region(
    path: &Path,
    offset: u64,
    size: u64,
) -> Result<impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(futures_util::stream::unfold(
        Some(file.take(size)),
        |reader| async move {
            let mut reader = reader?;
            let mut chunk = vec![0u8; CHUNK];
            match reader.read(&mut chunk) {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(bytes::Bytes::from(chunk)), Some(reader)))
                }
                // Once: the engine stops reading at the first error.
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

/// Removes all but the newest `keep` archives of `stack` in `dir`; returns what went.
pub fn prune(dir: &Path, stack: &str, keep: usize) -> Result<Vec<PathBuf>> {
    let mut archives: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| {
                    n.strip_prefix(stack)?
                        .strip_prefix('-')?
                        .strip_suffix(".tar")
                })
                .is_some_and(is_stamp)
        })
        .collect();
    // The stamps sort as the times they name.
    archives.sort();
    let remove = archives.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = archives.into_iter().take(remove).collect();
    for path in &removed {
        fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(removed)
}

/// `20261127T174400Z`, as `utc(_, false)` writes it.
fn is_stamp(text: &str) -> bool {
    text.len() == 16
        && text.chars().enumerate().all(|(i, c)| match i {
            8 => c == 'T',
            15 => c == 'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Seconds since the epoch as a UTC date and time: `2026-11-27T17:44:00Z`, or compact for
/// file names (`20261127T174400Z`).
fn utc(seconds: u64, readable: bool) -> String {
    // Days to a civil date (Howard Hinnant's algorithm), valid far beyond any backup.
    let days = i64::try_from(seconds / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    if readable {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}{month:02}{day:02}T{h:02}{m:02}{s:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_and_stamps() {
        assert_eq!(utc(0, true), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_801_440, true), "2026-11-27T17:44:00Z");
        assert_eq!(utc(951_782_400, false), "20000229T000000Z");
        assert!(is_stamp(&utc(1_795_801_440, false)));
        assert!(!is_stamp("20261127-174400Z"));
    }

    #[test]
    fn prune_keeps_the_newest_archives_of_the_stack_only() {
        let temp = tempfile::tempdir().unwrap();
        for name in [
            "db-20260101T000000Z.tar",
            "db-20260102T000000Z.tar",
            "db-20260103T000000Z.tar",
            "db-extra-20260101T000000Z.tar",
            "db-notes.tar",
        ] {
            fs::write(temp.path().join(name), "").unwrap();
        }
        let removed = prune(temp.path(), "db", 2).unwrap();
        assert_eq!(removed, [temp.path().join("db-20260101T000000Z.tar")]);
        assert!(temp.path().join("db-extra-20260101T000000Z.tar").exists());
        assert!(temp.path().join("db-notes.tar").exists());
    }

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
