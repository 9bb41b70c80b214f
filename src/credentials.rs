//! Secrets encrypted at rest with systemd's credentials (system mode).
//!
//! A declared secret (`x-composectl.secrets`) can live in systemd's encrypted credential store
//! instead of `.env.local`: `systemd-creds encrypt` seals it with the host's key (and the TPM2
//! where there is one), the stack's unit loads it with `LoadCredentialEncrypted=`, systemd
//! decrypts it into the unit's private `$CREDENTIALS_DIRECTORY` (a tmpfs under
//! `/run/credentials/`) while the unit runs, and the supervisor hands it to compose as the
//! variable of the same name. The plaintext is never written to persistent disk.
//!
//! Credentials are named `composectl.STACK.NAME` (`composectl.NAME` for a secret declared
//! `shared: true`): stack names have no dots, so no two stacks' credentials can collide, and
//! systemd's credential directory sees each stack's names only.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::config::meta::SecretSpec;

/// systemd's own directory for encrypted credentials (`LoadCredentialEncrypted=` searches it
/// from v254 on; the units name the full path, which v250 and later read).
pub const STORE: &str = "/etc/credstore.encrypted";

/// The environment variable systemd sets for a unit that loads credentials.
const DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";

/// The credential name of a stack's secret.
pub fn id(stack: &str, spec: &SecretSpec) -> String {
    if spec.shared {
        format!("composectl.{}", spec.name)
    } else {
        format!("composectl.{stack}.{}", spec.name)
    }
}

/// Where the encrypted credential `id` is stored.
pub fn path(id: &str) -> PathBuf {
    Path::new(STORE).join(id)
}

/// The declared secrets of a stack that are stored encrypted, by variable, with their
/// credential names.
pub fn stored(stack: &str, specs: &[SecretSpec]) -> BTreeMap<String, String> {
    specs
        .iter()
        .map(|spec| (spec.name.clone(), id(stack, spec)))
        .filter(|(_, id)| path(id).is_file())
        .collect()
}

/// Seals `value` as credential `id` into the store: written beside its final name and renamed,
/// so the credential is either the old one or the new one, never half of one.
pub fn encrypt(id: &str, value: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(STORE).with_context(|| format!("cannot create {STORE}"))?;
    let target = path(id);
    let partial = Path::new(STORE).join(format!(".{id}.partial"));
    if let Err(e) = seal(id, &partial, value) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // Sealed, but nobody else's business either.
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot move the credential to {}", target.display()))?;
    Ok(target)
}

/// The plaintext of credential `id` (root only: the host key is root's).
pub fn decrypt(id: &str) -> Result<String> {
    let output = Command::new("systemd-creds")
        .args(["decrypt", &format!("--name={id}")])
        .arg(path(id))
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .context("cannot run systemd-creds")?;
    if !output.status.success() {
        bail!(
            "systemd-creds decrypt {id} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("the credential is not text")
}

/// Whether this host can seal credentials: `systemd-creds` runs and the host key (or a TPM2)
/// is usable. Encrypts a probe value to stdout and decrypts nothing; root only.
pub fn usable() -> Result<()> {
    seal("composectl.probe", Path::new("-"), "probe")
}

/// `systemd-creds encrypt --name=ID - OUTPUT` with `value` on its stdin, never in its argv.
fn seal(id: &str, output: &Path, value: &str) -> Result<()> {
    let mut child = Command::new("systemd-creds")
        .args(["encrypt", &format!("--name={id}"), "-"])
        .arg(output)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run systemd-creds (systemd 250 or later)")?;
    child
        .stdin
        .take()
        .context("systemd-creds has no stdin")?
        .write_all(value.as_bytes())
        .context("cannot hand the value to systemd-creds")?;
    let done = child
        .wait_with_output()
        .context("systemd-creds did not finish")?;
    if !done.status.success() {
        bail!(
            "systemd-creds encrypt failed: {}",
            String::from_utf8_lossy(&done.stderr).trim()
        );
    }
    Ok(())
}

/// The secrets systemd decrypted for this unit, by variable: read from `$CREDENTIALS_DIRECTORY`
/// when the supervisor runs under a unit that loads them; empty anywhere else.
pub fn loaded(stack: &str, specs: &[SecretSpec]) -> BTreeMap<String, String> {
    let Some(dir) = std::env::var_os(DIRECTORY_ENV) else {
        return BTreeMap::new();
    };
    specs
        .iter()
        .filter_map(|spec| {
            let value = std::fs::read_to_string(Path::new(&dir).join(id(stack, spec))).ok()?;
            Some((spec.name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::meta::Charset;

    fn spec(name: &str, shared: bool) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            length: 32,
            charset: Charset::Alphanumeric,
            shared,
            line: 1,
        }
    }

    #[test]
    fn names_cannot_collide_between_stacks() {
        assert_eq!(id("db", &spec("PASSWORD", false)), "composectl.db.PASSWORD");
        assert_eq!(id("db", &spec("PASSWORD", true)), "composectl.PASSWORD");
        assert_eq!(
            path("composectl.db.PASSWORD"),
            Path::new("/etc/credstore.encrypted/composectl.db.PASSWORD")
        );
    }
}
