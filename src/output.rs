//! The one way composectl writes to the terminal. Each command returns a [`Report`], printed here
//! as text or as JSON (`-o json`); diagnostics, warnings and errors go to stderr, or in JSON mode
//! an error is a JSON object on stdout. A closed stdout (`composectl render | head`) ends the
//! command quietly: writes report [`Error::BrokenPipe`], which exits 0.
//!
//! Nothing else in the crate prints: clippy's `print_stdout`/`print_stderr` lints keep `print!`
//! and `eprintln!` out everywhere, here included (writes go through locked handles).

use std::io::{self, IsTerminal, Write};

use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::error::{Error, exit};

/// What a command found or did, printable as text and as JSON (its `Serialize` form).
pub trait Report {
    /// The text form. Lines written with [`Text::line`] are left out by `--quiet`; [`Text::data`]
    /// (what the command was asked to print: units, graphs, logs) is not.
    fn text(&self, out: &mut Text<'_>) -> io::Result<()>;

    /// The JSON form; None when the command printed its JSON itself (`logs -o json`).
    fn json(&self) -> Option<serde_json::Value>;

    /// The exit code once printed: `status` says 3 when not every stack is active.
    fn exit_code(&self) -> u8 {
        exit::OK
    }
}

/// A report whose JSON form is its `Serialize` form and whose text form is a closure.
pub struct Printed<T, F> {
    pub value: T,
    pub text: F,
}

impl<T: Serialize, F: Fn(&T, &mut Text<'_>) -> io::Result<()>> Report for Printed<T, F> {
    fn text(&self, out: &mut Text<'_>) -> io::Result<()> {
        (self.text)(&self.value, out)
    }

    fn json(&self) -> Option<serde_json::Value> {
        Some(
            serde_json::to_value(&self.value).unwrap_or_else(|e| json!({ "error": e.to_string() })),
        )
    }
}

/// Builds a report from a value and how it reads as text.
pub fn report<T: Serialize, F: Fn(&T, &mut Text<'_>) -> io::Result<()>>(
    value: T,
    text: F,
) -> Printed<T, F> {
    Printed { value, text }
}

/// Text output, line by line.
pub struct Text<'a> {
    out: &'a mut dyn Write,
    quiet: bool,
}

impl Text<'_> {
    /// A line of summary (left out by `--quiet`).
    pub fn line(&mut self, text: impl std::fmt::Display) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        writeln!(self.out, "{text}")
    }

    /// Data the command was asked for, printed as it is.
    pub fn data(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: OutputFormat,
    quiet: bool,
    color: bool,
}

impl Output {
    pub fn new(args: &GlobalArgs) -> Output {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            format: args.output,
            quiet: args.quiet,
            color: !args.no_color && !no_color_env && io::stderr().is_terminal(),
        }
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a command's report; returns its exit code.
    pub fn report(&self, report: &dyn Report) -> Result<u8, Error> {
        // The report is printed at once: a write per 64 KiB rather than stdout's write per line
        // (`render` of 200 stacks: 13 writes instead of 421).
        let mut stdout = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        if self.json() {
            if let Some(value) = report.json() {
                let text =
                    serde_json::to_string_pretty(&value).map_err(|e| Error::Failed(e.into()))?;
                writeln!(stdout, "{text}").map_err(Error::from)?;
            }
        } else {
            report
                .text(&mut Text {
                    out: &mut stdout,
                    quiet: self.quiet,
                })
                .map_err(Error::from)?;
        }
        stdout.flush().map_err(Error::from)?;
        Ok(report.exit_code())
    }

    /// A line of progress while a command works (each finished job of a long start), on a
    /// terminal in text mode only.
    pub fn progress(&self, text: &str) -> Result<(), Error> {
        if self.quiet || self.json() || !io::stdout().is_terminal() {
            return Ok(());
        }
        writeln!(io::stdout().lock(), "{text}").map_err(Error::from)
    }

    /// Diagnostics on stderr; warnings are left out with --quiet.
    pub fn diagnostics(&self, diags: &Diagnostics) {
        let mut err = io::stderr().lock();
        for diag in diags.iter() {
            if self.quiet && !diag.is_error() {
                continue;
            }
            let _ = writeln!(err, "{}", self.paint(diag));
        }
    }

    /// What a command is waiting for, on stderr (so a unit's journal has it); left out with
    /// --quiet.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{message}");
        }
    }

    /// A warning about an operation, on stderr; left out with --quiet.
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            let label = self.label("warning:", "1;33");
            let _ = writeln!(io::stderr().lock(), "{label} {message}");
        }
    }

    /// How a command failed: on stderr as text, or on stdout as a JSON error object.
    pub fn error(&self, error: &Error) {
        if self.json() {
            let _ = writeln!(
                io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&error_json(error)).unwrap_or_default()
            );
            return;
        }
        match error {
            Error::Invalid(diags) => self.diagnostics(diags),
            Error::Failed(e) => {
                let label = self.label("error:", "1;31");
                let _ = writeln!(io::stderr().lock(), "{label} {e:#}");
            }
            Error::Restart(_) | Error::BrokenPipe => {}
        }
    }

    fn label(&self, label: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label.to_string()
        }
    }

    fn paint(&self, diag: &Diagnostic) -> String {
        let text = diag.to_string();
        let (label, code) = match diag.severity {
            Severity::Error => ("error:", "1;31"),
            Severity::Warning => ("warning:", "1;33"),
        };
        text.replacen(label, &self.label(label, code), 1)
    }
}

/// `{"error": {"kind": ..., "message": ..., "diagnostics": [...]}}`, the shape of every failure
/// in JSON mode.
pub fn error_json(error: &Error) -> serde_json::Value {
    let (kind, diagnostics) = match error {
        Error::Invalid(diags) => ("invalid", diags.iter().collect::<Vec<_>>()),
        Error::Failed(_) => ("failed", Vec::new()),
        Error::Restart(_) => ("restart", Vec::new()),
        Error::BrokenPipe => ("broken-pipe", Vec::new()),
    };
    let message = match error {
        Error::Invalid(diags) => diags
            .errors()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        Error::Failed(e) => format!("{e:#}"),
        other => other.to_string(),
    };
    json!({ "error": { "kind": kind, "exit_code": error.code(), "message": message, "diagnostics": diagnostics } })
}

/// A usage error from the command line parser, as a JSON error object.
pub fn usage_error_json(message: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "error": { "kind": "usage", "exit_code": exit::USAGE, "message": message.trim(), "diagnostics": [] }
    }))
    .unwrap_or_default()
}

/// Prints a usage error as clap renders it, or as JSON.
pub fn print_usage_error(error: &clap::Error, as_json: bool) -> io::Result<()> {
    if as_json {
        let message = error.kind().to_string();
        let rendered = error.render().to_string();
        let detail = rendered
            .lines()
            .next()
            .unwrap_or(&message)
            .trim_start_matches("error: ");
        writeln!(io::stdout().lock(), "{}", usage_error_json(detail))
    } else {
        error.print()
    }
}

/// A report for a command that wrote its output itself (`logs` runs journalctl on our stdout).
pub struct Streamed;

impl Report for Streamed {
    fn text(&self, _: &mut Text<'_>) -> io::Result<()> {
        Ok(())
    }

    fn json(&self) -> Option<serde_json::Value> {
        None
    }
}

/// One line of a container's output, when `composectl run` runs outside systemd (no journald).
pub fn container_line(source: &str, line: &[u8]) {
    let _ = writeln!(
        io::stdout().lock(),
        "{source} | {}",
        String::from_utf8_lossy(line)
    );
}
