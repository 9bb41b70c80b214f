//! A builder for running the composectl binary against a root, in the style of casey/just's
//! integration tests: describe the files, the arguments and what must come out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use indoc::indoc;
use tempfile::TempDir;

/// The repository's own example root.
pub fn example_root() -> PathBuf {
    crate::repo()
}

/// README.md as it is in the repository.
pub fn readme() -> String {
    std::fs::read_to_string(example_root().join("README.md")).expect("README.md")
}

/// The fenced block of README.md after `<!-- readme-test: NAME -->`, without its fences.
pub fn readme_block(name: &str) -> String {
    let readme = readme();
    let marker = format!("<!-- readme-test: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let body = after
        .trim_start()
        .split_once('\n')
        .expect("an opening fence after the marker")
        .1;
    body.split_once("\n```")
        .expect("a closing fence")
        .0
        .to_string()
}

/// What stderr must hold: exactly this (empty unless a test says otherwise), or these pieces.
enum Stderr {
    Exact(String),
    Has(Vec<String>),
}

#[must_use = "a Test checks nothing until .run()"]
pub struct Test {
    pub dir: TempDir,
    root: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    code: i32,
    stdout: Option<String>,
    stdout_has: Vec<String>,
    stderr: Stderr,
}

// No Default: `new` makes a temporary directory, which a default value should not.
#[allow(clippy::new_without_default)]
impl Test {
    /// An empty temporary root (stacks/ exists, nothing else).
    pub fn new() -> Test {
        let dir = TempDir::new().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("root/stacks")).expect("stacks dir");
        let root = dir.path().join("root");
        Test {
            dir,
            root,
            args: Vec::new(),
            env: Vec::new(),
            code: 0,
            stdout: None,
            stdout_has: Vec::new(),
            stderr: Stderr::Exact(String::new()),
        }
    }

    /// A small valid root: two networks, `db` and `app` (which requires db).
    pub fn valid() -> Test {
        Test::new()
            .file(
                "networks.toml",
                indoc! {r#"
                    [networks.front]
                    subnet = "10.10.0.0/24"

                    [networks.back]
                    subnet = "10.20.0.0/24"
                    internal = true
                "#},
            )
            .file(
                "stacks/db/compose.yaml",
                indoc! {r#"
                    services:
                      db:
                        image: postgres:16
                        networks: [back]
                    networks:
                      back:
                        external: true
                "#},
            )
            .file(
                "stacks/app/compose.yaml",
                indoc! {r#"
                    x-composectl:
                      requires: [db]
                    services:
                      web:
                        image: nginx
                        networks: [front, back]
                    networks:
                      front:
                        external: true
                      back:
                        external: true
                "#},
            )
    }

    /// Runs against an existing directory instead of the temporary one.
    pub fn at(mut self, root: &Path) -> Test {
        self.root = root.to_path_buf();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn file(self, path: &str, contents: &str) -> Test {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write fixture");
        self
    }

    /// Arbitrary changes to the root that `file` cannot express (modes, links, FIFOs).
    pub fn with(self, setup: impl FnOnce(&Path)) -> Test {
        setup(&self.root);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn code(mut self, code: i32) -> Test {
        self.code = code;
        self
    }

    pub fn stdout(mut self, expected: &str) -> Test {
        self.stdout = Some(expected.into());
        self
    }

    pub fn stdout_has(mut self, needle: &str) -> Test {
        self.stdout_has.push(needle.into());
        self
    }

    /// stderr must be exactly `expected` (by default it must be empty).
    pub fn stderr(mut self, expected: &str) -> Test {
        self.stderr = Stderr::Exact(expected.into());
        self
    }

    /// stderr must contain `needle`, and may hold anything else.
    pub fn stderr_has(mut self, needle: &str) -> Test {
        match &mut self.stderr {
            Stderr::Has(needles) => needles.push(needle.into()),
            exact => *exact = Stderr::Has(vec![needle.into()]),
        }
        self
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(crate::bin());
        command
            .arg("--root")
            .arg(&self.root)
            .args(&self.args)
            .env_remove("COMPOSECTL_ROOT")
            // User mode's unit directory and config live in the test's own directory.
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("NO_COLOR", "1")
            .env("COMPOSECTL_EXEC", "/usr/bin/composectl");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs and checks everything that was asked for; returns the output for further checks.
    /// A failure points at the test's line, not at this one.
    #[track_caller]
    pub fn run(self) -> Output {
        let output = self.command().output().expect("run composectl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let context = format!(
            "args: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.args
        );
        assert!(
            !stderr.contains("panicked"),
            "composectl panicked\n{context}"
        );
        assert_eq!(
            output.status.code(),
            Some(self.code),
            "exit code\n{context}"
        );
        if let Some(expected) = &self.stdout {
            assert_eq!(&stdout, expected, "stdout\n{context}");
        }
        for needle in &self.stdout_has {
            assert!(
                stdout.contains(needle.as_str()),
                "stdout lacks {needle:?}\n{context}"
            );
        }
        match &self.stderr {
            Stderr::Exact(expected) => assert_eq!(&stderr, expected, "stderr\n{context}"),
            Stderr::Has(needles) => {
                for needle in needles {
                    assert!(
                        stderr.contains(needle.as_str()),
                        "stderr lacks {needle:?}\n{context}"
                    );
                }
            }
        }
        output
    }
}
