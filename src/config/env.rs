//! Env files and compose-style `${VAR}` interpolation.
//!
//! The layers are read in one fixed order (root `.env`, root `.env.local`, stack `.env`, stack
//! `.env.local`; later wins), which is also the order `composectl run` hands them to compose, so
//! what `check` sees is what the unit will run with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};

pub const ENV_FILES: [&str; 2] = [".env", ".env.local"];

/// Variables from env files, merged in layer order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvLayers {
    pub files: Vec<PathBuf>,
    vars: BTreeMap<String, String>,
}

impl EnvLayers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// These layers with `names` set where no layer sets them: for checking a file whose
    /// declared secrets are generated before it runs.
    pub fn assuming_set(&self, names: &[String]) -> EnvLayers {
        let mut env = self.clone();
        for name in names {
            env.vars
                .entry(name.clone())
                .or_insert_with(|| "generated-secret".to_string());
        }
        env
    }

    /// Adds the env files of `dir` that exist, reporting malformed lines.
    pub fn load_dir(&mut self, dir: &Path, diags: &mut Diagnostics) {
        for name in ENV_FILES {
            let path = dir.join(name);
            let Some(text) = super::read_optional(&path, diags) else {
                continue;
            };
            for (key, value, quote) in parse_entries(&path, &text, diags) {
                // Compose expands unquoted and double-quoted values with what is set so far
                // (`PORT=${PORT:-8000}`); one it cannot expand is left as written for compose
                // to report.
                let value = match quote {
                    Some('\'') => value,
                    _ => interpolate(&value, self).unwrap_or(value),
                };
                self.vars.insert(key, value);
            }
            self.files.push(path);
        }
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        EnvLayers {
            files: Vec::new(),
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses dotenv syntax as compose reads it: `KEY=VALUE`, `export KEY=VALUE`, quotes, comments.
pub fn parse_env_file(path: &Path, text: &str, diags: &mut Diagnostics) -> Vec<(String, String)> {
    parse_entries(path, text, diags)
        .into_iter()
        .map(|(key, value, _)| (key, value))
        .collect()
}

/// Each variable with the quote its value was written in, if any.
fn parse_entries(
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<(String, String, Option<char>)> {
    let mut vars = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            if is_var_name(line) {
                continue; // a bare name passes the caller's environment through; nothing to read
            }
            diags.push(
                Diagnostic::error(path.to_path_buf(), format!("not a KEY=VALUE line: {raw:?}"))
                    .at_line(Some(index + 1))
                    .hint("write one variable per line as NAME=value; start comments with #"),
            );
            continue;
        };
        let key = key.trim();
        if !is_var_name(key) {
            diags.push(
                Diagnostic::error(path.to_path_buf(), format!("invalid variable name {key:?}"))
                    .at_line(Some(index + 1))
                    .hint("names are letters, digits and _, not starting with a digit"),
            );
            continue;
        }
        let value = value.trim();
        let quote = value.chars().next().filter(|c| matches!(c, '"' | '\''));
        match unquote(value) {
            Ok(value) => vars.push((key.to_string(), value, quote)),
            Err(message) => diags.push(
                Diagnostic::error(path.to_path_buf(), message)
                    .at_line(Some(index + 1))
                    .hint("close the quote on the same line"),
            ),
        }
    }
    vars
}

fn unquote(value: &str) -> Result<String, String> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            let Some(end) = rest.find(quote) else {
                return Err(format!("unterminated {quote} quote"));
            };
            let inner = &rest[..end];
            return Ok(if quote == '"' {
                inner.replace("\\n", "\n").replace("\\\"", "\"")
            } else {
                inner.to_string()
            });
        }
    }
    // An unquoted value ends at a comment that follows whitespace.
    let value = match value.find(" #") {
        Some(at) => &value[..at],
        None => value,
    };
    Ok(value.trim_end().to_string())
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
/// `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` and `$$`, as the compose specification defines.
pub fn interpolate(input: &str, env: &EnvLayers) -> Result<String, String> {
    // Most values hold no `$`: one scan of the bytes instead of a walk over chars.
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    let chars: Vec<char> = input.chars().collect();
    let mut pos = 0;
    let out = expand(&chars, &mut pos, env, false)?;
    Ok(out)
}

fn expand(
    chars: &[char],
    pos: &mut usize,
    env: &EnvLayers,
    nested: bool,
) -> Result<String, String> {
    let mut out = String::new();
    while *pos < chars.len() {
        let c = chars[*pos];
        if nested && c == '}' {
            return Ok(out);
        }
        if c != '$' {
            out.push(c);
            *pos += 1;
            continue;
        }
        *pos += 1;
        match chars.get(*pos) {
            Some('$') => {
                out.push('$');
                *pos += 1;
            }
            Some('{') => {
                *pos += 1;
                out.push_str(&braced(chars, pos, env)?);
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = *pos;
                while chars
                    .get(*pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    *pos += 1;
                }
                let name: String = chars[start..*pos].iter().collect();
                out.push_str(env.get(&name).unwrap_or(""));
            }
            _ => out.push('$'),
        }
    }
    if nested {
        return Err("unterminated ${ in interpolation".into());
    }
    Ok(out)
}

fn braced(chars: &[char], pos: &mut usize, env: &EnvLayers) -> Result<String, String> {
    let start = *pos;
    while chars
        .get(*pos)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        *pos += 1;
    }
    let name: String = chars[start..*pos].iter().collect();
    if !is_var_name(&name) {
        return Err(format!("invalid interpolation: ${{{name}...}}"));
    }
    let value = env.get(&name);
    let (colon, op) = match (chars.get(*pos), chars.get(*pos + 1)) {
        (Some('}'), _) => {
            *pos += 1;
            return Ok(value.unwrap_or("").to_string());
        }
        (Some(':'), Some(op @ ('-' | '?' | '+'))) => (true, *op),
        (Some(op @ ('-' | '?' | '+')), _) => (false, *op),
        _ => return Err(format!("invalid interpolation syntax in ${{{name}...}}")),
    };
    *pos += if colon { 2 } else { 1 };
    let word = expand(chars, pos, env, true)?;
    *pos += 1; // the closing brace
    let set = match value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    Ok(match op {
        '-' if set => value.unwrap_or("").to_string(),
        '-' => word,
        '+' if set => word,
        '+' => String::new(),
        _ if set => value.unwrap_or("").to_string(),
        _ => {
            let reason = if word.is_empty() {
                "is required".to_string()
            } else {
                word
            };
            return Err(format!("variable {name} is not set: {reason}"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_the_compose_spec() {
        let env = EnvLayers::from_pairs(&[("A", "a"), ("EMPTY", "")]);
        let cases = [
            ("$A-${A}", "a-a"),
            ("${MISSING:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${A:+alt}", "alt"),
            ("${MISSING+alt}", ""),
            ("$$A", "$A"),
            ("${MISSING:-${A}x}", "ax"),
            ("cost $5", "cost $5"),
        ];
        for (input, want) in cases {
            assert_eq!(interpolate(input, &env).unwrap(), want, "{input}");
        }
        assert!(
            interpolate("${MISSING:?set it}", &env)
                .unwrap_err()
                .contains("set it")
        );
        assert!(interpolate("${A", &env).is_err());
        assert!(interpolate("${A!}", &env).is_err());
    }

    #[test]
    fn env_files_parse_quotes_comments_and_export() {
        let mut diags = Diagnostics::default();
        let text = "# c\nexport A=1\nB=\"two words\"\nC='x#y' \nD=v # note\nE\nbad line\n";
        let vars = parse_env_file(Path::new(".env"), text, &mut diags);
        assert_eq!(
            vars,
            [("A", "1"), ("B", "two words"), ("C", "x#y"), ("D", "v")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let errors: Vec<_> = diags.errors().collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(7));
    }

    #[test]
    fn env_files_expand_what_is_set_so_far_except_in_single_quotes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text =
            "PORT=${PORT:-8000}\nRAW='${PORT}'\nURL=\"http://h:${PORT}\"\nBAD=${NOPE:?unset}\n";
        std::fs::write(dir.path().join(".env"), text).expect("write");
        let mut env = EnvLayers::default();
        let mut diags = Diagnostics::default();
        env.load_dir(dir.path(), &mut diags);
        assert!(!diags.has_errors(), "{diags}");
        assert_eq!(env.get("PORT"), Some("8000"));
        assert_eq!(env.get("RAW"), Some("${PORT}"));
        assert_eq!(env.get("URL"), Some("http://h:8000"));
        assert_eq!(
            env.get("BAD"),
            Some("${NOPE:?unset}"),
            "left for compose to report"
        );
    }
}
