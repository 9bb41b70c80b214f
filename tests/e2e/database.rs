//! A real database under writes: Debian's PostgreSQL 15 (scripts/make-postgres-image.sh) in a
//! stack of a real user manager, a writer committing numbered rows and remembering each commit
//! PostgreSQL acknowledged, and after each fault the check that every acknowledged row is there.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use composectl_testkit::e2e::{UserManager, environment, stdout_of, wait_until};
use composectl_testkit::layered::{POSTGRES_IMAGE, PSQL, postgres_compose_file};
use composectl_testkit::stacks::{FAST_DEFAULTS, Stacks, composectl, text};

use crate::supervision::{active, unit};

/// A stack with one PostgreSQL service `db`, its data in a named volume; `meta` goes first.
fn database_stack(stacks: &mut Stacks, meta: &str) -> String {
    let net = stacks.network("net");
    let name = stacks.name("pg");
    let dir = stacks.root().join("stacks").join(&name);
    fs::create_dir_all(&dir).expect("stack dir");
    fs::write(dir.join("compose.yaml"), postgres_compose_file(meta, &net)).expect("compose.yaml");
    name
}

/// The e2e environment, and the database image in its engine.
fn database_environment() {
    environment();
    let image = Command::new("docker")
        .args(["image", "inspect", POSTGRES_IMAGE])
        .output()
        .expect("docker image inspect");
    assert!(
        image.status.success(),
        "no {POSTGRES_IMAGE} in the engine: scripts/provision-e2e.sh builds it (scripts/make-postgres-image.sh)"
    );
}

/// `psql -c SQL` in the stack's running database container; None when it did not succeed.
fn psql(stack: &str, sql: &str) -> Option<String> {
    let ps = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=com.docker.compose.project={stack}"))
        .output()
        .ok()?;
    let id = stdout_of(&ps).trim().to_string();
    if id.is_empty() {
        return None;
    }
    let out = Command::new("docker")
        .args(["exec", &id])
        .args(PSQL)
        .args(["-c", sql])
        .output()
        .ok()?;
    out.status.success().then(|| stdout_of(&out))
}

/// Commits `INSERT INTO acked VALUES (n)` for n = 1, 2, ... until stopped, and remembers every
/// n whose commit PostgreSQL acknowledged (an n whose answer was lost is simply not counted).
struct Writer {
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(stack: &str) -> Writer {
        assert!(
            psql(
                stack,
                "CREATE TABLE IF NOT EXISTS acked (n bigint PRIMARY KEY)"
            )
            .is_some(),
            "create the table"
        );
        // Numbers go on from the rows already there.
        let first: u64 = psql(stack, "SELECT coalesce(max(n), 0) FROM acked")
            .and_then(|max| max.trim().parse().ok())
            .expect("read the table");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (acked, stop, stack) = (acked.clone(), stop.clone(), stack.to_string());
            thread::spawn(move || {
                let mut n = first;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    if psql(&stack, &format!("INSERT INTO acked VALUES ({n})")).is_some() {
                        acked.lock().expect("acked").push(n);
                    } else {
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Writer {
            acked,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Waits until `more` further commits were acknowledged (writes go on after a fault).
    fn wait_for_more(&self, more: usize) {
        let want = self.acked() + more;
        assert!(
            wait_until(Duration::from_secs(90), || self.acked() >= want),
            "the writer got no further than {} acknowledged commits",
            self.acked()
        );
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("writer");
        }
        self.acked.lock().expect("acked").clone()
    }
}

/// How many acknowledged rows are missing from the table now.
fn lost(stack: &str, acked: &[u64]) -> usize {
    let rows = psql(stack, "SELECT n FROM acked").expect("read the table");
    let present: BTreeSet<u64> = rows.lines().filter_map(|l| l.parse().ok()).collect();
    acked.iter().filter(|n| !present.contains(n)).count()
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd, Compose v2 and the database image (scripts/test.sh provisions them)"]
fn postgres_under_writes_loses_no_acknowledged_commit_when_killed_or_stopped() {
    database_environment();
    // Four starts in a minute (two faults, a stop and a start): more than the quick defaults'
    // start limit allows.
    let mut stacks = Stacks::with_settings(
        &FAST_DEFAULTS.replace("start_limit_burst = 3", "start_limit_burst = 10"),
    );
    let manager = UserManager::start();
    let pg = database_stack(&mut stacks, "");
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &pg]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    active(&manager, &pg);
    let journal = || manager.journal_lines(&unit(&pg), &["COMPOSE_SERVICE=db"]);

    // The container SIGKILLed mid-write: the stack comes back and PostgreSQL recovers.
    let writer = Writer::start(&pg);
    writer.wait_for_more(50);
    let killed = Command::new("docker")
        .args(["kill", "-s", "KILL", &format!("{pg}-db-1")])
        .output()
        .expect("docker kill");
    assert!(killed.status.success(), "{}", text(&killed));
    let began = Instant::now();
    writer.wait_for_more(50);
    let back_after = began.elapsed();
    let mut acked = writer.finish();
    assert_eq!(
        lost(&pg, &acked),
        0,
        "after SIGKILL: {} acknowledged",
        acked.len()
    );
    assert!(
        journal()
            .iter()
            .any(|l| l.contains("database system was interrupted")
                || l.contains("automatic recovery in progress")),
        "a crash recovery in the log: {:?}",
        journal()
    );

    // The supervisor SIGKILLed mid-write: systemd starts it again, it adopts the container.
    let writer = Writer::start(&pg);
    writer.wait_for_more(50);
    let container = Command::new("docker")
        .args(["inspect", "-f", "{{.Id}}", &format!("{pg}-db-1")])
        .output()
        .expect("docker inspect");
    let supervisor = manager.property(&unit(&pg), "MainPID");
    let killed = Command::new("kill")
        .args(["-KILL", &supervisor])
        .output()
        .expect("kill");
    assert!(killed.status.success(), "{}", text(&killed));
    assert!(
        wait_until(Duration::from_secs(60), || {
            let pid = manager.property(&unit(&pg), "MainPID");
            pid != supervisor && pid != "0"
        }),
        "the supervisor was not started again"
    );
    active(&manager, &pg);
    writer.wait_for_more(50);
    acked.extend(writer.finish());
    assert_eq!(lost(&pg, &acked), 0, "after the supervisor's SIGKILL");
    let adopted = Command::new("docker")
        .args(["inspect", "-f", "{{.Id}}", &format!("{pg}-db-1")])
        .output()
        .expect("docker inspect");
    assert_eq!(
        stdout_of(&adopted),
        stdout_of(&container),
        "the same container, adopted"
    );

    // `systemctl stop` mid-write: PostgreSQL shuts down cleanly within its grace period.
    let writer = Writer::start(&pg);
    writer.wait_for_more(50);
    let stopped = manager.systemctl(&["stop", &unit(&pg)]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    acked.extend(writer.finish());
    assert_eq!(manager.property(&unit(&pg), "Result"), "success");
    assert!(
        journal()
            .iter()
            .any(|l| l.ends_with("database system is shut down")),
        "a clean shutdown in the log: {:?}",
        journal()
    );
    let started = manager.systemctl(&["start", &unit(&pg)]);
    assert!(started.status.success(), "{}", text(&started));
    active(&manager, &pg);
    assert_eq!(
        lost(&pg, &acked),
        0,
        "after stop: {} acknowledged",
        acked.len()
    );
    // Seconds until writes succeed again after SIGKILL: bounded by the supervisor's restart.
    assert!(
        back_after < Duration::from_secs(60),
        "writes resumed after {back_after:?}"
    );
}

/// The rows of table `acked` in a plain-format pg_dump.
fn dumped_rows(dump: &str) -> Vec<u64> {
    dump.lines()
        .skip_while(|l| !l.starts_with("COPY public.acked (n) FROM stdin;"))
        .skip(1)
        .take_while(|l| *l != "\\.")
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// md5 of the numbers joined by commas, as `md5sum` prints it.
fn md5_of(rows: &[u64]) -> String {
    use std::io::Write;
    let joined: Vec<String> = rows.iter().map(u64::to_string).collect();
    let mut child = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(joined.join(",").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("md5sum");
    stdout_of(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd, Compose v2 and the database image (scripts/test.sh provisions them)"]
fn a_pg_dump_hook_taken_under_writes_restores_into_an_empty_database() {
    database_environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let pg = database_stack(
        &mut stacks,
        "x-composectl:\n  backup:\n    pre:\n      - {service: db, run: pg_dump -U postgres --table=acked, output: acked.sql}\n",
    );
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &pg]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    active(&manager, &pg);

    let writer = Writer::start(&pg);
    writer.wait_for_more(100);
    let to = manager.root().join("backups");
    let backup = composectl(
        &manager,
        &root,
        &[
            "-o",
            "json",
            "backup",
            &pg,
            "--to",
            to.to_str().expect("utf-8"),
        ],
    );
    assert!(backup.status.success(), "{}", text(&backup));
    // No warning: the database has its dump hook.
    assert!(backup.stderr.is_empty(), "{}", text(&backup));
    writer.wait_for_more(20);
    let acked = writer.finish();
    let written: serde_json::Value = serde_json::from_slice(&backup.stdout).expect("json");
    let archive = written["archive"].as_str().expect("archive").to_string();
    let dump = Command::new("tar")
        .args(["-xOf", &archive, "hooks/acked.sql"])
        .output()
        .expect("tar");
    let dump = stdout_of(&dump);
    let rows = dumped_rows(&dump);
    // One snapshot: the writer commits one row after the other, so a consistent dump holds
    // exactly 1..=k; and writes went on while it was taken.
    let k = *rows.last().expect("rows in the dump");
    assert_eq!(rows, (1..=k).collect::<Vec<_>>(), "a consistent snapshot");
    assert!(
        acked.iter().any(|n| *n > k),
        "writes went on during the backup"
    );

    // Restored into an empty database: the same rows, the same checksum.
    let restore = format!("{pg}-restore");
    let started = Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &restore,
            "--network",
            "none",
            "--pull",
            "never",
        ])
        .args([
            "-v",
            &format!("{restore}:/var/lib/postgresql/data"),
            POSTGRES_IMAGE,
        ])
        .output()
        .expect("docker run");
    assert!(started.status.success(), "{}", text(&started));
    let ready = || {
        Command::new("docker")
            .args([
                "exec",
                &restore,
                "pg_isready",
                "-U",
                "postgres",
                "-h",
                "127.0.0.1",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        wait_until(Duration::from_secs(60), ready),
        "the empty database did not start"
    );
    let loaded = {
        use std::io::Write;
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &restore,
                "psql",
                "-U",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dump.as_bytes())
            .expect("feed the dump");
        child.wait_with_output().expect("psql")
    };
    assert!(loaded.status.success(), "{}", text(&loaded));
    let restored = Command::new("docker")
        .args(["exec", &restore, "psql", "-U", "postgres", "-qAt", "-c"])
        .arg("SELECT count(*) || ' ' || md5(string_agg(n::text, ',' ORDER BY n)) FROM acked")
        .output()
        .expect("psql");
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v", &restore])
        .output();
    let _ = Command::new("docker")
        .args(["volume", "rm", &restore])
        .output();
    assert_eq!(
        stdout_of(&restored).trim(),
        format!("{k} {}", md5_of(&rows)),
        "restored rows and checksum"
    );
}
