//! Day-2 operations end to end, in a private user manager on the real engine: reload without
//! downtime (only what changed is recreated, the unit stays active, dependents keep running),
//! health-gated update with rollback to the previous image, required mounts, generated secrets.
//! Each test prints what it measured (`-- --nocapture`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::supervision::{active, unit};
use composectl_testkit::e2e::{TEST_IMAGE, UserManager, environment, wait_until};
use composectl_testkit::stacks::{Stacks, composectl, now_secs, text, wait_for};

/// The ID of the container of one service of a stack ("" when there is none).
pub fn container(stack: &str, service: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc"])
        .arg("--filter")
        .arg(format!("label=com.docker.compose.project={stack}"))
        .arg("--filter")
        .arg(format!("label=com.docker.compose.service={service}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn image_of(container: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.Image}}", container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How long a service was away while its container was replaced: from the old container's
/// kill (or death) to the new one's first `healthy`, from the engine's own timestamps.
fn downtime(stack: &str, old: &str, new: &str, since: u64) -> Duration {
    let out = Command::new("docker")
        .args(["events", "--since", &since.to_string()])
        .args(["--until", &(now_secs() + 1).to_string()])
        .args(["--filter", "type=container"])
        .arg("--filter")
        .arg(format!("label=com.docker.compose.project={stack}"))
        .args(["--format", "{{json .}}"])
        .output()
        .expect("docker events");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let time = |id: &str, actions: &[&str]| {
        events
            .iter()
            .filter(|e| {
                e["Actor"]["ID"] == id && actions.contains(&e["Action"].as_str().unwrap_or(""))
            })
            .filter_map(|e| e["timeNano"].as_i64())
            .min()
            .unwrap_or_else(|| panic!("no {actions:?} of {id} in {events:?}"))
    };
    let gone = time(old, &["kill", "die"]);
    let back = time(new, &["health_status: healthy"]);
    Duration::from_nanos(u64::try_from(back - gone).expect("back after gone"))
}

#[allow(clippy::print_stderr)]
pub fn measured(what: &str, value: impl std::fmt::Debug) {
    eprintln!("measured: {what}: {value:?}");
}

/// A two-service stack: `app` and `side` (whose environment comes from SIDE_VERSION), both
/// healthy at once, `side` with a bind mount of `data`.
fn two_services(stacks: &Stacks, stack: &str, network: &str, data: &Path) -> String {
    let name = stacks.name(stack);
    let service = stacks.healthy_after(stack, "0");
    let compose = format!(
        "services:\n  app:\n    image: {TEST_IMAGE}\n    pull_policy: never\n{service}    networks: [{network}]\n  side:\n    image: {TEST_IMAGE}\n    pull_policy: never\n    environment:\n      VERSION: ${{SIDE_VERSION}}\n    volumes: [\"{}:/data\"]\n{service}    networks: [{network}]\nnetworks:\n  {network}:\n    external: true\n",
        data.display()
    );
    let dir = stacks.root().join("stacks").join(&name);
    fs::create_dir_all(&dir).expect("stack dir");
    fs::write(dir.join("compose.yaml"), compose).expect("compose.yaml");
    fs::write(dir.join(".env"), "SIDE_VERSION=1\n").expect(".env");
    name
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn reload_recreates_only_what_changed_keeps_the_unit_active_and_leaves_dependents_alone() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let data = manager.root().join("disk/data");
    fs::create_dir_all(&data).expect("data dir");
    let db = two_services(&stacks, "db", &net, &data);
    let web = stacks.stack("web", "0", &["db"], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &web]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // The bind mount's source is a mount the unit requires (systemd resolves it itself).
    let mounts = manager.property(&unit(&db), "RequiresMountsFor");
    assert!(mounts.contains(&data.display().to_string()), "{mounts}");

    let (app, side, web_app) = (
        container(&db, "app"),
        container(&db, "side"),
        container(&web, "app"),
    );
    let invocations = (
        manager.property(&unit(&db), "InvocationID"),
        manager.property(&unit(&web), "InvocationID"),
    );

    // Nothing changed: nothing pending, and a reload recreates nothing.
    let diff = composectl(&manager, &root, &["diff", &db]);
    assert!(diff.status.success(), "{}", text(&diff));
    assert!(!text(&diff).contains("running stack"), "{}", text(&diff));

    // side's environment changes: diff shows it (the variable, not its value), reload applies
    // it to side alone.
    fs::write(
        root.join("stacks").join(&db).join(".env"),
        "SIDE_VERSION=2\n",
    )
    .expect(".env");
    let diff = composectl(&manager, &root, &["diff", &db]);
    let shown = text(&diff);
    assert!(
        shown.contains(&format!(
            "running stack {db}: composectl reload {db} recreates side"
        )) && shown.contains("  env SIDE_VERSION: changed"),
        "{shown}"
    );
    let since = now_secs();
    let begun = Instant::now();
    let reloaded = manager.systemctl(&["reload", &unit(&db)]);
    let took = begun.elapsed();
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    assert_eq!(manager.property(&unit(&db), "ActiveState"), "active");
    let new_side = container(&db, "side");
    assert_eq!(
        container(&db, "app"),
        app,
        "app did not change: same container"
    );
    assert_ne!(new_side, side, "side changed: recreated");
    assert_eq!(
        container(&web, "app"),
        web_app,
        "the dependent's container stays"
    );
    assert_eq!(
        (
            manager.property(&unit(&db), "InvocationID"),
            manager.property(&unit(&web), "InvocationID"),
        ),
        invocations,
        "neither unit was restarted"
    );
    assert_eq!(manager.property(&unit(&web), "NRestarts"), "0");
    assert!(
        wait_until(Duration::from_secs(10), || manager
            .journal_lines(&unit(&web), &[])
            .iter()
            .any(
                |l| l.contains("is reloading or updating") && l.contains("keeping running")
            )),
        "{}",
        manager.journal_lines(&unit(&web), &[]).join("\n")
    );
    measured("reload (systemctl reload, one service recreated)", took);
    measured(
        "reload downtime of the recreated service",
        downtime(&db, &side, &new_side, since),
    );
    let diff = composectl(&manager, &root, &["diff", &db]);
    assert!(!text(&diff).contains("running stack"), "{}", text(&diff));

    // Through composectl, nothing left to apply.
    let again = composectl(&manager, &root, &["reload", &db]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(container(&db, "side"), new_side);

    // An invalid root changes nothing and says why.
    let compose = root.join("stacks").join(&db).join("compose.yaml");
    let good = fs::read_to_string(&compose).expect("read");
    fs::write(&compose, good.replace("services:", "services: [")).expect("break");
    let refused = composectl(&manager, &root, &["reload", &db]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let output = manager
        .command(composectl_testkit::bin())
        .args(["--user", "--root"])
        .arg(&root)
        .args(["run", &db, "--reload"])
        .output()
        .expect("run --reload");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("the root is not valid; nothing was changed"),
        "{}",
        text(&output)
    );
    assert_eq!(manager.property(&unit(&db), "ActiveState"), "active");
    assert_eq!(container(&db, "side"), new_side);
    fs::write(&compose, good).expect("repair");
}

/// Images built here under one tag, removed when dropped (the engine is shared).
pub struct Images {
    pub tag: String,
    ids: Vec<String>,
}

impl Images {
    /// Declared before the stacks, so that it is dropped after their containers are gone (an
    /// image a container uses is not removed).
    pub fn new() -> Images {
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Images {
            tag: format!("composectl-test/img-{}x{n}:latest", std::process::id()),
            ids: Vec::new(),
        }
    }

    /// Builds an image from the test image with `marker` in it and tags it; returns its ID.
    pub fn build(&mut self, marker: &str) -> String {
        self.build_from(
            &format!("FROM {TEST_IMAGE}\nRUN touch /{marker}\nLABEL composectl.test={marker}\n"),
            &[],
        )
    }

    /// Builds `dockerfile`, with `files` (name, contents) beside it, and tags it; returns its ID.
    pub fn build_from(&mut self, dockerfile: &str, files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().expect("build dir");
        fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        for (name, contents) in files {
            fs::write(dir.path().join(name), contents).expect("build file");
        }
        let built = Command::new("docker")
            .args(["build", "-q", "-t", &self.tag])
            .arg(dir.path())
            .output()
            .expect("docker build");
        assert!(built.status.success(), "{}", text(&built));
        let id = String::from_utf8_lossy(&built.stdout).trim().to_string();
        self.ids.push(id.clone());
        id
    }

    /// Points the tag at `image`, an image others use too: only the tag is removed on drop.
    /// Returns its ID.
    pub fn point_at(&self, image: &str) -> String {
        let tagged = Command::new("docker")
            .args(["tag", image, &self.tag])
            .output()
            .expect("docker tag");
        assert!(tagged.status.success(), "{image}: {}", text(&tagged));
        let id = Command::new("docker")
            .args(["image", "inspect", "-f", "{{.Id}}", image])
            .output()
            .expect("docker image inspect");
        String::from_utf8_lossy(&id.stdout).trim().to_string()
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.tag])
            .output();
        for id in &self.ids {
            let _ = Command::new("docker").args(["rmi", "-f", id]).output();
        }
    }
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn an_update_to_an_unhealthy_image_rolls_back_and_stays_pinned_until_one_becomes_ready() {
    environment();
    let mut images = Images::new();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let v1 = images.build("v1");
    // An image with /broken never reports healthy; its healthcheck fails after about 2 s.
    let service = stacks
        .healthy_after("app", "0")
        .replace("touch /tmp/ready", "test -e /broken || touch /tmp/ready")
        .replace("start_period: 60s", "start_period: 1s");
    let app = stacks.custom("app", "", &service, &net);
    let compose = stacks.root().join("stacks").join(&app).join("compose.yaml");
    let text_of = fs::read_to_string(&compose).expect("compose.yaml");
    fs::write(&compose, text_of.replace(TEST_IMAGE, &images.tag)).expect("compose.yaml");
    let web = stacks.stack("web", "0", &["app"], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &web]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let web_invocation = manager.property(&unit(&web), "InvocationID");
    let check = |expected: i32, state: &str| {
        let checked = composectl(&manager, &root, &["-o", "json", "update", "--check", &app]);
        assert_eq!(checked.status.code(), Some(expected), "{}", text(&checked));
        let value: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("json");
        assert_eq!(value[0]["state"], state, "{value}");
        value
    };
    check(0, "up-to-date");

    // A new image under the same tag, unhealthy: found by --check, rolled back by update.
    let v2 = images.build("broken");
    let value = check(4, "newer-local");
    assert_eq!(value[0]["running"], v1.as_str());
    assert_eq!(value[0]["local"], v2.as_str());
    let begun = Instant::now();
    let updated = composectl(&manager, &root, &["update", &app]);
    let took = begun.elapsed();
    let shown = text(&updated);
    assert_eq!(updated.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("the new images did not become ready")
            && shown.contains("(service app) is unhealthy")
            && shown.contains("back on the images they replaced"),
        "{shown}"
    );
    measured("update rolled back (unhealthy image, grace 2s)", took);
    measured("what it said", String::from_utf8_lossy(&updated.stderr));
    assert_eq!(manager.property(&unit(&app), "ActiveState"), "active");
    assert_eq!(image_of(&container(&app, "app")), v1, "back on v1");
    assert_eq!(
        manager.property(&unit(&web), "InvocationID"),
        web_invocation,
        "the dependent keeps running through an update and its rollback"
    );
    let pinned = manager
        .home()
        .join(".local/state/composectl/stacks")
        .join(&app)
        .join("pinned.yaml");
    assert!(fs::read_to_string(&pinned).expect("pinned").contains(&v1));
    check(4, "pinned");
    let status = composectl(&manager, &root, &["status", &app]);
    assert!(
        text(&status).contains(&format!(
            "pinned:     app to {}",
            &v1["sha256:".len()..][..12]
        )),
        "{}",
        text(&status)
    );

    // A restart keeps the pinned image although the tag names v2.
    let restarted = composectl(&manager, &root, &["restart", &app]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert_eq!(
        image_of(&container(&app, "app")),
        v1,
        "pinned across a restart"
    );
    // A restart recreates app's containers: web restarts after it, as before.
    wait_for(
        &manager,
        &unit(&web),
        "InvocationID",
        Duration::from_secs(60),
        |id| id != web_invocation,
    );
    active(&manager, &web);
    let web_invocation = manager.property(&unit(&web), "InvocationID");

    // A healthy v3: the update goes through, the pin goes.
    let v3 = images.build("v3");
    let old = container(&app, "app");
    let since = now_secs();
    let begun = Instant::now();
    let updated = composectl(&manager, &root, &["-o", "json", "update", &app]);
    let took = begun.elapsed();
    assert!(updated.status.success(), "{}", text(&updated));
    let value: serde_json::Value = serde_json::from_slice(&updated.stdout).expect("json");
    assert_eq!(value[0]["result"], "updated", "{value}");
    assert_eq!(value[0]["images"][0]["to"], v3.as_str(), "{value}");
    let new = container(&app, "app");
    assert_eq!(image_of(&new), v3);
    assert!(
        !pinned.exists(),
        "the pin goes once an update becomes ready"
    );
    check(0, "up-to-date");
    measured("update to a healthy image", took);
    measured(
        "update downtime of the service",
        downtime(&app, &old, &new, since),
    );

    assert_eq!(
        manager.property(&unit(&web), "InvocationID"),
        web_invocation,
        "the dependent keeps running through an update"
    );
    let web_journal = manager.journal_lines(&unit(&web), &[]).join("\n");
    assert!(
        web_journal.contains("is reloading or updating"),
        "{web_journal}"
    );
}

fn exec(container: &str, script: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec");
    assert!(out.status.success(), "{script}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the volume holds, as bytes and ownership: the same after a restore.
fn fingerprint(container: &str) -> String {
    exec(
        container,
        "cd /data && sha256sum blob note && stat -c '%n %u:%g %a' blob note owned",
    )
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn backup_runs_its_hooks_and_a_restore_gives_back_the_same_bytes() {
    use std::os::unix::fs::PermissionsExt;
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let conf = manager.root().join("conf");
    fs::create_dir_all(&conf).expect("conf");
    fs::write(conf.join("settings.ini"), "colour = blue\n").expect("settings");
    let meta = format!(
        "x-composectl:\n  backup:\n    paths: [\"{}\"]\n    pre:\n      - service: app\n        run: echo dump; cat /data/note\n        output: dump.txt\n",
        conf.display()
    );
    let service = format!(
        "    volumes: [\"data:/data\", \"{}:/conf\"]\n{}",
        conf.display(),
        stacks.healthy_after("db", "0")
    );
    let db = stacks.custom("db", &meta, &service, &net);
    let compose = stacks.root().join("stacks").join(&db).join("compose.yaml");
    let text_of = fs::read_to_string(&compose).expect("compose") + "volumes:\n  data:\n";
    fs::write(&compose, text_of).expect("compose");
    let web = stacks.stack("web", "0", &["db"], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &web]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let app = container(&db, "app");
    // COMPOSECTL_BACKUP_MIB sizes the volume, for measuring (docs/benchmarks.md, "Day-2 operations").
    let mib: u32 = std::env::var("COMPOSECTL_BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    exec(
        &app,
        &format!(
            "dd if=/dev/urandom of=/data/blob bs=1M count={mib} 2>/dev/null && echo hello > /data/note && touch /data/owned && chown 1000:1000 /data/owned && chmod 640 /data/note"
        ),
    );
    let before = fingerprint(&app);

    // Live (the default): the hook's output and the volume, while the stack runs.
    let to = manager.root().join("backups");
    let backup = |args: &[&str]| {
        let mut all = vec!["-o", "json", "backup", &db, "--to"];
        let to = to.to_str().expect("utf-8");
        all.push(to);
        all.extend(args);
        let out = composectl(&manager, &root, &all);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let begun = Instant::now();
    let first = backup(&[]);
    let took = begun.elapsed();
    let archive = Path::new(first["archive"].as_str().expect("archive")).to_path_buf();
    let mode = fs::metadata(&archive)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        first["manifest"]["volumes"][0]["name"],
        format!("{db}_data"),
        "{first}"
    );
    measured(
        &format!("backup of {mib} MiB (live, one hook)"),
        (took, first["bytes"].clone()),
    );
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .expect("tar");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for member in ["composectl-backup.json", "hooks/dump.txt", "paths/0.tar"] {
        assert!(listed.contains(member), "{listed}");
    }
    let dump = Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("hooks/dump.txt")
        .output()
        .expect("tar");
    assert_eq!(String::from_utf8_lossy(&dump.stdout), "dump\nhello\n");

    // --keep: older archives of the stack go (stamps have whole seconds).
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        backup(&["--keep", "2"]);
    }
    let kept = fs::read_dir(&to).expect("backups").count();
    assert_eq!(kept, 2, "--keep 2");
    assert!(!archive.exists(), "the oldest went");
    let archive = to.join(
        fs::read_dir(&to)
            .expect("backups")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .min()
            .expect("an archive"),
    );

    // The data changes; a restore refuses a running stack unless told to stop it.
    exec(
        &app,
        "rm /data/blob && echo changed > /data/note && touch /data/extra",
    );
    fs::write(conf.join("settings.ini"), "colour = red\n").expect("settings");
    let archive_arg = archive.to_str().expect("utf-8");
    let refused = composectl(&manager, &root, &["restore", &db, archive_arg]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--stop"), "{}", text(&refused));
    let wrong = composectl(&manager, &root, &["restore", &web, archive_arg]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    let begun = Instant::now();
    let restored = composectl(&manager, &root, &["restore", &db, archive_arg, "--stop"]);
    measured(
        &format!("restore with --stop (stop, {mib} MiB, start again)"),
        begun.elapsed(),
    );
    assert!(restored.status.success(), "{}", text(&restored));
    active(&manager, &db);
    active(&manager, &web);
    let app = container(&db, "app");
    assert_eq!(fingerprint(&app), before, "same bytes, owners and modes");
    assert_eq!(
        exec(&app, "ls /data"),
        "blob\nnote\nowned",
        "the volume was replaced"
    );
    assert_eq!(
        fs::read_to_string(conf.join("settings.ini")).expect("settings"),
        "colour = blue\n"
    );

    // Into a fresh volume: the stack gone, its volume removed, then restored and started.
    let disabled = composectl(&manager, &root, &["disable", "--now", &web, &db]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    let removed = Command::new("docker")
        .args(["volume", "rm", &format!("{db}_data")])
        .output()
        .expect("docker volume rm");
    assert!(removed.status.success(), "{}", text(&removed));
    let restored = composectl(&manager, &root, &["restore", &db, archive_arg]);
    assert!(restored.status.success(), "{}", text(&restored));
    let enabled = composectl(&manager, &root, &["enable", "--now", &db]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    assert_eq!(fingerprint(&container(&db, "app")), before);
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn the_update_and_backup_timers_run_their_commands_and_go_with_their_stacks() {
    environment();
    let manager = UserManager::start();
    let backups = manager.root().join("archives");
    let mut stacks = Stacks::with_settings(&format!(
        "{}[backup]\ndir = \"{}\"\nkeep = 1\n[update]\ntimer = \"check\"\n",
        composectl_testkit::stacks::FAST_DEFAULTS,
        backups.display()
    ));
    let net = stacks.network("net");
    let app = stacks.stack("app", "0", &[], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &app]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let timers = [
        "composectl-update.timer".to_string(),
        format!("composectl-backup@{app}.timer"),
    ];
    let on = manager.systemctl(&["enable", "--now", &timers[0], &timers[1]]);
    assert!(on.status.success(), "{}", text(&on));

    // What the timers start, started by hand: a check (newer images are not a failure) and a
    // backup into [backup] dir.
    let checked = manager.systemctl(&["start", "composectl-update.service"]);
    assert!(checked.status.success(), "{}", text(&checked));
    // Its journal lines are not asserted: journald may attribute the output of so short-lived
    // a process to no unit when it reads it late. Its command and exit status tell.
    let service = "composectl-update.service";
    assert!(
        manager
            .property(service, "ExecStart")
            .contains("update --all --check")
    );
    assert_eq!(
        manager.property(service, "ExecMainStatus"),
        "0",
        "all up to date"
    );
    let backup = format!("composectl-backup@{app}.service");
    for _ in 0..2 {
        let backed_up = manager.systemctl(&["start", &backup]);
        assert!(backed_up.status.success(), "{}", text(&backed_up));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let archives: Vec<_> = fs::read_dir(&backups).expect("archives").collect();
    assert_eq!(archives.len(), 1, "keep = 1");

    let disabled = composectl(&manager, &root, &["disable", "--now", &app]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    for timer in &timers {
        assert_eq!(
            manager.property(timer, "ActiveState"),
            "inactive",
            "{timer}"
        );
        let enabled = manager.systemctl(&["is-enabled", timer]);
        assert!(!enabled.status.success(), "{timer}: {}", text(&enabled));
    }
}

/// `KEY=value` of an env file.
fn env_value(file: &Path, key: &str) -> String {
    fs::read_to_string(file)
        .expect("env file")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{key} in {}", file.display()))
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn generated_secrets_are_private_stable_and_required_to_start() {
    use std::os::unix::fs::PermissionsExt;
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let service = format!(
        "    environment:\n      PASSWORD: ${{DB_PASSWORD}}\n      KEY: ${{API_KEY}}\n{}",
        stacks.healthy_after("db", "0")
    );
    let db = stacks.custom(
        "db",
        "x-composectl:\n  secrets:\n    DB_PASSWORD: {shared: true}\n    API_KEY: {length: 48}\n",
        &service,
        &net,
    );
    let root = stacks.root().to_path_buf();
    let (shared, own) = (
        root.join(".env.local"),
        root.join("stacks").join(&db).join(".env.local"),
    );
    let enabled = composectl(&manager, &root, &["enable", "--now", &db]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let shown = text(&enabled);
    assert!(
        shown.contains(&format!(
            "generated secret DB_PASSWORD of {db} into {}",
            shared.display()
        )) && shown.contains(&format!(
            "generated secret API_KEY of {db} into {}",
            own.display()
        )),
        "{shown}"
    );
    let (password, key) = (
        env_value(&shared, "DB_PASSWORD"),
        env_value(&own, "API_KEY"),
    );
    assert!(
        !shown.contains(&password) && !shown.contains(&key),
        "never printed"
    );
    for file in [&shared, &own] {
        assert_eq!(
            fs::metadata(file).expect("file").permissions().mode() & 0o777,
            0o600
        );
    }
    let seen = || exec(&container(&db, "app"), "echo $PASSWORD $KEY");
    assert_eq!(seen(), format!("{password} {key}"));

    // Stable: enabling again and restarting change nothing.
    let again = composectl(&manager, &root, &["enable", &db]);
    assert!(
        again.status.success() && !text(&again).contains("generated"),
        "{}",
        text(&again)
    );
    let restarted = composectl(&manager, &root, &["restart", &db]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert_eq!(seen(), format!("{password} {key}"));
    assert_eq!(env_value(&own, "API_KEY"), key);

    // Lost: the stack refuses to start on an empty secret, and says how to fix it.
    fs::remove_file(&own).expect("lose it");
    let refused = composectl(&manager, &root, &["restart", &db]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!(
            "secrets API_KEY are declared but no env file sets them: run composectl secrets {db}"
        )),
        "{}",
        text(&refused)
    );
    assert_eq!(container(&db, "app"), "", "nothing started without it");
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_chatty_container_cannot_silence_the_others() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let name = stacks.name("logs");
    let chatty = "    command: [\"sh\", \"-c\", \"seq 1 5000; sleep 2; echo chatty done; exec sleep 100000\"]\n";
    let quiet = "    command: [\"sh\", \"-c\", \"sleep 1; echo quiet alive; exec sleep 100000\"]\n";
    let compose = format!(
        "x-composectl:\n  ready: running\n  log_rate_limit: {{interval: 1s, burst: 100}}\nservices:\n  chatty:\n    image: {TEST_IMAGE}\n    pull_policy: never\n    init: true\n{chatty}    networks: [{net}]\n  quiet:\n    image: {TEST_IMAGE}\n    pull_policy: never\n    init: true\n{quiet}    networks: [{net}]\nnetworks:\n  {net}:\n    external: true\n"
    );
    let dir = stacks.root().join("stacks").join(&name);
    fs::create_dir_all(&dir).expect("stack dir");
    fs::write(dir.join("compose.yaml"), compose).expect("compose.yaml");
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &name]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    assert_eq!(manager.property(&unit(&name), "LogRateLimitBurst"), "300");
    let lines = |service: &str| {
        manager.journal_lines(&unit(&name), &[&format!("COMPOSE_SERVICE={service}")])
    };
    assert!(
        wait_until(Duration::from_secs(20), || lines("chatty")
            .iter()
            .any(|l| l == "chatty done")),
        "{:?}",
        lines("chatty").len()
    );
    let chatty = lines("chatty");
    assert!(lines("quiet").iter().any(|l| l == "quiet alive"));
    assert!(
        chatty.iter().any(|l| l
            .starts_with("composectl: dropped 4900 lines of this container (more than 100 in 1s)")),
        "{:?}",
        &chatty[chatty.len().saturating_sub(3)..]
    );
    assert_eq!(chatty.len(), 102, "100 lines, the notice, the last line");
}
