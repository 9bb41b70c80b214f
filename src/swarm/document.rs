//! The compose file composectl hands `docker stack deploy`: an owned tree (built from the stack's
//! file by `translate`, then changed key by key) and its YAML text.
//!
//! The text is written for the docker CLI's reader: block style, strings plain only where every
//! YAML reader reads them back as the same string (else double-quoted, with JSON's escapes, which
//! YAML's double-quoted style shares), and every `$` doubled, because the CLI interpolates the
//! file once more and the values here are already interpolated.

use crate::config::yaml;

/// A value of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number, boolean or null, written as it is.
    Plain(String),
    Str(String),
    Seq(Vec<Value>),
    Map(Map),
}

/// A mapping that keeps its keys in the order they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Map(Vec<(String, Value)>);

impl Value {
    pub fn null() -> Value {
        Value::Plain("null".into())
    }

    pub fn str(text: impl Into<String>) -> Value {
        Value::Str(text.into())
    }

    /// The text of a scalar (`None` for null and collections).
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Plain(text) if text == "null" => None,
            Value::Plain(text) | Value::Str(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets a key, in place when it exists, else at the end.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The mapping under `key`, created (or replacing a non-mapping) when missing.
    pub fn map_mut(&mut self, key: &str) -> &mut Map {
        if !matches!(self.get(key), Some(Value::Map(_))) {
            self.insert(key, Value::Map(Map::default()));
        }
        match self.get_mut(key) {
            Some(Value::Map(map)) => map,
            _ => unreachable!("inserted above"),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut map = Map::default();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

/// The YAML text of a top-level mapping.
pub fn to_yaml(map: &Map) -> String {
    let mut out = String::new();
    write_map(&mut out, map, 0, false);
    out
}

fn write_map(out: &mut String, map: &Map, indent: usize, first_inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if !(first_inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&key_text(key));
        out.push(':');
        write_after_key(out, value, indent);
    }
}

fn write_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Map(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2, false);
        }
        Value::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Map(map) if !map.is_empty() => {
                out.push(' ');
                write_map(out, map, indent + 2, true);
            }
            Value::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty collection, on the line of its key or dash.
fn inline(value: &Value) -> String {
    match value {
        Value::Plain(text) => text.clone(),
        Value::Str(text) => {
            let text = text.replace('$', "$$");
            if reads_back_plain(&text) {
                text
            } else {
                quoted(&text)
            }
        }
        Value::Seq(_) => "[]".into(),
        Value::Map(_) => "{}".into(),
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Whether a string written plain is read back as the same string by any YAML reader: only
/// letters, digits and `_./@=+-` (no `:`, `#`, spaces, quotes or brackets), starting with a
/// letter, digit, `/` or `_`, and not a word or number YAML 1.1 or 1.2 types otherwise.
fn reads_back_plain(text: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./@=+-".contains(c);
    let first = text.chars().next();
    first.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_')
        && text.chars().all(safe)
        && !yaml::is_number(text)
        && !yaml::is_core_bool(text)
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "null" | "true" | "false"
        )
}

fn key_text(key: &str) -> String {
    if reads_back_plain(key) && !key.contains('$') {
        key.to_string()
    } else {
        quoted(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Value)>) -> Map {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn writes_block_yaml_that_reads_back() {
        let doc = map(vec![
            (
                "services",
                Value::Map(map(vec![(
                    "app",
                    Value::Map(map(vec![
                        ("image", Value::str("busybox:1.36")),
                        (
                            "command",
                            Value::Seq(vec![
                                Value::str("sh"),
                                Value::str("-c"),
                                Value::str("echo $HOME: ok # not a comment"),
                            ]),
                        ),
                        (
                            "environment",
                            Value::Map(map(vec![("A", Value::str("yes"))])),
                        ),
                        (
                            "ports",
                            Value::Seq(vec![Value::Map(map(vec![
                                ("target", Value::Plain("80".into())),
                                ("published", Value::Plain("8080".into())),
                            ]))]),
                        ),
                        ("labels", Value::Map(Map::default())),
                        (
                            "healthcheck",
                            Value::Map(map(vec![("disable", Value::Plain("true".into()))])),
                        ),
                    ])),
                )])),
            ),
            ("networks", Value::Map(map(vec![("net", Value::null())]))),
        ]);
        let text = to_yaml(&doc);
        assert_eq!(
            text,
            r#"services:
  app:
    image: "busybox:1.36"
    command:
      - sh
      - "-c"
      - "echo $$HOME: ok # not a comment"
    environment:
      A: "yes"
    ports:
      - target: 80
        published: 8080
    labels: {}
    healthcheck:
      disable: true
networks:
  net: null
"#
        );
        let parsed = yaml::parse(&text).expect("parses").expect("a document");
        let services = yaml::get(&parsed, "services").expect("services").value;
        let app = yaml::get(services, "app").expect("app").value;
        let env = yaml::get(app, "environment").expect("environment").value;
        assert_eq!(
            yaml::kind(yaml::get(env, "A").expect("A").value),
            "a string"
        );
    }
}
