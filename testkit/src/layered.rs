//! Test stacks made of the busybox image: compose files whose one service turns healthy after a
//! delay, and the three layered stacks the system-mode tests and the fault suite start (panel
//! healthy after ~1 s, database after ~2 s with a named volume, genai requiring both).

use std::fs;
use std::path::Path;

use crate::e2e::TEST_IMAGE;

/// A compose file with one busybox service `app` on the external `network`: `meta` goes before
/// `services:`, `service` holds the service's own settings (indented four spaces), `tail` goes
/// after the top-level `networks:` (e.g. a `volumes:` section).
pub fn compose_file(meta: &str, service: &str, network: &str, tail: &str) -> String {
    format!(
        r#"{meta}services:
  app:
    image: {TEST_IMAGE}
    pull_policy: never
{service}    networks: [{network}]
networks:
  {network}:
    external: true
{tail}"#
    )
}

/// The database image scripts/make-postgres-image.sh builds (Debian's PostgreSQL 15).
pub const POSTGRES_IMAGE: &str = "composectl-test/postgres:15";
/// psql in that image, as the tests run it: unaligned tuples only, stopping at the first error
/// (followed by `-c SQL`).
pub const PSQL: [&str; 6] = ["psql", "-U", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1"];

/// A compose file with one PostgreSQL service `db` (no restart policy: the supervisor's), its
/// data in the named volume `pgdata`, healthy once `pg_isready` answers; `meta` goes first.
pub fn postgres_compose_file(meta: &str, network: &str) -> String {
    format!(
        r#"{meta}services:
  db:
    image: {POSTGRES_IMAGE}
    pull_policy: never
    restart: "no"
    stop_grace_period: 60s
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "postgres", "-h", "127.0.0.1"]
      interval: 1s
      start_period: 60s
      start_interval: 1s
      retries: 3
    volumes:
      - pgdata:/var/lib/postgresql/data
    networks: [{network}]
volumes:
  pgdata:
networks:
  {network}:
    external: true
"#
    )
}

/// The settings of a service that prints `NAME starting`, turns healthy `delay` seconds later
/// (its healthcheck tests /tmp/ready every 200 ms), prints `NAME ready` and sleeps. `first` is
/// shell run before all of it (empty for nothing). /tmp/ready goes first: a container started
/// again (not recreated, e.g. after an engine restart) keeps its files, and would otherwise be
/// healthy at once.
pub fn ready_after(name: &str, delay: &str, first: &str) -> String {
    ready_after_every(name, delay, first, "200ms")
}

/// [`ready_after`] with its healthcheck every `interval` (a compose duration), from the start.
pub fn ready_after_every(name: &str, delay: &str, first: &str, interval: &str) -> String {
    format!(
        r#"    init: true
    restart: "no"
    command: ["sh", "-c", "rm -f /tmp/ready; {first}echo {name} starting; sleep {delay}; touch /tmp/ready; echo {name} ready; exec sleep 100000"]
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: {interval}
      start_period: 60s
      start_interval: {interval}
      retries: 3
"#
    )
}

/// Where database keeps its data (a named volume) and the file whose presence makes its
/// container exit at once (the fault suite's restart loop).
pub const DATA_DIR: &str = "/data";
pub const CRASH_FILE: &str = "/data/crash";

/// panel, database and genai (requires both), named with a prefix so runs sharing an engine
/// do not collide.
#[derive(Debug, Clone)]
pub struct Layered {
    prefix: String,
}

impl Layered {
    /// `prefix` is put before every stack name (e.g. `e123x0-`), or empty.
    pub fn new(prefix: &str) -> Layered {
        Layered {
            prefix: prefix.to_string(),
        }
    }

    pub fn panel(&self) -> String {
        format!("{}panel", self.prefix)
    }
    pub fn database(&self) -> String {
        format!("{}database", self.prefix)
    }
    pub fn genai(&self) -> String {
        format!("{}genai", self.prefix)
    }
    /// The three, in start order.
    pub fn all(&self) -> [String; 3] {
        [self.panel(), self.database(), self.genai()]
    }
    /// database's named volume as the engine calls it (`<project>_data`).
    pub fn volume(&self) -> String {
        format!("{}_data", self.database())
    }

    /// Writes `networks.toml` (one internal network) and the three stacks into `root`.
    pub fn write(&self, root: &Path, network: &str, subnet: &str) {
        write_file(
            &root.join("networks.toml"),
            &format!("[networks.{network}]\nsubnet = \"{subnet}\"\ninternal = true\n"),
        );
        let (panel, database, genai) = (self.panel(), self.database(), self.genai());
        self.write_stack(
            root,
            &panel,
            &compose_file("", &ready_after(&panel, "1", ""), network, ""),
        );
        let crash = format!("if [ -e {CRASH_FILE} ]; then echo {database} crashing; exit 1; fi; ");
        let service = format!(
            "{}    volumes: [\"data:{DATA_DIR}\"]\n",
            ready_after(&database, "2", &crash)
        );
        self.write_stack(
            root,
            &database,
            &compose_file("", &service, network, "volumes:\n  data: {}\n"),
        );
        let meta = format!("x-composectl:\n  requires: [{panel}, {database}]\n");
        self.write_stack(
            root,
            &genai,
            &compose_file(&meta, &ready_after(&genai, "1", ""), network, ""),
        );
    }

    fn write_stack(&self, root: &Path, stack: &str, compose: &str) {
        write_file(
            &root.join("stacks").join(stack).join("compose.yaml"),
            compose,
        );
    }
}

/// Writes `path`, creating its directories.
pub fn write_file(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().expect("a parent directory")).expect("mkdir -p");
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
