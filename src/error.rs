//! The error type every command returns, and the one mapping from errors to exit codes.

use std::process::ExitCode;

use crate::diag::{Diagnostic, Diagnostics};

/// Exit codes, as documented in the README and man page.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_ACTIVE: u8 = 3;
    /// `update --check`: some images have a newer version.
    pub const NEWER: u8 = 4;
    /// `run`: a required stack was recreated; the unit restarts on this status
    /// (RestartForceExitStatus=) without counting it a failure (SuccessExitStatus=). EX_TEMPFAIL.
    pub const RESTART: u8 = 75;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root (or the command line) is wrong; nothing was changed.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// An operation was attempted and failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// `run`: the supervisor ends so that systemd starts the stack again. Already logged.
    #[error("restarting: {0}")]
    Restart(String),
    /// Whoever read stdout went away (`composectl render | head`): not a failure.
    #[error("stdout was closed")]
    BrokenPipe,
}

impl Error {
    pub fn code(&self) -> u8 {
        match self {
            Error::Invalid(_) => exit::USAGE,
            Error::Failed(_) => exit::FAILED,
            Error::Restart(_) => exit::RESTART,
            Error::BrokenPipe => exit::OK,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::Invalid(Diagnostic::error(None, message).into())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::Failed(anyhow::anyhow!("cannot write the output: {error}"))
        }
    }
}

impl From<Diagnostics> for Error {
    fn from(diags: Diagnostics) -> Self {
        Error::Invalid(diags)
    }
}

impl From<Diagnostic> for Error {
    fn from(diag: Diagnostic) -> Self {
        Error::Invalid(diag.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
