//! Host tools the tests need. Tests that use them are `#[ignore = "...why..."]` in a plain
//! `cargo test`; the README's test command runs them (`--include-ignored`), and a missing tool
//! is then a failure that says what to install.

use std::path::PathBuf;

/// The path of a host tool; panics with what to install when it is missing.
pub fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is not installed (Debian package {package})"))
}
