//! The one place that knows how values are written into unit files (systemd.syntax(7),
//! systemd.service(5) "Command lines", systemd.unit(5) "Specifiers"). Templates never insert a
//! user-controlled value without one of these filters.

use std::fmt::Write;

/// A value for a free-text setting such as `Description=`: specifiers escaped, one line.
pub fn unit_value(value: &str) -> String {
    let one_line: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // A trailing backslash would continue the setting onto the next line.
    one_line.trim_end_matches('\\').trim().replace('%', "%%")
}

/// A value for a setting systemd reads without specifiers (`MemoryMax=`, `CPUQuota=`,
/// `TasksMax=`): one line, `%` kept as it is (`%%` there is an invalid value, not a `%`).
pub fn plain_value(value: &str) -> String {
    let one_line: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.trim_end_matches('\\').trim().to_string()
}

/// One argument of an `Exec*=` command line: quoted when needed, with C escapes, `%` specifiers
/// and `$` variable expansion neutralised, so the process receives exactly `arg`.
pub fn exec_arg(arg: &str) -> String {
    let needs_quotes = arg.is_empty()
        || arg
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';'));
    let mut out = String::with_capacity(arg.len() + 2);
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    if needs_quotes {
        format!("\"{out}\"")
    } else {
        out
    }
}

/// One absolute path of a space-separated path list such as `RequiresMountsFor=`: quoted when
/// needed, specifiers escaped. Paths with control characters cannot be written (the model leaves
/// them out).
pub fn path_item(path: &str) -> String {
    let escaped = path
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    if path
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_args_are_quoted_and_escaped() {
        assert_eq!(exec_arg("/etc/composectl"), "/etc/composectl");
        assert_eq!(exec_arg("/srv/my stacks"), "\"/srv/my stacks\"");
        assert_eq!(exec_arg("/srv/100%"), "/srv/100%%");
        assert_eq!(exec_arg("/srv/$HOME"), "/srv/$$HOME");
        assert_eq!(exec_arg("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(exec_arg("semi;colon"), "\"semi;colon\"");
        assert_eq!(exec_arg(""), "\"\"");
    }

    #[test]
    fn path_items_are_quoted_when_needed() {
        assert_eq!(path_item("/srv/data"), "/srv/data");
        assert_eq!(path_item("/srv/my data"), "\"/srv/my data\"");
        assert_eq!(path_item("/srv/100%"), "/srv/100%%");
        assert_eq!(path_item("/srv/a\"b"), "\"/srv/a\\\"b\"");
    }

    #[test]
    fn plain_values_keep_their_percent_and_stay_on_one_line() {
        assert_eq!(plain_value("200%"), "200%");
        assert_eq!(plain_value("8G\nExecStart=/bin/sh"), "8G ExecStart=/bin/sh");
    }

    #[test]
    fn unit_values_stay_on_one_line() {
        assert_eq!(
            unit_value("GenAI 100% local\nsecond"),
            "GenAI 100%% local second"
        );
        assert_eq!(unit_value("ends with \\"), "ends with");
    }
}
