//! Writing files so that readers (systemd, compose, other composectl processes) see the old or
//! the new contents, never a part, with the modes composectl means whatever the umask.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Directories composectl creates: readable by all (what is private is the files in them).
pub const DIR_MODE: u32 = 0o755;

/// Writes a regular file with `mode` by rename, so readers see the old or the new contents.
pub fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let dir = path.parent().context("file without a directory")?;
    create_dirs(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".composectl-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot change the mode of {}", path.display()))?;
    temp.write_all(contents.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Creates `dir` and its missing parents readable by all, whatever the umask.
pub fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("cannot create {}", dir.display()));
        }
        _ => {}
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("cannot change the mode of {}", dir.display()))
}
