//! System or user mode: which manager, which unit directory, which default root.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    System,
    User,
}

impl Mode {
    /// root manages the system's stacks; everyone else their own.
    pub fn from_euid() -> Mode {
        if nix::unistd::geteuid().is_root() {
            Mode::System
        } else {
            Mode::User
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Mode::System => "system",
            Mode::User => "user",
        }
    }

    fn config_home() -> PathBuf {
        match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config"),
        }
    }

    pub fn default_root(self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/etc/composectl"),
            Mode::User => Self::config_home().join("composectl"),
        }
    }

    /// Where administrators' (not packages') units live.
    pub fn unit_dir(self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/etc/systemd/system"),
            Mode::User => Self::config_home().join("systemd/user"),
        }
    }

    pub fn default_target(self) -> &'static str {
        match self {
            Mode::System => "multi-user.target",
            Mode::User => "default.target",
        }
    }
}
