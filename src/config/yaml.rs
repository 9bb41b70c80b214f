//! A thin, line-aware view over saphyr's marked YAML tree.
//!
//! composectl reads only a few keys of a compose file and must tolerate every other one, so it
//! walks the tree instead of deserializing into a schema. Aliases are expanded by the loader;
//! merge keys (`<<: *anchor`) are resolved here, because compose honours them and real files use
//! them for shared service settings.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

pub type Node<'a> = MarkedYaml<'a>;

/// A YAML syntax error with its 1-based line.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses the first document of `text`; an empty file is an empty mapping's absence (`None`).
pub fn parse(text: &str) -> Result<Option<Node<'_>>, SyntaxError> {
    let mut docs = MarkedYaml::load_from_str(text).map_err(|e| SyntaxError {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    if docs.len() > 1 {
        return Err(SyntaxError {
            line: docs[1].span.start.line(),
            message: "more than one YAML document; a compose file holds exactly one".into(),
        });
    }
    Ok(docs.pop())
}

pub fn line(node: &Node<'_>) -> usize {
    node.span.start.line()
}

/// What a node is, in words a user recognises in an error message.
pub fn kind(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Mapping(_) => "a mapping",
        YamlData::Sequence(_) => "a list",
        YamlData::Value(Scalar::Null) => "empty",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Tagged(..) => "a tagged value",
        YamlData::Alias(_) | YamlData::BadValue => "an invalid value",
    }
}

pub fn is_mapping(node: &Node<'_>) -> bool {
    matches!(untagged(node).data, YamlData::Mapping(_))
}

pub fn is_null(node: &Node<'_>) -> bool {
    matches!(untagged(node).data, YamlData::Value(Scalar::Null))
}

fn untagged<'n, 'a>(node: &'n Node<'a>) -> &'n Node<'a> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

/// The text of a scalar: strings as they are, numbers and booleans as YAML wrote them.
pub fn scalar_text<'n>(node: &'n Node<'_>) -> Option<Cow<'n, str>> {
    match &untagged(node).data {
        YamlData::Value(Scalar::String(s)) => Some(Cow::Borrowed(s.as_ref())),
        YamlData::Representation(s, ..) => Some(Cow::Borrowed(s.as_ref())),
        YamlData::Value(Scalar::Integer(i)) => Some(Cow::Owned(i.to_string())),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(Cow::Owned(f.to_string())),
        YamlData::Value(Scalar::Boolean(b)) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

pub fn as_bool(node: &Node<'_>) -> Option<bool> {
    match &untagged(node).data {
        YamlData::Value(Scalar::Boolean(b)) => Some(*b),
        _ => None,
    }
}

pub fn as_sequence<'n, 'a>(node: &'n Node<'a>) -> Option<&'n [Node<'a>]> {
    match &untagged(node).data {
        YamlData::Sequence(items) => Some(items),
        _ => None,
    }
}

/// One key of a mapping: its text, where it stands, and its value.
pub struct Entry<'n, 'a> {
    pub key: Cow<'n, str>,
    pub line: usize,
    pub value: &'n Node<'a>,
}

/// The entries of a mapping with merge keys applied: keys written in the mapping win over merged
/// ones, and earlier merge sources win over later ones, as in YAML 1.1 and compose.
pub fn entries<'n, 'a>(node: &'n Node<'a>) -> Vec<Entry<'n, 'a>> {
    let mut own = Vec::new();
    let mut merged = Vec::new();
    if let YamlData::Mapping(map) = &untagged(node).data {
        for (key, value) in map {
            let Some(text) = scalar_text(key) else {
                continue;
            };
            if text == "<<" {
                let sources: Vec<&Node<'a>> = match as_sequence(value) {
                    Some(items) => items.iter().collect(),
                    None => vec![value],
                };
                for source in sources {
                    merged.extend(entries(source));
                }
            } else {
                own.push(Entry {
                    key: text,
                    line: line(key),
                    value,
                });
            }
        }
    }
    for entry in merged {
        if !own.iter().any(|e| e.key == entry.key) {
            own.push(entry);
        }
    }
    own
}

pub fn get<'n, 'a>(node: &'n Node<'a>, key: &str) -> Option<Entry<'n, 'a>> {
    entries(node).into_iter().find(|e| e.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_apply_with_own_keys_winning() {
        let text = "base: &b\n  image: x\n  restart: always\nsvc:\n  <<: *b\n  restart: 'no'\n";
        let doc = parse(text).unwrap().unwrap();
        let svc = get(&doc, "svc").unwrap().value;
        let restart = get(svc, "restart").unwrap();
        assert_eq!(scalar_text(restart.value).unwrap(), "no");
        assert_eq!(restart.line, 6);
        assert_eq!(scalar_text(get(svc, "image").unwrap().value).unwrap(), "x");
    }

    #[test]
    fn syntax_errors_carry_a_one_based_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "line {}", err.line);
    }

    #[test]
    fn lines_are_one_based() {
        let doc = parse("a: 1\nb:\n  c: 2\n").unwrap().unwrap();
        assert_eq!(get(&doc, "b").unwrap().line, 2);
        let b = get(&doc, "b").unwrap().value;
        assert_eq!(get(b, "c").unwrap().line, 3);
    }
}
