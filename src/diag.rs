//! Diagnostics: every problem found in a root, with the file (and line) it comes from and what to
//! do about it. Validation collects all of them before failing, so a user fixes a root in one pass.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// 1-based, in characters, where the parser knows it (syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The offending line as written, shown under the message with a caret at `column`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The stacks the problem belongs to (none: a file every stack shares). A command working on
    /// a selection of stacks is stopped only by problems of the selection and shared files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
}

impl Diagnostic {
    pub fn error(file: impl Into<Option<PathBuf>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line: None,
            column: None,
            source: None,
            message: message.into(),
            hint: None,
            stacks: Vec::new(),
        }
    }

    pub fn warning(file: impl Into<Option<PathBuf>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Points at a byte offset of `text`, the file's contents: its line, column and the line
    /// itself, for the caret under it.
    pub fn at_offset(mut self, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        // An offset from a parser may fall inside a multi-byte character.
        let start = text.as_bytes()[..offset]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let end = text[start..].find('\n').map_or(text.len(), |at| start + at);
        let before = String::from_utf8_lossy(&text.as_bytes()[start..offset]);
        self.line = Some(line_of(text, offset));
        self.column = Some(before.chars().count() + 1);
        self.source = Some(text[start..end].trim_end_matches('\r').to_string());
        self
    }

    /// Points at a 1-based line of `text`, and a column of it when known.
    pub fn at_position(self, text: &str, line: usize, column: Option<usize>) -> Self {
        let start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            .min(text.len());
        let offset = text[start..]
            .char_indices()
            .nth(column.unwrap_or(1).saturating_sub(1))
            .map_or(text.len(), |(at, _)| start + at);
        let mut diag = self.at_offset(text, offset);
        diag.line = Some(line);
        if column.is_none() {
            diag.column = None;
        }
        diag
    }

    /// The character the diagnostic points at, when it has a column and its line.
    pub fn pointed_at(&self) -> Option<char> {
        self.source
            .as_deref()?
            .chars()
            .nth(self.column?.checked_sub(1)?)
    }

    /// Says which stack the problem belongs to.
    pub fn of_stack(mut self, stack: impl Into<String>) -> Self {
        self.stacks = vec![stack.into()];
        self
    }

    /// Says that the problem belongs to several stacks (a collision, a cycle).
    pub fn of_stacks<S: Into<String>>(mut self, stacks: impl IntoIterator<Item = S>) -> Self {
        self.stacks = stacks.into_iter().map(Into::into).collect();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, self.column) {
            (Some(file), Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: ", file.display())?
            }
            (Some(file), Some(line), None) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None, _) => write!(f, "{}: ", file.display())?,
            (None, _, _) => {}
        }
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.message)?;
        if let (Some(source), Some(line)) = (&self.source, self.line) {
            let number = line.to_string();
            let gutter = " ".repeat(number.len());
            // Tabs would make the caret land elsewhere than the character it points at.
            let shown = source.replace('\t', "→");
            write!(f, "\n {number} | {shown}")?;
            if let Some(column) = self.column {
                write!(f, "\n {gutter} | {}^", " ".repeat(column.saturating_sub(1)))?;
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The 1-based line of a byte offset into `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    // Bytes, not str: an offset from a parser may fall inside a multi-byte character.
    let before = &text.as_bytes()[..offset.min(text.len())];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// The candidate closest to a misspelt name (at most two edits away), for a "did you mean" hint.
pub fn closest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let current = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(current + 1);
                previous = current;
            }
        }
        row[b.len()]
    };
    candidates
        .into_iter()
        .map(|candidate| (distance(name, candidate), candidate))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Problems collected while reading and validating a root.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the order files were read in but puts each file's problems in line order.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (a.file.as_deref(), a.line.unwrap_or(0)).cmp(&(b.file.as_deref(), b.line.unwrap_or(0)))
        });
        self.0.dedup();
        self
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}
