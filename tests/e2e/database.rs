//! A real database under writes: Debian's PostgreSQL 15 (scripts/make-postgres-image.sh) in a
//! stack of a real user manager, a writer committing numbered rows (testkit/src/database.rs),
//! and a dump hook's backup taken meanwhile that restores. The faults under writes are rows of
//! the fault suite (tests/faults), in the user manager and the PID-1 guest.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use composectl_testkit::database::{self, Background, Writer};
use composectl_testkit::e2e::{
    self, UserManager, environment, run_with_timeout, stdout_of, wait_until,
};
use composectl_testkit::layered::{POSTGRES_IMAGE, postgres_compose_file};
use composectl_testkit::stacks::{Stacks, composectl, text};

use crate::operations::measured;
use crate::supervision::active;

/// How long the writer gets for the commits a test waits for.
const WRITES: Duration = Duration::from_secs(90);

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
        "x-composectl:\n  backup:\n    pre:\n      - {service: db, run: pg_dump -U postgres, output: db.sql}\n",
    );
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &pg]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    active(&manager, &pg);
    // COMPOSECTL_DB_MIB adds a table of about that size, for measuring (docs/benchmarks.md,
    // "Day-2 operations"): about 1,000 rows of 990 bytes per MiB.
    let mib: u64 = std::env::var("COMPOSECTL_DB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if mib > 0 {
        // Longer than a command's usual bound: it writes the whole table.
        let docker = |args: &[&str]| {
            run_with_timeout(Command::new("docker").args(args), Duration::from_secs(600))
        };
        let filled = database::psql(
            &docker,
            &format!("{pg}-db-1"),
            &format!(
                "CREATE TABLE big AS SELECT g AS n, repeat(md5(g::text), 30) AS payload \
                 FROM generate_series(1, {}) g",
                mib * 1_000
            ),
        );
        assert!(filled.status.success(), "{}", text(&filled));
    }

    let acked_file = manager.root().join("acked").display().to_string();
    let writer = Writer::start(
        &e2e::sh,
        &e2e::docker,
        Background::Setsid,
        &format!("{pg}-db-1"),
        &acked_file,
    )
    .expect("the writer");
    writer.wait_for_more(&e2e::sh, 100, WRITES).expect("writes");
    let to = manager.root().join("backups");
    let begun = Instant::now();
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
    measured(
        &format!("backup under writes, pg_dump hook and the volume, {mib} MiB table"),
        begun.elapsed(),
    );
    // No warning: the database has its dump hook.
    assert!(backup.stderr.is_empty(), "{}", text(&backup));
    writer
        .wait_for_more(&e2e::sh, 20, WRITES)
        .expect("writes go on");
    let acked = writer.stop(&e2e::sh);
    let written: serde_json::Value = serde_json::from_slice(&backup.stdout).expect("json");
    let archive = written["archive"].as_str().expect("archive").to_string();
    let dump = Command::new("tar")
        .args(["-xOf", &archive, "hooks/db.sql"])
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
    let begun = Instant::now();
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
    measured(
        &format!(
            "the dump ({} MB) loaded into an empty database",
            dump.len() / 1_000_000
        ),
        begun.elapsed(),
    );
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
