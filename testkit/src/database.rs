//! A client that remembers what PostgreSQL acknowledged: it commits numbered rows into table
//! `acked` one after another and appends each number whose commit was acknowledged to a file.
//! After a fault, "nothing lost" means every number in the file is in the table. It runs in the
//! environment of the database's engine (the host, or the guest, with which it goes down) and
//! talks to the database as a client on that machine would, through `docker exec … psql`.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use crate::e2e::{stderr_of, stdout_of, wait_until};
use crate::layered::PSQL;

/// `sh -c SCRIPT` in the writer's environment.
pub type Shell<'a> = &'a dyn Fn(&str) -> Output;
/// `docker ARGS` against the database's engine.
pub type Docker<'a> = &'a dyn Fn(&[&str]) -> Output;

/// How the writer's loop is put in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// A session of its own (the host, which has no systemd of its own); stopped with kill.
    Setsid,
    /// A transient unit of the machine's systemd (`systemd-run`), so that it stops with it.
    SystemdRun,
}

/// The unit a [`Background::SystemdRun`] writer runs as.
const WRITER_UNIT: &str = "composectl-test-writer.service";

/// A writer running in the background.
pub struct Writer {
    acked_file: String,
    stop: String,
    /// A [`Background::Setsid`] writer's pid: killed on drop, so that a row that failed half
    /// way leaves no writer behind (a unit's is stopped by the next start).
    pid: Option<String>,
}

/// `psql -c SQL` in `container`.
pub fn psql(docker: Docker, container: &str, sql: &str) -> Output {
    let mut args = vec!["exec", container];
    args.extend(PSQL);
    args.extend(["-c", sql]);
    docker(&args)
}

impl Writer {
    /// Creates the table if needed and starts committing into `container`'s database, numbers
    /// going on from the last in `acked_file` (a path in the writer's environment).
    pub fn start(
        sh: Shell,
        docker: Docker,
        background: Background,
        container: &str,
        acked_file: &str,
    ) -> Result<Writer, String> {
        let created = psql(
            docker,
            container,
            "CREATE TABLE IF NOT EXISTS acked (n bigint PRIMARY KEY)",
        );
        if !created.status.success() {
            return Err(format!("create table acked: {}", stderr_of(&created)));
        }
        let psql = PSQL.join(" ");
        // A commit whose answer was lost is not counted (it may still be in the table); its
        // number is never used again. Each attempt is bounded, so a hung exec cannot stall it.
        let script = format!(
            r#"n=$(tail -n 1 {acked_file} 2>/dev/null); n=${{n:-0}}
while :; do
    n=$((n + 1))
    if timeout 10 docker exec {container} {psql} -c "INSERT INTO acked VALUES ($n)" >/dev/null 2>&1
    then echo $n >>{acked_file}; else sleep 0.2; fi
done"#
        );
        let script_file = format!("{acked_file}.sh");
        let (launch, stop) = match background {
            Background::Setsid => (
                format!("setsid sh {script_file} </dev/null >/dev/null 2>&1 & echo $!"),
                None,
            ),
            Background::SystemdRun => (
                format!(
                    "systemctl stop {WRITER_UNIT} 2>/dev/null; \
                     systemctl reset-failed {WRITER_UNIT} 2>/dev/null; \
                     systemd-run --quiet --unit={WRITER_UNIT} sh {script_file}"
                ),
                Some(format!(
                    "systemctl stop {WRITER_UNIT}; systemctl reset-failed {WRITER_UNIT} 2>/dev/null; true"
                )),
            ),
        };
        let started = sh(&format!(
            "cat >{script_file} <<'EOF'\n{script}\nEOF\n{launch}"
        ));
        if !started.status.success() {
            return Err(format!("start the writer: {}", stderr_of(&started)));
        }
        let pid =
            (background == Background::Setsid).then(|| stdout_of(&started).trim().to_string());
        let stop = stop.unwrap_or_else(|| format!("kill {}", pid.as_deref().unwrap_or_default()));
        Ok(Writer {
            acked_file: acked_file.to_string(),
            stop,
            pid,
        })
    }

    /// The numbers acknowledged so far.
    pub fn acked(&self, sh: Shell) -> Vec<u64> {
        stdout_of(&sh(&format!("cat {} 2>/dev/null", self.acked_file)))
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Waits until `more` commits beyond those acknowledged now are acknowledged.
    pub fn wait_for_more(&self, sh: Shell, more: usize, timeout: Duration) -> Result<(), String> {
        let want = self.acked(sh).len() + more;
        let mut have = 0;
        if wait_until(timeout, || {
            have = self.acked(sh).len();
            have >= want
        }) {
            Ok(())
        } else {
            Err(format!(
                "the writer got no further than {have} acknowledged commits in {timeout:?}"
            ))
        }
    }

    /// Stops it (a writer a reboot took down is gone already); returns what it acknowledged.
    pub fn stop(self, sh: Shell) -> Vec<u64> {
        sh(&self.stop);
        self.acked(sh)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(pid) = &self.pid {
            let _ = std::process::Command::new("kill").arg(pid).output();
        }
    }
}

/// How many of `acked` are missing from `container`'s table; Err when it cannot be read.
pub fn lost(docker: Docker, container: &str, acked: &[u64]) -> Result<usize, String> {
    let rows = psql(docker, container, "SELECT n FROM acked");
    if !rows.status.success() {
        return Err(format!("read table acked: {}", stderr_of(&rows)));
    }
    let present: BTreeSet<u64> = stdout_of(&rows)
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    Ok(acked.iter().filter(|n| !present.contains(n)).count())
}

/// How PostgreSQL's starts in `log` (its lines in the journal) found the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Starts {
    /// "database system was shut down at …": the previous shutdown finished.
    pub after_clean_shutdown: usize,
    /// "database system was interrupted …": killed before it could finish; recovery ran.
    pub with_recovery: usize,
}

impl Starts {
    pub fn of(log: &[String]) -> Starts {
        Starts {
            after_clean_shutdown: log
                .iter()
                .filter(|l| l.contains("database system was shut down at"))
                .count(),
            with_recovery: log
                .iter()
                .filter(|l| l.contains("database system was interrupted"))
                .count(),
        }
    }
}
