//! What composectl keeps about a stack outside its root, in the mode's state directory
//! (`/var/lib/composectl/stacks/STACK/`): the images an update rolled back to.
//!
//! A rollback pins each service to the image it ran before, by image ID, in `pinned.yaml`: a
//! compose override file every `compose up` of the stack adds with `--file`, so a restart (or a
//! reboot) keeps the old image even though its tag has moved, until the next update that
//! becomes ready. Image IDs rather than registry digests: they name exactly the image that ran,
//! locally built or imported images have no registry digest, and a running container keeps its
//! image from being pruned.
//!
//! An update first writes `rollback.yaml` (what runs now), then removes `pinned.yaml`, then
//! recreates what changed. Ready: `rollback.yaml` goes. Not ready: it is renamed to
//! `pinned.yaml` and the stack brought back on it. Each step is one rename or unlink, so a
//! supervisor killed in the middle finds `rollback.yaml` when it starts again and rolls back
//! (`recover`) rather than start on images that were never seen ready.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::yaml;
use crate::mode::Mode;

const PINNED: &str = "pinned.yaml";
const ROLLBACK: &str = "rollback.yaml";
const NOTIFIED: &str = "notified";

pub struct StackState {
    dir: PathBuf,
    stack: String,
}

impl StackState {
    pub fn new(mode: Mode, stack: &str) -> StackState {
        StackState {
            dir: mode.state_dir().join("stacks").join(stack),
            stack: stack.to_string(),
        }
    }

    /// The override file pinning the stack's images, when there is one.
    pub fn pinned(&self) -> Option<PathBuf> {
        let path = self.dir.join(PINNED);
        path.is_file().then_some(path)
    }

    /// Whether the unit state entered at `since_usec` (its StateChangeTimestamp) was not
    /// notified yet, recording it: systemd may start the notifier twice for one failed state.
    pub fn first_notice(&self, since_usec: u64) -> Result<bool> {
        let path = self.dir.join(NOTIFIED);
        let stamp = since_usec.to_string();
        if fs::read_to_string(&path).is_ok_and(|last| last.trim() == stamp) {
            return Ok(false);
        }
        crate::files::write_atomically(&path, &stamp, 0o600)?;
        Ok(true)
    }

    /// Service → image ID the stack is pinned to (empty when it is not).
    pub fn pins(&self) -> BTreeMap<String, String> {
        read_pins(&self.dir.join(PINNED))
    }

    /// Before an update: remembers `images` (service → image ID, what runs now) to roll back
    /// to, then lets the tags float.
    pub fn begin_update(&self, images: &BTreeMap<String, String>) -> Result<()> {
        let mut text = format!(
            "# Written by composectl: the images of stack {} before an update that did not become\n\
             # ready. compose reads it as an override file; the next update that becomes ready removes it.\n\
             services:\n",
            self.stack
        );
        for (service, image) in images {
            // Quoted: a service named `on` or `1` must stay a string key.
            text.push_str(&format!(
                "  {}:\n    image: {}\n",
                serde_json::Value::from(service.as_str()),
                serde_json::Value::from(image.as_str())
            ));
        }
        crate::files::write_atomically(&self.dir.join(ROLLBACK), &text, 0o644)?;
        remove(&self.dir.join(PINNED))
    }

    /// The update became ready: its images stay, unpinned.
    pub fn commit_update(&self) -> Result<()> {
        remove(&self.dir.join(ROLLBACK))
    }

    /// The update did not become ready: pins the images it replaced. False when no update was
    /// under way.
    pub fn roll_back(&self) -> Result<bool> {
        let rollback = self.dir.join(ROLLBACK);
        match fs::rename(&rollback, self.dir.join(PINNED)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot rename {}", rollback.display())),
        }
    }

    /// Drops the pins, so the stack's next start uses what its tags name now.
    pub fn unpin(&self) -> Result<()> {
        remove(&self.dir.join(PINNED))
    }
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The `services.NAME.image` entries of a pin file written by `begin_update`.
fn read_pins(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let Ok(Some(doc)) = yaml::parse(&text) else {
        return BTreeMap::new();
    };
    let Some(services) = yaml::get(&doc, "services") else {
        return BTreeMap::new();
    };
    yaml::entries(services.value)
        .into_iter()
        .filter_map(|service| {
            let image = yaml::get(service.value, "image")?;
            Some((
                service.key.into_owned(),
                yaml::scalar_text(image.value)?.into_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) -> StackState {
        StackState {
            dir: dir.join("stacks/db"),
            stack: "db".into(),
        }
    }

    #[test]
    fn an_update_rolls_back_to_pins_and_a_ready_one_unpins() {
        let temp = tempfile::tempdir().unwrap();
        let state = state(temp.path());
        let images = BTreeMap::from([
            ("on".to_string(), "sha256:aaa".to_string()),
            ("web".to_string(), "sha256:bbb".to_string()),
        ]);
        assert!(state.pinned().is_none());
        assert!(!state.roll_back().unwrap());

        state.begin_update(&images).unwrap();
        assert!(state.pinned().is_none());
        assert!(state.roll_back().unwrap());
        assert_eq!(state.pins(), images);
        assert!(state.pinned().is_some());

        // The next update lets the tags float again, and once ready there is nothing to undo.
        state.begin_update(&images).unwrap();
        assert!(state.pins().is_empty());
        state.commit_update().unwrap();
        assert!(!state.roll_back().unwrap());
        assert!(state.pinned().is_none());
    }
}
