//! The dependency tree, checked the way `cargo deny` would (which takes minutes to build here):
//! every crate built for Linux under a licence the project can ship (MIT OR Apache-2.0), no new
//! second version of a crate, and the lock file within its budget.

use std::collections::BTreeMap;
use std::process::Command;

use composectl_testkit::repo;

/// Licences a crate may be under (SPDX ids), all compatible with shipping MIT OR Apache-2.0.
const ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unlicense",
    "BSL-1.0",
];

/// Crates that name no SPDX expression, with the licence their licence file holds (read).
const LICENCE_FILES: &[(&str, &str)] = &[("libyaml-safer", "MIT")];

/// Crates in two versions, and why that is accepted for now.
const KNOWN_DUPLICATES: &[(&str, &str)] = &[(
    "winnow",
    "toml 0.9 itself is on winnow 0.7, its toml_parser on winnow 1 (upstream's split)",
)];

/// Cargo.lock's budget (issue 23): a dependency must earn its place.
const MAX_LOCKED_PACKAGES: usize = 175;

/// Whether an SPDX expression (`A OR B`, `A AND B`, parentheses, `WITH`, the old `A/B`) is
/// satisfied by the licences in `allowed`.
fn satisfied(expression: &str, allowed: &[&str]) -> bool {
    let spaced = expression
        .replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut at = 0;
    let value = or_expression(&tokens, &mut at, allowed);
    value && at == tokens.len()
}

fn or_expression(tokens: &[&str], at: &mut usize, allowed: &[&str]) -> bool {
    let mut value = and_expression(tokens, at, allowed);
    while tokens.get(*at) == Some(&"OR") {
        *at += 1;
        value |= and_expression(tokens, at, allowed);
    }
    value
}

fn and_expression(tokens: &[&str], at: &mut usize, allowed: &[&str]) -> bool {
    let mut value = licence(tokens, at, allowed);
    while tokens.get(*at) == Some(&"AND") {
        *at += 1;
        value &= licence(tokens, at, allowed);
    }
    value
}

fn licence(tokens: &[&str], at: &mut usize, allowed: &[&str]) -> bool {
    match tokens.get(*at) {
        Some(&"(") => {
            *at += 1;
            let value = or_expression(tokens, at, allowed);
            if tokens.get(*at) == Some(&")") {
                *at += 1;
                value
            } else {
                false
            }
        }
        Some(id) => {
            *at += 1;
            let mut id = id.to_string();
            if tokens.get(*at) == Some(&"WITH") {
                id = format!("{id} WITH {}", tokens.get(*at + 1).unwrap_or(&""));
                *at += 2;
            }
            allowed.contains(&id.as_str())
        }
        None => false,
    }
}

/// (name, version, licence) of every package cargo builds for Linux, this workspace's included.
fn packages() -> Vec<(String, String, Option<String>)> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["version"].as_str().unwrap_or_default().to_string(),
                p["license"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn every_crate_is_under_a_licence_we_can_ship() {
    let refused: Vec<String> = packages()
        .into_iter()
        .filter(|(name, _, licence)| {
            let licence = licence.clone().or_else(|| {
                LICENCE_FILES
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, l)| l.to_string())
            });
            !licence.is_some_and(|l| satisfied(&l, ALLOWED))
        })
        .map(|(name, version, licence)| format!("{name} {version}: {licence:?}"))
        .collect();
    assert!(
        refused.is_empty(),
        "crates under a licence not in ALLOWED (tests/cli/dependencies.rs), or none:\n{}",
        refused.join("\n")
    );
}

#[test]
fn no_new_crate_in_two_versions() {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, version, _) in packages() {
        versions.entry(name).or_default().push(version);
    }
    let duplicated: Vec<String> = versions
        .iter()
        .filter(|(name, v)| v.len() > 1 && !KNOWN_DUPLICATES.iter().any(|(k, _)| k == name))
        .map(|(name, v)| format!("{name}: {}", v.join(", ")))
        .collect();
    assert!(
        duplicated.is_empty(),
        "crates in two versions (align them, or say why in KNOWN_DUPLICATES):\n{}",
        duplicated.join("\n")
    );
    for (name, _) in KNOWN_DUPLICATES {
        assert!(
            versions.get(*name).is_some_and(|v| v.len() > 1),
            "{name} is in one version now: take it out of KNOWN_DUPLICATES"
        );
    }
}

#[test]
fn the_lock_file_stays_within_its_budget() {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let count = lock.lines().filter(|l| *l == "[[package]]").count();
    assert!(
        count <= MAX_LOCKED_PACKAGES,
        "Cargo.lock holds {count} packages, more than {MAX_LOCKED_PACKAGES}: drop a crate \
         or trim features before raising the budget"
    );
}

#[test]
fn spdx_expressions_are_read_as_spdx() {
    let allowed = &["MIT", "Apache-2.0", "Unicode-3.0"];
    assert!(satisfied("MIT OR Apache-2.0", allowed));
    assert!(satisfied("MIT/Apache-2.0", allowed));
    assert!(satisfied("(MIT OR Apache-2.0) AND Unicode-3.0", allowed));
    assert!(!satisfied("GPL-3.0-only", allowed));
    assert!(!satisfied("MIT AND GPL-3.0-only", allowed));
    assert!(satisfied("GPL-3.0-only OR MIT", allowed));
    assert!(!satisfied("Apache-2.0 WITH LLVM-exception", allowed));
    assert!(!satisfied("(MIT", allowed));
}
