//! Compose files read the way compose reads them, as a small line-aware tree.
//!
//! Compose parses YAML with go-yaml, itself a port of libyaml. libyaml-safer is a safe Rust port
//! of the same C library, so composectl accepts the leniencies real files rely on (a flow
//! sequence whose `]` sits at its key's indentation, comments inside flow collections) and
//! refuses what compose refuses (tabs as indentation, control characters, simple keys over 1024
//! characters). Over its events this module builds a tree that keeps every node's line and
//! shares aliased nodes instead of copying them, so a "billion laughs" file stays small, and
//! refuses what go-yaml adds on top of libyaml: duplicate keys, unknown or self-containing
//! aliases, merge keys that do not merge mappings, YAML directives other than 1.1.
//!
//! composectl reads only a few keys of a compose file and must tolerate every other one, so it
//! walks the tree instead of deserializing into a schema. Merge keys (`<<: *anchor`) are
//! resolved by `entries`, because compose honours them and real files use them for shared
//! service settings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use libyaml_safer::{Error, EventData, Mark, Parser, ScalarStyle};

/// go-yaml stops at 10000 levels; libyaml's flow scanner is quadratic in depth (a second for
/// 10000 levels), and no compose file comes near this.
const MAX_DEPTH: usize = 1000;

/// The tag compose gives a value to drop it (`!reset`); meaningful across files, a no-op here.
const RESET_TAG: &str = "!reset";

#[derive(Debug)]
pub struct Node {
    line: usize,
    tag: Option<String>,
    data: Data,
}

#[derive(Debug)]
enum Data {
    /// `plain`: written without quotes or block style and without a tag, so YAML may type it.
    Scalar {
        text: String,
        plain: bool,
    },
    Sequence(Vec<Rc<Node>>),
    Mapping(Vec<(Rc<Node>, Rc<Node>)>),
}

/// A YAML syntax error with its 1-based line, and column where the scanner knows it.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

/// Parses the single document of `text`; an empty file has none (`None`).
pub fn parse(text: &str) -> Result<Option<Rc<Node>>, SyntaxError> {
    let prepared = avoid_scanner_panics(text);
    let mut input = prepared.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut builder = Builder::default();
    for event in parser {
        let event = event.map_err(|e| syntax_error(&prepared, &e))?;
        builder.event(event.data, mark_line(event.start_mark))?;
    }
    Ok(builder.root)
}

/// libyaml-safer 0.3 panics (and composectl's release build aborts) where libyaml reports an
/// error or reads on: at the end of input inside a block scalar or right after a backslash in a
/// double-quoted one, and on a tag followed directly by `,` in a flow collection (`[!!str, x]`,
/// which libyaml reads as an empty tagged value). A final line break and a blank before such a
/// comma change neither the document's structure nor any line number (only a string holding
/// ` !x,` gains a blank).
fn avoid_scanner_panics(text: &str) -> Cow<'_, str> {
    let mut text = blank_before_tagged_commas(text);
    if !text.is_empty() && !text.ends_with('\n') {
        text.to_mut().push('\n');
    }
    text
}

fn blank_before_tagged_commas(text: &str) -> Cow<'_, str> {
    // Without a `!` there is no tag: one scan of the bytes instead of a walk over chars.
    if !text.contains('!') {
        return Cow::Borrowed(text);
    }
    let mut fixed: Option<String> = None;
    let mut previous = None;
    let mut in_tag = false;
    for (at, c) in text.char_indices() {
        if in_tag && c == ',' {
            let out = fixed.get_or_insert_with(|| text[..at].to_string());
            out.push(' ');
        }
        if let Some(out) = fixed.as_mut() {
            out.push(c);
        }
        in_tag = match c {
            // A tag starts a token: never right after a letter or digit of a plain scalar.
            '!' => in_tag || !previous.is_some_and(char::is_alphanumeric),
            c if c.is_whitespace() || "[]{},".contains(c) => false,
            _ => in_tag,
        };
        previous = Some(c);
    }
    fixed.map_or(Cow::Borrowed(text), Cow::Owned)
}

fn mark_line(mark: Mark) -> usize {
    usize::try_from(mark.line).map_or(usize::MAX, |line| line.saturating_add(1))
}

fn syntax_error(text: &str, error: &Error) -> SyntaxError {
    let (line, column) = match error.problem_mark() {
        Some(mark) => (
            mark_line(mark),
            usize::try_from(mark.column).ok().map(|c| c + 1),
        ),
        // Reader errors (bad encoding, control characters) carry no mark, only the message.
        None => {
            let offset = reader_offset(error).unwrap_or(0).min(text.len());
            let line_start = text.as_bytes()[..offset]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            let column = String::from_utf8_lossy(&text.as_bytes()[line_start..offset])
                .chars()
                .count();
            (crate::diag::line_of(text, offset), Some(column + 1))
        }
    };
    let message = match error.context() {
        Some(context) => format!("{context}, {}", error.problem()),
        None => error.problem().to_string(),
    };
    SyntaxError {
        line,
        column,
        message,
    }
}

/// The byte offset of a reader error, which libyaml reports only inside its message.
fn reader_offset(error: &Error) -> Option<usize> {
    let text = error.to_string();
    let (_, rest) = text.split_once("offset ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

struct Frame {
    line: usize,
    anchor: Option<String>,
    tag: Option<String>,
    items: Vec<Rc<Node>>,
    mapping: bool,
}

#[derive(Default)]
struct Builder {
    anchors: HashMap<String, Rc<Node>>,
    open: Vec<Frame>,
    root: Option<Rc<Node>>,
    documents: usize,
}

impl Builder {
    fn event(&mut self, event: EventData, line: usize) -> Result<(), SyntaxError> {
        let error = |message: String| {
            Err(SyntaxError {
                line,
                column: None,
                message,
            })
        };
        match event {
            EventData::DocumentStart {
                version_directive, ..
            } => {
                self.documents += 1;
                if self.documents > 1 {
                    return error(
                        "more than one YAML document; a stack's compose file holds exactly one"
                            .into(),
                    );
                }
                if let Some(v) = version_directive
                    && (v.major, v.minor) != (1, 1)
                {
                    return error(format!(
                        "%YAML {}.{}: compose reads YAML 1.1 documents only",
                        v.major, v.minor
                    ));
                }
            }
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let node = Node {
                    line,
                    tag,
                    data: Data::Scalar { text: value, plain },
                };
                self.complete(anchor, node);
            }
            EventData::SequenceStart { anchor, tag, .. } => self.open(line, anchor, tag, false)?,
            EventData::MappingStart { anchor, tag, .. } => self.open(line, anchor, tag, true)?,
            EventData::SequenceEnd | EventData::MappingEnd => {
                let Some(frame) = self.open.pop() else {
                    return Ok(());
                };
                let data = if frame.mapping {
                    let mut items = frame.items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(key), Some(value)) = (items.next(), items.next()) {
                        pairs.push((key, value));
                    }
                    check_mapping(&pairs)?;
                    Data::Mapping(pairs)
                } else {
                    Data::Sequence(frame.items)
                };
                let node = Node {
                    line: frame.line,
                    tag: frame.tag,
                    data,
                };
                self.complete(frame.anchor, node);
            }
            EventData::Alias { anchor } => match self.anchors.get(&anchor) {
                Some(node) => {
                    let node = Rc::clone(node);
                    self.attach(node);
                }
                None if self
                    .open
                    .iter()
                    .any(|f| f.anchor.as_deref() == Some(&anchor)) =>
                {
                    return error(format!("alias *{anchor} is used inside the node it names"));
                }
                None => return error(format!("unknown anchor: *{anchor} is never defined")),
            },
            EventData::StreamStart { .. }
            | EventData::StreamEnd
            | EventData::DocumentEnd { .. } => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        line: usize,
        anchor: Option<String>,
        tag: Option<String>,
        mapping: bool,
    ) -> Result<(), SyntaxError> {
        if self.open.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                line,
                column: None,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.open.push(Frame {
            line,
            anchor,
            tag,
            items: Vec::new(),
            mapping,
        });
        Ok(())
    }

    fn complete(&mut self, anchor: Option<String>, node: Node) {
        let node = Rc::new(node);
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, Rc::clone(&node));
        }
        self.attach(node);
    }

    fn attach(&mut self, node: Rc<Node>) {
        match self.open.last_mut() {
            Some(frame) => frame.items.push(node),
            None => self.root = Some(node),
        }
    }
}

/// Up to this many keys, a mapping is checked for duplicates by comparing each key with the ones
/// before it (no allocation, no hashing: compose files are made of small mappings); beyond, with
/// a hash map, so a hostile file's huge mapping is not quadratic.
const FEW_KEYS: usize = 16;

/// What go-yaml refuses in a mapping beyond libyaml: a key written twice, and a merge key whose
/// value is not a mapping or a list of mappings.
fn check_mapping(pairs: &[(Rc<Node>, Rc<Node>)]) -> Result<(), SyntaxError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if is_merge_key(key) {
            let merges_mappings = match &value.data {
                Data::Mapping(_) => true,
                Data::Sequence(items) => items.iter().all(|i| is_mapping(i)),
                Data::Scalar { .. } => false,
            };
            if !merges_mappings {
                return Err(SyntaxError {
                    line: key.line,
                    column: None,
                    message: "a merge key (<<) takes a mapping or a list of mappings".into(),
                });
            }
            continue;
        }
        let Some(text) = key_text(key) else {
            continue;
        };
        let first = if pairs.len() <= FEW_KEYS {
            pairs[..index]
                .iter()
                .find(|(earlier, _)| key_text(earlier) == Some(text))
                .map(|(earlier, _)| earlier.line)
        } else {
            seen.insert(text, key.line)
        };
        if let Some(first) = first {
            return Err(SyntaxError {
                line: key.line,
                column: None,
                message: format!("key {text:?} is already defined on line {first}"),
            });
        }
    }
    Ok(())
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.data, Data::Scalar { text, plain: true } if text == "<<")
}

/// A key that two of in one mapping would be a duplicate: a scalar, and not a merge key.
fn key_text(key: &Node) -> Option<&str> {
    match &key.data {
        Data::Scalar { text, .. } if !is_merge_key(key) => Some(text),
        _ => None,
    }
}

pub fn line(node: &Node) -> usize {
    node.line
}

fn plain_text(node: &Node) -> Option<&str> {
    match &node.data {
        Data::Scalar { text, plain: true } => Some(text),
        _ => None,
    }
}

/// What a node is, in words a user recognises in an error message.
pub fn kind(node: &Node) -> &'static str {
    match &node.data {
        Data::Mapping(_) => "a mapping",
        Data::Sequence(_) => "a list",
        Data::Scalar { .. } if is_null(node) => "empty",
        Data::Scalar { .. } if plain_text(node).is_some_and(is_core_bool) => "a boolean",
        Data::Scalar { .. } if plain_text(node).is_some_and(is_number) => "a number",
        Data::Scalar { .. } if node.tag.is_some() => "a tagged value",
        Data::Scalar { .. } => "a string",
    }
}

/// A YAML 1.2 core-schema boolean, as go-yaml types an untagged plain scalar (`yes` is a string).
pub fn is_core_bool(text: &str) -> bool {
    matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE")
}

/// A YAML 1.2 core-schema number, as go-yaml resolves an untagged plain scalar.
pub fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(prefix, radix)| Some((digits.strip_prefix(prefix)?, *radix)));
    if let Some((rest, radix)) = radix {
        return !rest.is_empty() && rest.chars().all(|c| c == '_' || c.is_digit(radix));
    }
    matches!(digits, ".inf" | ".Inf" | ".INF")
        || matches!(text, ".nan" | ".NaN" | ".NAN")
        || (digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && digits.replace('_', "").parse::<f64>().is_ok())
}

pub fn is_mapping(node: &Node) -> bool {
    matches!(node.data, Data::Mapping(_))
}

pub fn is_null(node: &Node) -> bool {
    plain_text(node).is_some_and(|t| matches!(t, "" | "~" | "null" | "Null" | "NULL"))
}

/// The text of a scalar as written (numbers and booleans too); `None` for null and collections.
pub fn scalar_text(node: &Node) -> Option<Cow<'_, str>> {
    match &node.data {
        Data::Scalar { text, .. } if !is_null(node) => Some(Cow::Borrowed(text.as_str())),
        _ => None,
    }
}

/// A boolean as compose casts one: YAML's `true`/`false` and the YAML 1.1 words
/// (`yes`/`no`/`on`/`off`/`y`/`n`) compose still accepts, in any case.
pub fn as_bool(node: &Node) -> Option<bool> {
    parse_bool(&scalar_text(node)?)
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" => Some(true),
        "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

pub fn as_sequence(node: &Node) -> Option<&[Rc<Node>]> {
    match &node.data {
        Data::Sequence(items) => Some(items),
        _ => None,
    }
}

/// The keys of a mapping as written (merge keys included); empty for anything else.
pub fn keys(node: &Node) -> impl Iterator<Item = &Node> {
    let pairs: &[(Rc<Node>, Rc<Node>)] = match &node.data {
        Data::Mapping(pairs) => pairs,
        _ => &[],
    };
    pairs.iter().map(|(key, _)| &**key)
}

/// Where [`walk`] is: the keys and indexes from the top to the node visited, joined only when
/// asked (most nodes are visited and left without one).
pub struct WalkPath<'w, 'n> {
    /// Each step with the index of the step before it; None at the top.
    steps: &'w [(Option<usize>, Step<'n>)],
    at: Option<usize>,
}

enum Step<'n> {
    Key(Cow<'n, str>),
    Index(usize),
}

impl WalkPath<'_, '_> {
    /// The path with `.` between its parts, e.g. `services.app.ports.0`; empty at the top.
    pub fn join(&self) -> String {
        let mut parts = Vec::new();
        let mut at = self.at;
        while let Some((parent, step)) = at.and_then(|i| self.steps.get(i)) {
            parts.push(match step {
                Step::Key(key) => key.to_string(),
                Step::Index(i) => i.to_string(),
            });
            at = *parent;
        }
        parts.reverse();
        parts.join(".")
    }
}

/// Every node below `node` (itself included) once, however often aliases repeat it, with the
/// path of its first occurrence: what a pass over all values (interpolation) needs.
pub fn walk<'n>(node: &'n Node, mut visit: impl FnMut(&WalkPath<'_, 'n>, &'n Node)) {
    // Only nodes an alias shares can come twice: only they are remembered.
    let mut seen = std::collections::HashSet::new();
    // Each step points at its parent's: one entry per node instead of a path per node.
    let mut steps: Vec<(Option<usize>, Step<'n>)> = Vec::new();
    let mut stack: Vec<(Option<usize>, &'n Node, bool)> = vec![(None, node, false)];
    while let Some((at, node, shared)) = stack.pop() {
        if shared && !seen.insert(std::ptr::from_ref(node)) {
            continue;
        }
        visit(&WalkPath { steps: &steps, at }, node);
        match &node.data {
            Data::Scalar { .. } => {}
            Data::Sequence(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    steps.push((at, Step::Index(i)));
                    stack.push((Some(steps.len() - 1), item, is_shared(item)));
                }
            }
            Data::Mapping(pairs) => {
                for (key, value) in pairs.iter().rev() {
                    let key = scalar_text(key).unwrap_or(Cow::Borrowed("?"));
                    steps.push((at, Step::Key(key)));
                    stack.push((Some(steps.len() - 1), value, is_shared(value)));
                }
            }
        }
    }
}

/// Held by more than one parent: an anchored node an alias repeats (the parser's anchor table
/// is gone once the tree is built).
fn is_shared(node: &Rc<Node>) -> bool {
    Rc::strong_count(node) > 1
}

/// One key of a mapping: its text, where it stands, and its value.
pub struct Entry<'n> {
    pub key: Cow<'n, str>,
    pub line: usize,
    pub value: &'n Node,
}

/// The entries of a mapping with merge keys applied: keys written in the mapping win over merged
/// ones, and earlier merge sources win over later ones, as in YAML 1.1 and compose. A value
/// tagged `!reset` counts as absent.
pub fn entries(node: &Node) -> Vec<Entry<'_>> {
    let mut own = Vec::new();
    let mut merged = Vec::new();
    if let Data::Mapping(pairs) = &node.data {
        for (key, value) in pairs {
            let Some(text) = scalar_text(key) else {
                continue;
            };
            if plain_text(key) == Some("<<") {
                match as_sequence(value) {
                    Some(sources) => sources.iter().for_each(|s| merged.extend(entries(s))),
                    None => merged.extend(entries(value)),
                }
            } else if value.tag.as_deref() != Some(RESET_TAG) {
                own.push(Entry {
                    key: text,
                    line: key.line,
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

/// The entry for `key`, as [`entries`] would have it, without listing them all unless the
/// mapping merges others in.
pub fn get<'n>(node: &'n Node, key: &str) -> Option<Entry<'n>> {
    let Data::Mapping(pairs) = &node.data else {
        return None;
    };
    let mut merges = false;
    for (k, value) in pairs {
        match &k.data {
            Data::Scalar { text, plain: true } if text == "<<" => merges = true,
            Data::Scalar { text, .. }
                if text == key && !is_null(k) && value.tag.as_deref() != Some(RESET_TAG) =>
            {
                return Some(Entry {
                    key: Cow::Borrowed(text.as_str()),
                    line: k.line,
                    value,
                });
            }
            _ => {}
        }
    }
    if merges {
        entries(node).into_iter().find(|e| e.key == key)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Rc<Node> {
        parse(text).unwrap().unwrap()
    }

    fn error_line(text: &str) -> (usize, String) {
        let err = parse(text).unwrap_err();
        (err.line, err.message)
    }

    #[test]
    fn merge_keys_apply_with_own_keys_winning() {
        let text = "base: &b\n  image: x\n  restart: always\nsvc:\n  <<: *b\n  restart: 'no'\n";
        let doc = doc(text);
        let svc = get(&doc, "svc").unwrap().value;
        let restart = get(svc, "restart").unwrap();
        assert_eq!(scalar_text(restart.value).unwrap(), "no");
        assert_eq!(restart.line, 6);
        assert_eq!(scalar_text(get(svc, "image").unwrap().value).unwrap(), "x");
    }

    #[test]
    fn syntax_errors_carry_a_one_based_line() {
        assert_eq!(error_line("a: 1\nb: [1, 2\nc: 3\n").0, 3);
        assert_eq!(error_line("a:\n\tb: 1\n").0, 2);
        assert_eq!(error_line("a: 1\nb: \u{1}\n").0, 2);
    }

    #[test]
    fn lines_are_one_based() {
        let doc = doc("a: 1\nb:\n  c: 2\n");
        assert_eq!(get(&doc, "b").unwrap().line, 2);
        let b = get(&doc, "b").unwrap().value;
        assert_eq!(get(b, "c").unwrap().line, 3);
    }

    #[test]
    fn accepts_what_libyaml_accepts() {
        let text = "hc:\n  test: [\n      \"CMD\",\n      # why\n      \"true\"\n  ]\n  env: {\nA: b\n  }\n";
        let doc = doc(text);
        let hc = get(&doc, "hc").unwrap().value;
        assert_eq!(
            as_sequence(get(hc, "test").unwrap().value).unwrap().len(),
            2
        );
    }

    #[test]
    fn refuses_what_go_yaml_refuses() {
        for (text, line, needle) in [
            ("a: 1\nb: 2\na: 3\n", 3, "already defined on line 1"),
            ("a: *nope\n", 1, "unknown anchor"),
            ("a: &x\n  b: *x\n", 2, "inside the node it names"),
            ("x: &x [1]\ny:\n  <<: *x\n", 3, "merge key"),
            ("%YAML 1.2\n---\na: 1\n", 1, "YAML 1.1"),
            ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ] {
            let (got, message) = error_line(text);
            assert_eq!(got, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
        let deep = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(error_line(&deep).1.contains("nested deeper"));
    }

    #[test]
    fn inputs_that_crash_the_scanner_are_read_or_refused() {
        for text in [
            "a: |\n  x",
            "a: >\n  x",
            "a: \"x\\",
            "a: [!!str, x]",
            "{!t, b}",
            "[''!,",
        ] {
            let _ = parse(text);
        }
        let doc = doc("a: [!!str, x]\nb: |+\n  y");
        assert_eq!(as_sequence(get(&doc, "a").unwrap().value).unwrap().len(), 2);
        assert_eq!(
            avoid_scanner_panics("a: Hello!, world\n"),
            "a: Hello!, world\n"
        );
    }

    #[test]
    fn get_finds_what_entries_lists() {
        let text = "base: &b\n  image: x\n  restart: always\n  user: u\n\
                    svc:\n  <<: *b\n  restart: 'no'\n  user: !reset null\n  '<<': quoted\n  ~: nothing\n\
                    plain:\n  image: y\n";
        let doc = doc(text);
        for name in ["svc", "plain", "base"] {
            let node = get(&doc, name).unwrap().value;
            for key in ["image", "restart", "user", "<<", "~", "", "missing"] {
                let listed = entries(node).into_iter().find(|e| e.key == key);
                let found = get(node, key);
                assert_eq!(
                    found.map(|e| (e.line, line(e.value))),
                    listed.map(|e| (e.line, line(e.value))),
                    "{name}.{key}"
                );
            }
        }
    }

    #[test]
    fn walk_paths_name_keys_and_indexes() {
        let doc = doc("a:\n  b: [x, {c: y}]\n");
        let mut paths = Vec::new();
        walk(&doc, |path, _| paths.push(path.join()));
        assert_eq!(paths, ["", "a", "a.b", "a.b.0", "a.b.1", "a.b.1.c"]);
    }

    #[test]
    fn aliases_share_nodes_and_walk_visits_each_once() {
        let mut text = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            text.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        let doc = doc(&text);
        let mut visited = 0;
        walk(&doc, |_, _| visited += 1);
        assert!(visited < 200, "{visited}");
    }

    #[test]
    fn scalars_are_typed_as_compose_types_them() {
        let doc = doc("a: ~\nb: yes\nc: '1'\nd: 0x1F\ne: 1.5\nf: !reset x\ng: text\n");
        let kinds: Vec<_> = ["a", "b", "c", "d", "e", "g"]
            .iter()
            .map(|k| kind(get(&doc, k).unwrap().value))
            .collect();
        assert_eq!(
            kinds,
            [
                "empty", "a string", "a string", "a number", "a number", "a string"
            ]
        );
        assert_eq!(as_bool(get(&doc, "b").unwrap().value), Some(true));
        assert!(get(&doc, "f").is_none());
    }
}
