//! Test stacks made of the busybox image: compose files whose one service turns healthy after a
//! delay, and the three layered stacks the system-mode tests and the fault suite start (panel
//! healthy after ~1 s, database with a named volume, genai requiring both). database is busybox
//! healthy after ~2 s, or for the fault suite a real PostgreSQL.

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

/// Where database's named volume is seen from a throwaway container (`Target::in_volume` of the
/// fault suite), and the file in it whose presence makes database's container exit at once (the
/// fault suite's restart loop).
pub const DATA_DIR: &str = "/data";
pub const CRASH_NAME: &str = "crash";

/// What runs in the database stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// A busybox service with its data in a named volume.
    Busybox,
    /// PostgreSQL ([`POSTGRES_IMAGE`] under a tag of this set's own, see
    /// [`Layered::database_image`]), its data directory the named volume.
    Postgres,
}

/// PostgreSQL's data directory in [`POSTGRES_IMAGE`].
const PG_DATA: &str = "/var/lib/postgresql/data";

/// panel, database and genai (requires both), named with a prefix so runs sharing an engine
/// do not collide.
#[derive(Debug, Clone)]
pub struct Layered {
    prefix: String,
    database: Database,
}

impl Layered {
    /// `prefix` is put before every stack name (e.g. `e123x0-`), or empty; database is busybox.
    pub fn new(prefix: &str) -> Layered {
        Layered {
            prefix: prefix.to_string(),
            database: Database::Busybox,
        }
    }

    /// [`new`](Self::new) with PostgreSQL as database.
    pub fn with_postgres(prefix: &str) -> Layered {
        Layered {
            database: Database::Postgres,
            ..Layered::new(prefix)
        }
    }

    /// The image database's compose file names: for PostgreSQL a tag of this set's own, which
    /// the fault suite points at [`POSTGRES_IMAGE`] (and at another build for an update)
    /// without touching the tag other tests use.
    pub fn database_image(&self) -> String {
        match self.database {
            Database::Busybox => TEST_IMAGE.to_string(),
            Database::Postgres => format!("composectl-test/{}postgres:layered", self.prefix),
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
        let database_compose = match self.database {
            Database::Busybox => {
                let crash = format!(
                    "if [ -e {DATA_DIR}/{CRASH_NAME} ]; then echo {database} crashing; exit 1; fi; "
                );
                let service = format!(
                    "{}    volumes: [\"data:{DATA_DIR}\"]\n",
                    ready_after(&database, "2", &crash)
                );
                compose_file("", &service, network, "volumes:\n  data: {}\n")
            }
            Database::Postgres => self.postgres_database(network),
        };
        self.write_stack(root, &database, &database_compose);
        let meta = format!("x-composectl:\n  requires: [{panel}, {database}]\n");
        self.write_stack(
            root,
            &genai,
            &compose_file(&meta, &ready_after(&genai, "1", ""), network, ""),
        );
    }

    /// database as PostgreSQL, service `app` like the busybox one's: exits at once while the
    /// crash file is in its volume, unhealthy while /tmp/sick exists (gone on every start) or
    /// the image has /broken (an update to a bad build), PostgreSQL's fast shutdown on stop
    /// within a grace period that lets it finish.
    fn postgres_database(&self, network: &str) -> String {
        let (database, image) = (self.database(), self.database_image());
        let crash = format!("{PG_DATA}/{CRASH_NAME}");
        format!(
            r#"services:
  app:
    image: {image}
    pull_policy: never
    restart: "no"
    stop_grace_period: 60s
    command: ["sh", "-c", "rm -f /tmp/sick; if [ -e {crash} ]; then echo {database} crashing; exit 1; fi; exec /usr/local/bin/composectl-postgres"]
    healthcheck:
      test: ["CMD-SHELL", "test ! -e /tmp/sick && test ! -e /broken && pg_isready -U postgres -h 127.0.0.1"]
      interval: 1s
      start_period: 20s
      start_interval: 1s
      retries: 3
    volumes: ["data:{PG_DATA}"]
    networks: [{network}]
networks:
  {network}:
    external: true
volumes:
  data: {{}}
"#
        )
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
