//! What the host offers the tests. Without COMPOSECTL_E2E=1 a missing tool skips the test with a
//! printed reason; with it (the README's test command sets it) a missing tool is a failure.

use std::path::PathBuf;

pub fn required() -> bool {
    std::env::var("COMPOSECTL_E2E").as_deref() == Ok("1")
}

/// Skips (returns false after saying why) or, under COMPOSECTL_E2E=1, fails.
pub fn skip(reason: &str) -> bool {
    assert!(!required(), "COMPOSECTL_E2E=1 but {reason}");
    eprintln!("skipping: {reason}");
    false
}

/// The path of a host tool, or None (after a printed skip) when it is missing.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        skip(&format!("{name} is not installed"));
    }
    found
}
