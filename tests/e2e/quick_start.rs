//! The README's quick start, as written, on the real user manager and engine. A block of the
//! README is marked by the HTML comment `<!-- readme-test: NAME -->` on the line before its
//! opening fence.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use composectl_testkit::e2e::{
    TEST_IMAGE, UserManager, environment, run_with_timeout, stderr_of, stdout_of,
};
use composectl_testkit::harness::readme_block;

/// Local stand-ins for the public images the quick start names (there is no registry here):
/// busybox with a `redis-cli` that answers PONG, and busybox's httpd serving on port 80. Each
/// stops on SIGTERM, as the real images do.
fn build_stand_ins(dir: &Path) {
    let images = [
        (
            "redis:7-alpine",
            "RUN printf '#!/bin/sh\\necho PONG\\n' > /bin/redis-cli && chmod 755 /bin/redis-cli\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 1; done\"]",
        ),
        (
            "nginx:alpine",
            "RUN mkdir -p /www && echo ok > /www/index.html\n\
             CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait\"]",
        ),
    ];
    for (tag, steps) in images {
        let context = dir.join(tag.replace([':', '/'], "-"));
        fs::create_dir_all(&context).expect("build context");
        fs::write(
            context.join("Dockerfile"),
            format!("FROM {}\n{steps}\n", TEST_IMAGE),
        )
        .expect("Dockerfile");
        let built = run_with_timeout(
            Command::new("docker")
                .args(["build", "-q", "-t", tag])
                .arg(&context)
                .env("DOCKER_BUILDKIT", "0"),
            Duration::from_secs(120),
        );
        assert!(
            built.status.success(),
            "docker build {tag}: {}",
            stderr_of(&built)
        );
    }
}

/// The quick start, as written, on the real user manager and engine. What differs from a host
/// is only where it runs: `sudo` runs its command as is (the test is root already), `composectl`
/// is the binary under test in user mode against this test's manager, and `/etc/composectl` is
/// that mode's root (`$XDG_CONFIG_HOME/composectl`). The images it names are local stand-ins
/// under the same names.
#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh)"]
#[allow(clippy::print_stdout)] // the measured: line, as the operations tests print theirs
fn the_readme_quick_start_runs_as_written() {
    environment();
    let manager = UserManager::start();
    let shims = manager.root().join("bin");
    fs::create_dir_all(&shims).expect("shims");
    build_stand_ins(&manager.root().join("images"));
    let shim = |name: &str, body: String| {
        let path = shims.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("shim");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    shim("sudo", "exec \"$@\"".into());
    let bin = composectl_testkit::bin();
    shim(
        "composectl",
        format!("COMPOSECTL_EXEC={bin} NO_COLOR=1 exec {bin} --user \"$@\""),
    );
    let root = manager.config_home().join("composectl");
    let script =
        readme_block("quick start").replace("/etc/composectl", &root.display().to_string());
    let cleanup = || {
        let _ = manager.composectl(&root, &["disable", "--now", "web", "db"]);
        let _ = Command::new("docker")
            .args(["network", "rm", "backend"])
            .output();
    };
    let started = std::time::Instant::now();
    let output = run_with_timeout(
        manager
            .command("bash")
            .args(["-euo", "pipefail", "-x", "-c", &script])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    shims.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
        Duration::from_secs(300),
    );
    let seconds = started.elapsed().as_secs_f64();
    let (stdout, stderr) = (stdout_of(&output), stderr_of(&output));
    let restarts = manager.property("compose@web.service", "NRestarts");
    let web = manager.property("compose@web.service", "ActiveState");
    let db = manager.property("compose@db.service", "ActiveState");
    cleanup();
    assert!(
        output.status.success(),
        "the quick start failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert_eq!(
        (web.as_str(), db.as_str()),
        ("active", "active"),
        "{stdout}"
    );
    assert_eq!(
        restarts, "1",
        "the killed container came back through one restart"
    );
    assert!(
        stdout.contains("web-nginx-1"),
        "compose ps lists web's container:\n{stdout}"
    );
    println!("measured: the README's quick start ran in {seconds:.1} s");
}
