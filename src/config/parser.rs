//! The reader the compose file's checks share (`compose_file`, and `meta` for the
//! `x-composectl` block): the file's diagnostics, the env layers values are interpolated with,
//! and the typed reads of one node (a string, a list of strings, a duration) that report what
//! they find instead of what they expected.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::env::{EnvLayers, interpolate};
use super::yaml::{self, Node};
use crate::diag::{Diagnostic, Diagnostics};

/// A name with the line it was written on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub value: String,
    #[serde(skip)]
    pub line: usize,
}

pub(super) struct Parser<'p> {
    pub(super) path: &'p Path,
    pub(super) env: &'p EnvLayers,
    pub(super) diags: &'p mut Diagnostics,
}

impl<'p> Parser<'p> {
    pub(super) fn new(path: &'p Path, env: &'p EnvLayers, diags: &'p mut Diagnostics) -> Self {
        Parser { path, env, diags }
    }

    pub(super) fn error(&mut self, line: Option<usize>, message: impl Into<String>, hint: &str) {
        self.diags.push(
            Diagnostic::error(self.path.to_path_buf(), message)
                .at_line(line)
                .hint(hint),
        );
    }

    /// A scalar's text after `${VAR}` interpolation; non-scalars are reported. Interpolation
    /// errors are reported once for the whole file by `interpolation`.
    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        let Some(text) = yaml::scalar_text(node) else {
            self.error(
                Some(yaml::line(node)),
                format!("{what} is {}, expected a string", yaml::kind(node)),
                "write a plain string",
            );
            return None;
        };
        interpolate(&text, self.env).ok()
    }

    /// A scalar's interpolated text, or nothing (for optional fields whose type compose checks).
    pub(super) fn value(&self, node: &Node) -> Option<String> {
        interpolate(&yaml::scalar_text(node)?, self.env).ok()
    }

    pub(super) fn string_list(&mut self, node: &Node, what: &str) -> Vec<Located> {
        let Some(items) = yaml::as_sequence(node) else {
            self.error(
                Some(yaml::line(node)),
                format!("{what} is {}, expected a list", yaml::kind(node)),
                "write a list, e.g. [database, panel]",
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let value = self.string(item, what)?;
                Some(Located {
                    value,
                    line: yaml::line(item),
                })
            })
            .collect()
    }

    pub(super) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match crate::duration::parse(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(
                    Some(yaml::line(node)),
                    format!("{what}: {message}"),
                    "write a duration such as 90s, 15min or 1h 30min",
                );
                None
            }
        }
    }
}
