//! How results reach the user: text or JSON on stdout, diagnostics on stderr, colour only on a
//! terminal and never with NO_COLOR or --no-color.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::diag::{Diagnostic, Diagnostics, Severity};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub format: OutputFormat,
    pub quiet: bool,
    color: bool,
}

impl Ui {
    pub fn new(args: &GlobalArgs) -> Ui {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ui {
            format: args.output,
            quiet: args.quiet,
            color: !args.no_color && !no_color_env && std::io::stderr().is_terminal(),
        }
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a value as pretty JSON on stdout.
    pub fn print_json(&self, value: &impl Serialize) {
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Prints a line of normal output, unless --quiet.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(std::io::stdout().lock(), "{}", text.as_ref());
        }
    }

    /// Prints diagnostics on stderr; warnings are dropped with --quiet.
    pub fn report(&self, diags: &Diagnostics) {
        let mut err = std::io::stderr().lock();
        for diag in diags.iter() {
            if self.quiet && !diag.is_error() {
                continue;
            }
            let _ = writeln!(err, "{}", self.paint(diag));
        }
    }

    fn paint(&self, diag: &Diagnostic) -> String {
        let text = diag.to_string();
        if !self.color {
            return text;
        }
        let (label, code) = match diag.severity {
            Severity::Error => ("error:", "1;31"),
            Severity::Warning => ("warning:", "1;33"),
        };
        text.replacen(label, &format!("\x1b[{code}m{label}\x1b[0m"), 1)
    }

    /// A warning about an operation, on stderr; dropped with --quiet.
    pub fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let label = if self.color {
            "\x1b[1;33mwarning:\x1b[0m"
        } else {
            "warning:"
        };
        let _ = writeln!(std::io::stderr().lock(), "{label} {message}");
    }

    /// An operation's failure, on stderr.
    pub fn fail(&self, message: &str) {
        let label = if self.color {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        let _ = writeln!(std::io::stderr().lock(), "{label} {message}");
    }
}
