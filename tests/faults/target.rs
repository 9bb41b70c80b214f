//! Where a fault runs: the three layered stacks (database a real PostgreSQL), enabled and ready,
//! in a private `systemd --user` manager on the host's engine (`user`) or in the system-mode
//! guest (`guest`), and what the fault suite asks of them whichever it is.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use composectl_testkit::database::{Background, Writer};
use composectl_testkit::e2e::{
    self, TEST_IMAGE, UserManager, free_subnet, remove_leftover_networks, stderr_of, stdout_of,
    wait_until,
};
use composectl_testkit::guest::{self, Guest, ROOT};
use composectl_testkit::layered::{DATA_DIR, Layered, POSTGRES_IMAGE};

/// How long the stacks get to be ready after `enable --now`, before any fault.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);

/// The two environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Guest,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Guest => "guest",
        }
    }
}

/// The three stacks in one environment, torn down on drop.
pub enum Target {
    User(UserTarget),
    Guest(Guest),
}

pub struct UserTarget {
    /// In an Option so Drop can stop the manager (and its supervisors) before removing what
    /// they ran on the engine.
    manager: Option<UserManager>,
    root: tempfile::TempDir,
    /// `e<pid>x<run>-`: every engine object of this target is named with it.
    prefix: String,
    stacks: Layered,
}

/// The state of one unit, from `systemctl show`.
pub type Unit = BTreeMap<String, String>;

/// What the fault suite compares before and after a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// genai's container: id and StartedAt ("-" when there is none).
    pub genai_container: String,
    /// genai's unit: InvocationID (a new one on every start).
    pub genai_invocation: String,
}

impl Target {
    /// Writes the stacks, `composectl enable --now genai`, waits until all are ready and writes
    /// `token` into database's volume. Err says what did not work.
    pub fn new(kind: Kind, run: u8, token: &str) -> Result<Target, String> {
        let target = match kind {
            Kind::User => {
                remove_leftover_networks();
                let prefix = format!("e{}x{run}-", std::process::id());
                let stacks = Layered::with_postgres(&prefix);
                let root = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                stacks.write(root.path(), &format!("{prefix}net"), &free_subnet());
                Target::User(UserTarget {
                    manager: Some(UserManager::start()),
                    root,
                    prefix,
                    stacks,
                })
            }
            Kind::Guest => {
                let guest = guest::guest();
                guest.write_stacks(&Layered::with_postgres(""));
                Target::Guest(guest)
            }
        };
        let tagged = target.docker(&["tag", POSTGRES_IMAGE, &target.stacks().database_image()]);
        if !tagged.status.success() {
            return Err(format!(
                "no database image ({POSTGRES_IMAGE}): {}",
                stderr_of(&tagged)
            ));
        }
        let enabled = target.composectl(&["enable", "--now", &target.stacks().genai()]);
        if !enabled.status.success() {
            return Err(format!(
                "enable --now failed: {}{}",
                stdout_of(&enabled),
                stderr_of(&enabled)
            ));
        }
        let mut last = String::new();
        if !wait_until(SETUP_TIMEOUT, || match target.not_ready() {
            None => true,
            Some(why) => {
                last = why;
                false
            }
        }) {
            return Err(format!("not ready after enable --now: {last}"));
        }
        let wrote = target.in_volume(&["sh", "-c", &format!("echo {token} >{DATA_DIR}/token")]);
        if !wrote.status.success() {
            return Err(format!("cannot write the token: {}", stderr_of(&wrote)));
        }
        Ok(target)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Target::User(_) => Kind::User,
            Target::Guest(_) => Kind::Guest,
        }
    }

    pub fn stacks(&self) -> Layered {
        match self {
            Target::User(user) => user.stacks.clone(),
            Target::Guest(_) => Layered::with_postgres(""),
        }
    }

    /// database's container.
    pub fn database_container(&self) -> String {
        format!("{}-app-1", self.stacks().database())
    }

    /// database's compose file, as a path of this machine (the guest's rootfs is a directory
    /// of the host).
    pub fn database_compose(&self) -> std::path::PathBuf {
        let relative = Path::new("stacks")
            .join(self.stacks().database())
            .join("compose.yaml");
        match self {
            Target::User(user) => user.root.path().join(relative),
            Target::Guest(guest) => guest.path(ROOT).join(relative),
        }
    }

    /// `sh -c SCRIPT` in this environment (on the host for `user`).
    pub fn sh(&self, script: &str) -> Output {
        match self {
            Target::User(_) => e2e::sh(script),
            Target::Guest(guest) => guest.sh(script),
        }
    }

    /// Starts a writer into database, in this environment (in the guest, it goes down with it).
    pub fn start_writer(&self) -> Result<Writer, String> {
        let (background, acked_file) = match self {
            Target::User(user) => (
                Background::Setsid,
                user.root.path().join("acked").display().to_string(),
            ),
            Target::Guest(_) => (
                Background::SystemdRun,
                "/var/tmp/composectl-faults-acked".to_string(),
            ),
        };
        self.sh(&format!("rm -f {acked_file}"));
        Writer::start(
            &|script| self.sh(script),
            &|args| self.docker(args),
            background,
            &self.database_container(),
            &acked_file,
        )
    }

    pub fn manager(&mut self) -> &mut UserManager {
        match self {
            Target::User(user) => user.manager.as_mut().expect("a manager"),
            Target::Guest(_) => panic!("the guest has no user manager"),
        }
    }

    pub fn guest(&self) -> &Guest {
        match self {
            Target::Guest(guest) => guest,
            Target::User(_) => panic!("not the guest"),
        }
    }

    pub fn composectl(&self, args: &[&str]) -> Output {
        match self {
            Target::User(user) => user
                .manager
                .as_ref()
                .expect("a manager")
                .composectl(user.root.path(), args),
            Target::Guest(guest) => guest.composectl(args),
        }
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        match self {
            Target::User(user) => user.manager.as_ref().expect("a manager").systemctl(args),
            Target::Guest(guest) => guest.systemctl(args),
        }
    }

    /// `docker ARGS` against this environment's engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        match self {
            Target::User(_) => e2e::docker(args),
            Target::Guest(guest) => guest.docker(args),
        }
    }

    /// Whether this environment's engine answers.
    pub fn engine_answers(&self) -> bool {
        self.docker(&["info", "--format", "{{.ID}}"])
            .status
            .success()
    }

    /// Messages of a unit's journal during this run.
    pub fn journal(&self, unit: &str) -> Vec<String> {
        match self {
            Target::User(user) => user
                .manager
                .as_ref()
                .expect("a manager")
                .journal_lines(unit, &[]),
            Target::Guest(guest) => guest.journal(unit, &[]),
        }
    }

    /// The stacks' units, in start order (`systemctl show`).
    pub fn units(&self) -> Vec<Unit> {
        let names: Vec<String> = self
            .stacks()
            .all()
            .iter()
            .map(|s| format!("compose@{s}.service"))
            .collect();
        let mut args = vec![
            "show",
            "-p",
            "Id,ActiveState,SubState,Result,InvocationID,NRestarts,MainPID,StatusText",
        ];
        args.extend(names.iter().map(String::as_str));
        let out = self.systemctl(&args);
        stdout_of(&out)
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                block
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Whether any systemd job is queued or running (`systemctl list-jobs`).
    pub fn jobs_pending(&self) -> bool {
        let out = self.systemctl(&["list-jobs", "--no-legend", "--plain"]);
        !stdout_of(&out).trim().is_empty()
    }

    /// None when every unit is active/running and every container of the three projects runs
    /// and is healthy; else what is not.
    pub fn not_ready(&self) -> Option<String> {
        let mut problems = Vec::new();
        for unit in self.units() {
            let state = format!(
                "{}/{}",
                unit.get("ActiveState").map_or("?", String::as_str),
                unit.get("SubState").map_or("?", String::as_str)
            );
            if state != "active/running" {
                problems.push(format!(
                    "{} {state}",
                    unit.get("Id").map_or("?", String::as_str)
                ));
            }
        }
        let out = self.docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Label \"com.docker.compose.project\"}}|{{.State}}|{{.Status}}",
        ]);
        if !out.status.success() {
            problems.push(format!("engine: {}", stderr_of(&out).trim()));
            return Some(problems.join(", "));
        }
        let text = stdout_of(&out);
        for stack in self.stacks().all() {
            let containers: Vec<(&str, &str)> = text
                .lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, '|');
                    let project = parts.next()?;
                    (project == stack).then_some((parts.next()?, parts.next()?))
                })
                .collect();
            if containers.is_empty() {
                problems.push(format!("{stack}: no container"));
            }
            for (state, status) in containers {
                if state != "running" || !status.contains("(healthy)") {
                    problems.push(format!("{stack}: {status}"));
                }
            }
        }
        (!problems.is_empty()).then(|| problems.join(", "))
    }

    pub fn snapshot(&self) -> Snapshot {
        let genai = self.stacks().genai();
        let inspect = self.docker(&[
            "inspect",
            "-f",
            "{{.Id}} {{.State.StartedAt}}",
            &format!("{genai}-app-1"),
        ]);
        let genai_container = if inspect.status.success() {
            stdout_of(&inspect).trim().to_string()
        } else {
            "-".to_string()
        };
        let genai_invocation = self
            .units()
            .into_iter()
            .find(|u| u.get("Id").is_some_and(|id| id.contains(&genai)))
            .and_then(|u| u.get("InvocationID").cloned())
            .unwrap_or_default();
        Snapshot {
            genai_container,
            genai_invocation,
        }
    }

    /// Runs `args` in a throwaway container with database's volume at /data (the stack's own
    /// container may be gone).
    pub fn in_volume(&self, args: &[&str]) -> Output {
        let volume = format!("{}:{DATA_DIR}", self.stacks().volume());
        let mut all = vec![
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            "-v",
            &volume,
            TEST_IMAGE,
        ];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// The token in database's volume; None when it cannot be read.
    pub fn token(&self) -> Option<String> {
        let out = self.in_volume(&["cat", &format!("{DATA_DIR}/token")]);
        out.status
            .success()
            .then(|| stdout_of(&out).trim().to_string())
    }

    /// Waits up to `timeout` for the engine to answer; whether it did.
    pub fn wait_engine(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.engine_answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for UserTarget {
    fn drop(&mut self) {
        // The manager first (its supervisors are killed, no compose down), then what ran.
        drop(self.manager.take());
        let prefix = format!("name={}", self.prefix);
        let remove = |list: &[&str], rm: &[&str]| {
            let out = Command::new("docker").args(list).output();
            let ids: Vec<String> = out
                .map(|o| {
                    stdout_of(&o)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(rm).args(&ids).output();
            }
        };
        remove(&["ps", "-aq", "--filter", &prefix], &["rm", "-f"]);
        remove(
            &["volume", "ls", "-q", "--filter", &prefix],
            &["volume", "rm"],
        );
        remove(
            &["network", "ls", "-q", "--filter", &prefix],
            &["network", "rm"],
        );
        // The tag only: the image is the shared one, or a build of the update's row.
        let _ = Command::new("docker")
            .args(["rmi", &self.stacks.database_image()])
            .output();
    }
}

/// The journal lines worth quoting for a unit that did not come back.
pub fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Path of a script of this repository.
pub fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}
