//! Reading a root from disk: networks.toml, composectl.toml, env layers and each stack's compose
//! file. Pure parsing lives in the submodules; this module owns the file access and reports
//! unreadable, missing or odd files (directories, FIFOs, dangling links) as diagnostics.

pub mod compose_file;
pub mod env;
pub mod meta;
pub mod networks;
pub mod parser;
pub mod reference;
pub mod resources;
pub mod settings;
pub mod syntax;
pub mod yaml;

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics};

/// Reads a file that may be absent; anything else that stops it from being read is an error.
pub fn read_optional(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            diags.push(unreadable(path, &e));
            None
        }
        Ok(_) => read_required(path, diags),
    }
}

/// Reads a file that must exist, refusing anything but a regular file (a FIFO would block).
pub fn read_required(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound && path.is_symlink() => {
            diags.push(
                Diagnostic::error(
                    path.to_path_buf(),
                    "is a symbolic link to a file that does not exist",
                )
                .hint("point the link at an existing file or replace it with the file"),
            );
            return None;
        }
        Err(e) => {
            diags.push(unreadable(path, &e));
            return None;
        }
    };
    if !metadata.is_file() {
        let what = if metadata.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        diags.push(
            Diagnostic::error(path.to_path_buf(), format!("is {what}"))
                .hint("replace it with a regular file, or remove it"),
        );
        return None;
    }
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let text = String::from_utf8_lossy(e.as_bytes());
                let valid = e.utf8_error().valid_up_to();
                diags.push(
                    Diagnostic::error(path.to_path_buf(), "is not valid UTF-8 text")
                        .at_offset(&text, valid)
                        .hint("save the file as UTF-8"),
                );
                None
            }
        },
        Err(e) => {
            diags.push(unreadable(path, &e));
            None
        }
    }
}

fn unreadable(path: &Path, e: &std::io::Error) -> Diagnostic {
    let hint = if e.kind() == ErrorKind::PermissionDenied {
        "composectl must be able to read it: check its owner and mode, or run with sudo"
    } else {
        "check that the path is readable"
    };
    Diagnostic::error(path.to_path_buf(), format!("cannot be read: {e}")).hint(hint)
}
