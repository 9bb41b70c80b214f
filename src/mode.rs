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

    /// `$var` when set and not empty, as the XDG base directory spec reads it, else `default`.
    fn xdg(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map_or_else(default, PathBuf::from)
    }

    fn home() -> PathBuf {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
    }

    fn config_home() -> PathBuf {
        Self::xdg("XDG_CONFIG_HOME", || Self::home().join(".config"))
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

    /// What composectl keeps between runs (pinned images): `/var/lib/composectl` (the template's
    /// StateDirectory=), or `${XDG_STATE_HOME:-~/.local/state}/composectl`.
    pub fn state_dir(self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/var/lib/composectl"),
            Mode::User => std::env::var_os("XDG_STATE_HOME")
                .filter(|v| !v.is_empty())
                .map_or_else(
                    || {
                        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                            .join(".local/state")
                    },
                    PathBuf::from,
                )
                .join("composectl"),
        }
    }

    /// Where `composectl backup` writes unless told otherwise.
    pub fn backup_dir(self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/var/backups/composectl"),
            Mode::User => self.state_dir().join("backups"),
        }
    }

    /// Where running supervisors keep their sockets and what they applied: the template's
    /// `RuntimeDirectory=composectl/%i` lives below it (`/run/composectl`, or
    /// `$XDG_RUNTIME_DIR/composectl`).
    pub fn runtime_dir(self) -> PathBuf {
        match self {
            Mode::System => PathBuf::from("/run/composectl"),
            Mode::User => Self::xdg("XDG_RUNTIME_DIR", || {
                PathBuf::from(format!("/run/user/{}", nix::unistd::getuid()))
            })
            .join("composectl"),
        }
    }

    pub fn default_target(self) -> &'static str {
        match self {
            Mode::System => "multi-user.target",
            Mode::User => "default.target",
        }
    }
}
