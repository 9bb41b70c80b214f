//! The shape of the code, checked: no import circle between the files of src/ (a circle is two
//! modules that cannot be read, changed or tested apart), and the test layers in separate
//! targets that share testkit/, with no `#[path]` includes and no `allow(dead_code)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use composectl_testkit::repo;

/// The `.rs` files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `crate::a::b` for src/a/b.rs and src/a/b/mod.rs; `crate` for lib.rs. Binaries are no modules.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.first().map(String::as_str) {
        Some("main" | "bin") => return None,
        Some("lib") if parts.len() == 1 => parts.clear(),
        _ => {}
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(
        std::iter::once("crate".to_string())
            .chain(parts)
            .collect::<Vec<_>>()
            .join("::"),
    )
}

/// The code a module runs outside its tests: everything before its `#[cfg(test)]` module, without
/// comments, `mod` declarations and `pub use` re-exports (a parent that hands a child's names on
/// does not depend on it).
fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
    code.lines()
        .map(|line| line.split("//").next().unwrap_or_default().trim())
        .filter(|line| {
            !(line.starts_with("pub use ")
                || line.starts_with("pub(crate) use ")
                || line.starts_with("mod ")
                || line.starts_with("pub mod ")
                || line.starts_with("pub(crate) mod "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path `crate::x::y…` or `super::…` in `code`, made absolute from `module`: each as the
/// list of its segments. A `use` group (`crate::a::{b, c::d}`) gives one path per member.
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let starts = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (i == 0 || !ident(bytes[i - 1]) && bytes[i - 1] != ':');
        if !starts {
            i += 1;
            continue;
        }
        // Up to the end of the path (or of the whole `use` group).
        let mut j = i;
        let mut depth = 0;
        while j < bytes.len() {
            match bytes[j] {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                c if depth == 0 && !(ident(c) || c == ':') => break,
                _ => {}
            }
            j += 1;
        }
        let text: String = bytes[i..j].iter().collect();
        for path in expand(&text) {
            found.push(absolute(module, &path));
        }
        i = j;
    }
    found
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(text: &str) -> Vec<String> {
    let Some(open) = text.find('{') else {
        return vec![text.trim_end_matches("::").to_string()];
    };
    let prefix = &text[..open];
    let inner = text[open + 1..].trim_end_matches('}');
    let mut members = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                members.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    members.push(&inner[start..]);
    members
        .into_iter()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .flat_map(|m| expand(&format!("{prefix}{}", m.split(" as ").next().unwrap_or(m))))
        .collect()
}

fn absolute(module: &str, path: &str) -> Vec<String> {
    let mut segments: Vec<String> = path.split("::").map(str::to_string).collect();
    if segments[0] == "crate" {
        return segments;
    }
    // `super` in a.rs is the parent of crate::a; in a/mod.rs too (mod.rs *is* crate::a).
    let mut base: Vec<String> = module.split("::").map(str::to_string).collect();
    while segments.first().is_some_and(|s| s == "super") {
        segments.remove(0);
        base.pop();
    }
    base.extend(segments);
    base
}

/// The circles of a graph: its strongly connected components with more than one node.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: Vec<&String> = edges.keys().collect();
    let reaches = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(node) = todo.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in &nodes {
        if done.contains(*node) {
            continue;
        }
        let circle: Vec<String> = nodes
            .iter()
            .filter(|other| reach[*node].contains(**other) && reach[**other].contains(*node))
            .map(|other| (*other).clone())
            .collect();
        done.extend(circle.iter().cloned());
        if circle.len() > 1 {
            found.push(circle);
        }
    }
    found
}

/// The file → file imports of src/: each file's paths, resolved to the longest module that is a
/// file.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo().join("src");
    let files: BTreeMap<String, PathBuf> = rust_files(&src)
        .into_iter()
        .filter_map(|file| Some((module_of(&src, &file)?, file)))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        let code = production_code(&fs::read_to_string(file).expect("source"));
        let targets: BTreeSet<String> = paths(module, &code)
            .into_iter()
            .filter_map(|segments| {
                (1..=segments.len())
                    .rev()
                    .map(|n| segments[..n].join("::"))
                    .find(|prefix| files.contains_key(prefix))
            })
            .filter(|target| target != module)
            .collect();
        edges.insert(module.clone(), targets);
    }
    edges
}

#[test]
fn no_import_circle_in_src() {
    let edges = imports();
    assert!(
        edges
            .get("crate::config::meta")
            .is_some_and(|t| t.contains("crate::config::parser")),
        "the checker reads imports (meta uses the parser): {edges:#?}"
    );
    let found = circles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|circle| {
            circle
                .iter()
                .map(|module| {
                    let inside: Vec<&String> = edges[module]
                        .iter()
                        .filter(|t| circle.contains(t))
                        .collect();
                    format!("{module} -> {inside:?}")
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles in src/:\n{}",
        described.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(circles(&edges), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        paths(
            "crate::x::y",
            "use super::{z::Q, w};\nlet v = crate::m::f();"
        ),
        vec![
            vec!["crate", "x", "z", "Q"],
            vec!["crate", "x", "w"],
            vec!["crate", "m", "f"]
        ]
    );
}

#[test]
fn test_layers_share_testkit_without_includes() {
    let root = repo();
    let mut offenders = Vec::new();
    for dir in ["tests", "bench", "testkit", "src"] {
        for file in rust_files(&root.join(dir)) {
            if file.starts_with(root.join("tests/corpus")) {
                continue;
            }
            let text = fs::read_to_string(&file).expect("source");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                let attribute = code.starts_with("#[") || code.starts_with("#![");
                if attribute && (code.starts_with("#[path") || code.contains("dead_code")) {
                    offenders.push(format!("{}:{}: {code}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
