//! An update over data the new image migrates, as docs/operations.md shows it ("Updates and
//! migrated data"): with `update.backup`, `update` backs the stack up before its supervisor
//! changes anything; a rollback puts the old image back on the migrated data, and the error
//! names the archive and the restore that goes back to it. PostgreSQL
//! (scripts/make-postgres-image.sh) under a tag of this test's own, in a real user manager.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use composectl_testkit::database;
use composectl_testkit::e2e::{self, UserManager, environment, stdout_of};
use composectl_testkit::layered::{POSTGRES_IMAGE, postgres_compose_file};
use composectl_testkit::repo;
use composectl_testkit::stacks::{Stacks, composectl, text};

use crate::operations::{Images, container, image_of, measured};
use crate::supervision::{active, unit};

/// The "new version": migrates the schema on start (with a server of its own, as entrypoints
/// do), then fails. Dying only once the data has changed, it is rolled back after the migration
/// whatever the machine's load.
const MIGRATE: &str = r#"set -eu
/usr/local/bin/composectl-postgres &
server=$!
until pg_isready -U postgres -h 127.0.0.1 -q; do sleep 0.2; done
psql -U postgres -qAt -v ON_ERROR_STOP=1 -c "CREATE TABLE schema_v2 (id int)"
kill -INT "$server"
wait "$server"
echo "v2: migrated, and cannot serve"
exit 1
"#;

/// The `x-composectl` block docs/operations.md shows in "Updates and migrated data": the one
/// this test runs.
fn documented_meta() -> String {
    let doc = fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md");
    let (_, after) = doc
        .split_once("<!-- tested by tests/e2e/update_data.rs -->\n```yaml\n")
        .expect("the marked YAML block in docs/operations.md");
    let (block, _) = after.split_once("```").expect("the end of the block");
    block.to_string()
}

/// `psql -c SQL` in the container, which must succeed; its output.
fn psql(container: &str, sql: &str) -> String {
    let out = database::psql(&e2e::docker, container, sql);
    assert!(out.status.success(), "{sql}: {}", text(&out));
    stdout_of(&out).trim().to_string()
}

/// Whether the database has the table the new version creates.
fn migrated(container: &str) -> bool {
    psql(
        container,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_v2'",
    ) == "1"
}

/// The archives in the user manager's default backup directory.
fn archives(manager: &UserManager) -> Vec<PathBuf> {
    let dir = manager.home().join(".local/state/composectl/backups");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// `text` with `from` replaced, which it must hold.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replace(from, to)
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd, Compose v2 and the database image (scripts/test.sh provisions them)"]
fn a_rolled_back_update_names_the_backup_it_took_before_the_new_image_migrated_the_data() {
    environment();
    let mut images = Images::new();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    // Fails without the image: scripts/provision-e2e.sh builds it.
    let old = images.point_at(POSTGRES_IMAGE);
    let net = stacks.network("net");
    let pg = stacks.name("pg");
    let meta = documented_meta();
    // Only the new version has /broken: it never turns healthy, not even while it migrates.
    let compose = replaced(
        &replaced(
            &postgres_compose_file(&meta, &net),
            &format!("image: {POSTGRES_IMAGE}"),
            &format!("image: {}", images.tag),
        ),
        r#"["CMD", "pg_isready", "-U", "postgres", "-h", "127.0.0.1"]"#,
        r#"["CMD-SHELL", "test ! -e /broken && pg_isready -U postgres -h 127.0.0.1"]"#,
    );
    let dir = stacks.root().join("stacks").join(&pg);
    fs::create_dir_all(&dir).expect("stack dir");
    let compose_path = dir.join("compose.yaml");
    fs::write(&compose_path, &compose).expect("compose.yaml");
    // Without update.backup, an update takes no backup.
    let plain = stacks.stack("plain", "0", &[], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &pg, &plain]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    active(&manager, &pg);
    let db = container(&pg, "db");
    psql(
        &db,
        "CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 100)",
    );

    let updated = composectl(&manager, &root, &["-o", "json", "update", &plain]);
    assert!(updated.status.success(), "{}", text(&updated));
    let value: serde_json::Value = serde_json::from_slice(&updated.stdout).expect("json");
    assert!(value[0]["backup"].is_null(), "{value}");
    assert_eq!(archives(&manager), Vec::<PathBuf>::new(), "no backup");
    // With update.backup but no newer image (the update timer's daily run): no backup either.
    let updated = composectl(&manager, &root, &["-o", "json", "update", &pg]);
    assert!(updated.status.success(), "{}", text(&updated));
    let value: serde_json::Value = serde_json::from_slice(&updated.stdout).expect("json");
    assert_eq!(value[0]["result"], "unchanged", "{value}");
    assert!(value[0]["backup"].is_null(), "{value}");
    assert_eq!(
        archives(&manager),
        Vec::<PathBuf>::new(),
        "nothing newer: no backup"
    );

    let new = images.build_from(
        &format!(
            "FROM {POSTGRES_IMAGE}\nCOPY broken /broken\nCOPY migrate.sh /usr/local/bin/composectl-migrate\nCMD [\"/bin/sh\", \"/usr/local/bin/composectl-migrate\"]\n"
        ),
        &[("broken", ""), ("migrate.sh", MIGRATE)],
    );

    // A backup that fails: nothing is changed.
    fs::write(
        &compose_path,
        replaced(&compose, "pg_dump -U postgres", "pg_dump -U nobody"),
    )
    .expect("compose.yaml");
    let refused = composectl(&manager, &root, &["update", &pg]);
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "error: {pg}: the backup before the update failed, so nothing was changed: backup hook `pg_dump -U nobody` in service db exited with code 1"
        )),
        "{shown}"
    );
    assert_eq!(container(&pg, "db"), db, "not recreated");
    assert!(!migrated(&db));
    assert_eq!(archives(&manager), Vec::<PathBuf>::new(), "no archive");
    fs::write(&compose_path, &compose).expect("compose.yaml");

    // The new version migrates, fails and is rolled back: the old image runs on migrated data.
    let begun = Instant::now();
    let updated = composectl(&manager, &root, &["update", &pg]);
    measured("update, backup and rollback", begun.elapsed());
    let shown = text(&updated);
    measured("what it said", String::from_utf8_lossy(&updated.stderr));
    assert_eq!(updated.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "error: {pg}: the new images did not become ready: "
        )) && shown.contains("back on the images they replaced")
            && shown.contains(&format!(
                "{pg}: the new images may have changed the data in its volumes before the rollback"
            )),
        "{shown}"
    );
    let [archive] = &archives(&manager)[..] else {
        panic!("one archive: {:?}\n{shown}", archives(&manager));
    };
    let archive = archive.to_str().expect("utf-8");
    assert!(
        shown.contains(&format!("Backed up before the update: {archive};")),
        "{shown}"
    );
    let restore = format!("  composectl restore {pg} {archive} --stop");
    let printed = String::from_utf8_lossy(&updated.stderr)
        .lines()
        .find(|line| line.starts_with("  composectl restore "))
        .unwrap_or_else(|| panic!("no restore command in:\n{shown}"))
        .to_string();
    assert_eq!(printed, restore);
    active(&manager, &pg);
    let db = container(&pg, "db");
    assert_eq!(image_of(&db), old, "back on the old image");
    assert_ne!(image_of(&db), new);
    assert!(migrated(&db), "the old image runs on the migrated data");
    let dump = Command::new("tar")
        .args(["-xOf", archive, "hooks/db.sql"])
        .output()
        .expect("tar");
    let dump = stdout_of(&dump);
    let rows: Vec<&str> = dump
        .lines()
        .skip_while(|l| !l.starts_with("COPY public.kept (n) FROM stdin;"))
        .skip(1)
        .take_while(|l| *l != "\\.")
        .collect();
    assert_eq!(rows.len(), 100, "{dump}");
    assert!(!dump.contains("schema_v2"), "taken before the migration");

    // The restore it names, as printed: the data from before the update, on the old image.
    let begun = Instant::now();
    let args: Vec<&str> = printed.split_whitespace().skip(1).collect();
    let restored = composectl(&manager, &root, &args);
    measured("restore --stop", begun.elapsed());
    assert!(restored.status.success(), "{}", text(&restored));
    active(&manager, &pg);
    let db = container(&pg, "db");
    assert_eq!(image_of(&db), old);
    assert!(!migrated(&db), "the migration is undone");
    assert_eq!(psql(&db, "SELECT count(*), sum(n) FROM kept"), "100|5050");

    // A healthy new build: the update goes through and names its backup too.
    let healthy = images.build_from(
        &format!("FROM {POSTGRES_IMAGE}\nLABEL composectl.test=v3\n"),
        &[],
    );
    let updated = composectl(&manager, &root, &["-o", "json", "update", &pg]);
    assert!(updated.status.success(), "{}", text(&updated));
    let value: serde_json::Value = serde_json::from_slice(&updated.stdout).expect("json");
    let backup = Path::new(value[0]["backup"].as_str().expect("backup"));
    assert!(backup.exists(), "{value}");
    assert!(
        value[0]["message"]
            .as_str()
            .expect("message")
            .ends_with(&format!("(backed up first: {})", backup.display())),
        "{value}"
    );
    assert_eq!(archives(&manager).len(), 2);
    assert_eq!(manager.property(&unit(&pg), "ActiveState"), "active");
    assert_eq!(image_of(&container(&pg, "db")), healthy);
}
