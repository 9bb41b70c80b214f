//! The unit directory as composectl writes it, with one atomic step per change.
//!
//! systemd refuses unit files that are symlinks into a private directory, but follows symlinked
//! drop-ins. So the shared units (the same for every root of a mode) are regular files, and every
//! drop-in composectl owns is a symlink `X.d/NN-composectl.conf ->
//! ../.composectl/current/X.d/NN-composectl.conf`. A change writes a complete new generation
//! under `.composectl/`, then replaces the `current` link with one rename: before it systemd sees
//! the old set, after it the new one, whatever kills composectl in between. A drop-in that is
//! added or removed points at a placeholder (a comment, no settings) in the generation where it
//! does not exist, because systemd's install logic stumbles over dangling drop-in links.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::files::{DIR_MODE, create_dirs, write_atomically};
use crate::units::{self, UnitFile};

const STATE_DIR: &str = ".composectl";
const CURRENT: &str = "current";
const PLACEHOLDER: &str = "# composectl: not installed in this generation\n";
/// Unit files hold no secrets, and systemd warns about world-inaccessible ones on every reload.
pub const FILE_MODE: u32 = 0o644;

pub struct UnitDir {
    dir: PathBuf,
}

/// A setting in a unit file: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Holds the unit directory's lock: one composectl changes it at a time.
pub struct Lock {
    _held: Flock<File>,
}

impl UnitDir {
    pub fn new(dir: impl Into<PathBuf>) -> UnitDir {
        UnitDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> PathBuf {
        self.dir.join(STATE_DIR)
    }

    fn current(&self) -> PathBuf {
        self.state().join(CURRENT)
    }

    /// Takes the lock and finishes or discards whatever an interrupted composectl left.
    pub fn lock(&self) -> Result<Lock> {
        create_dirs(&self.state())?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.state().join("lock"))
            .with_context(|| format!("cannot open the lock in {}", self.state().display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("cannot lock the unit directory")?;
        self.clean_up()?;
        Ok(Lock { _held: lock })
    }

    /// composectl's drop-ins as installed, by path relative to the unit directory.
    pub fn installed_dropins(&self) -> BTreeMap<PathBuf, String> {
        let mut found = BTreeMap::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(".d") || name.starts_with('.') {
                continue;
            }
            for file in [units::DROPIN_NAME, units::STACK_DROPIN_NAME] {
                let relative = Path::new(name).join(file);
                if let Ok(contents) = fs::read_to_string(self.dir.join(&relative))
                    && contents != PLACEHOLDER
                {
                    found.insert(relative, contents);
                }
            }
        }
        found
    }

    /// The `TimeoutStopSec=` (or `TimeoutSec=`) an operator's own drop-in sets for `stack`'s unit
    /// and that takes effect, if one does. systemd reads the drop-ins of `compose@.service.d`
    /// and `compose@STACK.service.d` in the order of their file names, a later assignment
    /// winning and a file of the stack's directory replacing the template's of the same name; so
    /// an `override.conf` (what `systemctl edit` writes) wins over composectl's `NN-composectl`.
    pub fn operator_stop_timeout(&self, stack: &str) -> Option<Assignment> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for unit in [units::TEMPLATE_UNIT.to_string(), units::stack_unit(stack)] {
            let Ok(entries) = fs::read_dir(self.dir.join(format!("{unit}.d"))) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".conf") {
                    files.insert(name, entry.path());
                }
            }
        }
        let mut effective = None;
        for (name, path) in files {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let ours = name == units::DROPIN_NAME || name == units::STACK_DROPIN_NAME;
            for (index, line) in text.lines().enumerate() {
                let Some((key, value)) = line.trim().split_once('=') else {
                    continue;
                };
                if matches!(key.trim(), "TimeoutStopSec" | "TimeoutSec") {
                    effective = (!ours).then(|| Assignment {
                        file: path.clone(),
                        line: index + 1,
                        key: key.trim().to_string(),
                        value: value.trim().to_string(),
                    });
                }
            }
        }
        effective
    }

    /// What composectl installed here.
    pub fn installed(&self) -> Installed {
        Installed {
            dropins: self.installed_dropins(),
        }
    }

    /// Makes the directory hold exactly `shared` and `dropins` of composectl's files; returns the
    /// paths that changed. Needs the lock.
    pub fn apply(
        &self,
        _lock: &Lock,
        shared: &[UnitFile],
        dropins: &BTreeMap<PathBuf, String>,
    ) -> Result<Vec<PathBuf>> {
        let before = self.installed_dropins();
        let mut changed: Vec<PathBuf> = Vec::new();
        for file in shared {
            let path = self.dir.join(&file.path);
            if fs::read_to_string(&path).ok().as_deref() != Some(file.contents.as_str()) {
                write_atomically(&path, &file.contents, FILE_MODE)?;
                changed.push(file.path.clone());
            }
        }
        let removed: Vec<&PathBuf> = before
            .keys()
            .filter(|p| !dropins.contains_key(*p))
            .collect();
        changed.extend(removed.iter().map(|p| (*p).clone()));
        changed.extend(
            dropins
                .iter()
                .filter(|(p, c)| before.get(*p) != Some(c))
                .map(|(p, _)| p.clone()),
        );
        if dropins == &before {
            return Ok(changed);
        }

        let generation = self.new_generation()?;
        for (path, contents) in dropins {
            write_new(&generation.join(path), contents)?;
        }
        for path in &removed {
            write_new(&generation.join(path), PLACEHOLDER)?;
        }
        sync_dir(&generation)?;

        // Links for new drop-ins first, each pointing at a placeholder in the current generation.
        let current = self.current_generation()?;
        for path in dropins.keys().filter(|p| !before.contains_key(*p)) {
            let old = current.join(path);
            if !old.exists() {
                write_new(&old, PLACEHOLDER)?;
            }
            self.link(path)?;
        }

        // The commit point.
        let name = generation.file_name().context("generation name")?;
        let staged = self.state().join(format!("{CURRENT}.new"));
        let _ = fs::remove_file(&staged);
        symlink(name, &staged).with_context(|| format!("cannot create {}", staged.display()))?;
        fs::rename(&staged, self.current())
            .with_context(|| format!("cannot replace {}", self.current().display()))?;
        sync_dir(&self.state())?;

        self.clean_up()?;
        Ok(changed)
    }

    /// Removes every file composectl wrote, when nothing is installed any more.
    pub fn remove_all(&self, _lock: &Lock) -> Result<()> {
        for name in units::SHARED_UNITS {
            remove_if_exists(&self.dir.join(name))?;
        }
        fs::remove_dir_all(self.state())
            .with_context(|| format!("cannot remove {}", self.state().display()))?;
        Ok(())
    }

    fn new_generation(&self) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix("gen-")
            .tempdir_in(self.state())
            .with_context(|| format!("cannot write in {}", self.state().display()))?
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("cannot change the mode of {}", dir.display()))?;
        Ok(dir)
    }

    /// The generation `current` names, creating an empty one on first use.
    fn current_generation(&self) -> Result<PathBuf> {
        match fs::read_link(self.current()) {
            Ok(target) => Ok(self.state().join(target)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let empty = self.new_generation()?;
                let name = empty.file_name().context("generation name")?;
                symlink(name, self.current())
                    .with_context(|| format!("cannot create {}", self.current().display()))?;
                Ok(empty)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.current().display())),
        }
    }

    fn link(&self, relative: &Path) -> Result<()> {
        let path = self.dir.join(relative);
        let parent = path.parent().context("drop-in without a directory")?;
        create_dirs(parent)?;
        let target = Path::new("..").join(STATE_DIR).join(CURRENT).join(relative);
        let staged = parent.join(format!(".{}.new", units::DROPIN_NAME));
        let _ = fs::remove_file(&staged);
        symlink(&target, &staged).with_context(|| format!("cannot create {}", staged.display()))?;
        fs::rename(&staged, &path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(())
    }

    /// Drops generations other than the current one, links to placeholders, and empty drop-in
    /// directories composectl created.
    fn clean_up(&self) -> Result<()> {
        let current = fs::read_link(self.current()).ok();
        if let Ok(entries) = fs::read_dir(self.state()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let is_generation = name.to_str().is_some_and(|n| n.starts_with("gen-"));
                if is_generation && current.as_deref() != Some(Path::new(&name)) {
                    fs::remove_dir_all(entry.path())
                        .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                }
            }
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.extension().is_none_or(|e| e != "d") || !dir.is_dir() {
                continue;
            }
            for file in [units::DROPIN_NAME, units::STACK_DROPIN_NAME] {
                let link = dir.join(file);
                let is_ours = fs::read_link(&link)
                    .is_ok_and(|t| t.starts_with(Path::new("..").join(STATE_DIR)));
                let is_placeholder = fs::read_to_string(&link).map_or(true, |c| c == PLACEHOLDER);
                if is_ours && is_placeholder {
                    remove_if_exists(&link)?;
                }
            }
            let _ = fs::remove_file(dir.join(format!(".{}.new", units::DROPIN_NAME)));
            // Only empties: a user's own override.conf keeps its directory.
            let _ = fs::remove_dir(&dir);
        }
        Ok(())
    }
}

/// composectl's drop-ins in a unit directory, and what they say about the stacks.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// By path relative to the unit directory.
    pub dropins: BTreeMap<PathBuf, String>,
}

impl Installed {
    /// (stack, its drop-in) for every installed stack.
    fn stack_dropins(&self) -> impl Iterator<Item = (&str, &String)> {
        self.dropins
            .iter()
            .filter_map(|(path, contents)| Some((units::stack_of_dropin(path)?, contents)))
    }

    /// Stacks with a drop-in installed.
    pub fn stacks(&self) -> BTreeSet<String> {
        self.stack_dropins()
            .map(|(stack, _)| stack.to_string())
            .collect()
    }

    pub fn contains(&self, stack: &str) -> bool {
        self.stack_dropins().any(|(name, _)| name == stack)
    }

    /// Installed stacks that require `stack`.
    pub fn dependents(&self, stack: &str) -> Vec<String> {
        self.stack_dropins()
            .filter(|(_, contents)| units::required_stacks(contents).iter().any(|s| s == stack))
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Each installed stack's unit and the units of the stacks it requires.
    pub fn required_units(&self) -> BTreeMap<String, Vec<String>> {
        self.stack_dropins()
            .map(|(stack, contents)| {
                let required = units::required_stacks(contents);
                (
                    units::stack_unit(stack),
                    required.iter().map(|s| units::stack_unit(s)).collect(),
                )
            })
            .collect()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

fn write_new(path: &Path, contents: &str) -> Result<()> {
    let parent = path.parent().context("file without a directory")?;
    create_dirs(parent)?;
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Explicitly: the mode at creation is subject to the umask.
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .with_context(|| format!("cannot change the mode of {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropins(pairs: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        pairs
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect()
    }

    #[test]
    fn generations_replace_the_drop_in_set_and_keep_user_files() {
        let temp = tempfile::tempdir().unwrap();
        let dir = UnitDir::new(temp.path());
        let shared = [UnitFile {
            path: "compose@.service".into(),
            contents: "[Unit]\n".into(),
        }];
        let lock = dir.lock().unwrap();
        let first = dropins(&[
            ("compose@a.service.d/20-composectl.conf", "A1"),
            ("compose@b.service.d/20-composectl.conf", "B1"),
        ]);
        dir.apply(&lock, &shared, &first).unwrap();
        assert_eq!(dir.installed_dropins(), first);
        for path in ["compose@.service", "compose@a.service.d/20-composectl.conf"] {
            let mode = fs::metadata(temp.path().join(path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, FILE_MODE, "{path}");
        }
        fs::write(
            temp.path().join("compose@a.service.d/override.conf"),
            "[Service]\n",
        )
        .unwrap();

        let second = dropins(&[
            ("compose@b.service.d/20-composectl.conf", "B2"),
            ("compose@c.service.d/20-composectl.conf", "C2"),
        ]);
        let changed = dir.apply(&lock, &shared, &second).unwrap();
        assert_eq!(dir.installed_dropins(), second);
        assert_eq!(changed.len(), 3, "{changed:?}");
        assert_eq!(
            dir.installed().stacks().into_iter().collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(
            temp.path()
                .join("compose@a.service.d/override.conf")
                .exists()
        );
        assert!(
            !temp
                .path()
                .join("compose@a.service.d/20-composectl.conf")
                .exists()
        );
        let generations = fs::read_dir(temp.path().join(STATE_DIR))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
            .count();
        assert_eq!(generations, 1);

        dir.apply(&lock, &shared, &BTreeMap::new()).unwrap();
        dir.remove_all(&lock).unwrap();
        let left: Vec<_> = fs::read_dir(temp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            ["compose@a.service.d"],
            "only the user's own drop-in stays"
        );
    }
}
