//! Supervision under faults, in a real private user manager on the real engine: a late, hung or
//! vanished engine (through an [`EngineProxy`] only this test's units use), a killed supervisor,
//! recreated required stacks, failed starts. The full fault table (real engine kills, the PID-1
//! guest) is the `faults` runner's.

use std::process::Command;
use std::time::{Duration, Instant};

use indoc::indoc;

use composectl_testkit::e2e::{UserManager, environment, wait_until};
use composectl_testkit::engine_proxy::EngineProxy;
use composectl_testkit::stacks::{
    FAST_DEFAULTS, Stacks, assert_ordered, composectl, engine_events, now_secs, text, wait_for,
};

pub fn unit(stack: &str) -> String {
    format!("compose@{stack}.service")
}

/// The ID of a stack's only container, or "" when it has none.
pub fn container_id(stack: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label=com.docker.compose.project={stack}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn active(manager: &UserManager, stack: &str) {
    wait_for(
        manager,
        &unit(stack),
        "ActiveState",
        Duration::from_secs(90),
        |s| s == "active",
    );
}

/// A stack whose container runs as a user the image does not have: it is created but never
/// starts, so every start of the stack fails with the reason "composectl-test".
fn unstartable(stacks: &Stacks, stack: &str, network: &str) -> String {
    let service = format!(
        "    user: composectl-test\n{}",
        stacks.healthy_after(stack, "0")
    );
    stacks.custom(stack, "", &service, network)
}

/// The unit's processes and what the engine runs for it, through `docker_host`.
fn use_engine(manager: &UserManager, docker_host: &str) {
    let set = manager.systemctl(&["set-environment", &format!("DOCKER_HOST={docker_host}")]);
    assert!(set.status.success(), "{}", text(&set));
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_late_engine_delays_the_layers_instead_of_breaking_them() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let mut engine = EngineProxy::new(&manager.root().join("docker.sock"));
    use_engine(&manager, &engine.docker_host());
    let net = stacks.network("net");
    let panel = stacks.stack("panel", "1", &[], &net);
    let database = stacks.stack("database", "1", &[], &net);
    let genai = stacks.stack("genai", "0", &["panel", "database"], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", &genai]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // As at boot: the stacks start while the engine is not there yet.
    let started = manager.systemctl(&["start", "--no-block", &unit(&genai)]);
    assert!(started.status.success(), "{}", text(&started));
    // The networks unit, which every stack starts after, waits for the engine.
    let networks = "composectl-networks.service";
    assert!(
        wait_until(Duration::from_secs(20), || manager
            .journal_lines(networks, &[])
            .iter()
            .any(|l| l.starts_with("waiting for the Docker engine"))),
        "{}",
        manager.journal_lines(networks, &[]).join("\n")
    );
    std::thread::sleep(Duration::from_secs(5));
    let since = format!("{}", now_secs());
    engine.forward();

    for stack in [&panel, &database, &genai] {
        active(&manager, stack);
        assert_eq!(
            manager.property(&unit(stack), "NRestarts"),
            "0",
            "{stack}\n{}",
            manager.journal_lines(&unit(stack), &[]).join("\n")
        );
    }
    assert_ordered(&engine_events(&since), &genai, &[&panel, &database]);
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_killed_supervisor_adopts_its_containers_and_recreated_stacks_restart_their_dependents() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let database = stacks.stack("database", "1", &[], &net);
    let genai = stacks.stack("genai", "0", &["database"], &net);
    let keeper = stacks.custom(
        "keeper",
        &format!("x-composectl:\n  requires:\n    {database}: {{restart: false}}\n"),
        &stacks.healthy_after("keeper", "0"),
        &net,
    );
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &genai, &keeper]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let ids = |stacks: &[&String]| stacks.iter().map(|s| container_id(s)).collect::<Vec<_>>();
    let invocations = |stacks: &[&String]| {
        stacks
            .iter()
            .map(|s| manager.property(&unit(s), "InvocationID"))
            .collect::<Vec<_>>()
    };
    let all = [&database, &genai, &keeper];
    let (containers, units) = (ids(&all), invocations(&all[1..]));

    // The OOM killer takes database's supervisor: its containers never stop, so nothing restarts.
    let pid = manager.property(&unit(&database), "MainPID");
    let killed = Command::new("kill")
        .args(["-KILL", &pid])
        .output()
        .expect("kill");
    assert!(killed.status.success(), "{}", text(&killed));
    wait_for(
        &manager,
        &unit(&database),
        "NRestarts",
        Duration::from_secs(30),
        |n| n != "0",
    );
    active(&manager, &database);
    assert_eq!(
        ids(&all),
        containers,
        "containers were recreated for a supervisor crash"
    );
    assert_eq!(
        invocations(&all[1..]),
        units,
        "dependents were restarted for a supervisor crash"
    );

    // database's container dies: the stack is recreated, genai restarts with it, keeper not.
    let kill = Command::new("docker")
        .args(["kill", &format!("{database}-app-1")])
        .output()
        .expect("docker kill");
    assert!(kill.status.success(), "{}", text(&kill));
    assert!(
        wait_until(Duration::from_secs(60), || {
            let now = ids(&[&database, &genai]);
            now.iter()
                .zip(&containers)
                .all(|(new, old)| !new.is_empty() && new != old)
        }),
        "database and genai were not recreated:\n{}",
        manager.journal_lines(&unit(&genai), &[]).join("\n")
    );
    active(&manager, &database);
    active(&manager, &genai);
    assert_eq!(
        container_id(&keeper),
        containers[2],
        "keeper said restart: false"
    );
    assert_eq!(manager.property(&unit(&keeper), "InvocationID"), units[1]);
    assert!(
        manager
            .journal_lines(&unit(&genai), &[])
            .iter()
            .any(|l| l.contains("restarting after it")),
        "{:?}",
        manager.journal_lines(&unit(&genai), &[])
    );

    // Stopping database stops both: they stop with a stack they require.
    let stopped = manager.systemctl(&["stop", &unit(&database)]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    for stack in [&genai, &keeper] {
        wait_for(
            &manager,
            &unit(stack),
            "ActiveState",
            Duration::from_secs(30),
            |s| s == "inactive",
        );
        assert_eq!(container_id(stack), "", "{stack} left containers");
    }
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_failed_start_leaves_nothing_behind_names_its_cause_and_recovers_once_fixed() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    // The container is created but cannot start, and `compose up` fails (what used to leave
    // containers in Created).
    let database = unstartable(&stacks, "database", &net);
    let genai = stacks.stack("genai", "0", &["database"], &net);
    let root = stacks.root().to_path_buf();

    let begun = Instant::now();
    let enabled = composectl(&manager, &root, &["enable", "--now", &genai]);
    let shown = text(&enabled);
    assert_eq!(enabled.status.code(), Some(1), "{shown}");
    // The root cause, not just "dependency": database's own error and that genai waits for it.
    assert!(
        shown.contains(&format!("{}: failed", unit(&database))),
        "{shown}"
    );
    assert!(shown.contains("composectl-test"), "{shown}");
    assert!(
        shown.contains(&format!("it waits for {}, which failed", unit(&database))),
        "{shown}"
    );
    // ... reported once database gave up, not after genai's 90 s start timeout.
    assert!(
        begun.elapsed() < Duration::from_secs(60),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(
        container_id(&database),
        "",
        "a failed start left containers"
    );

    // Fixed and started again, database comes up, and genai (still waiting) follows by itself.
    let compose = root.join("stacks").join(&database).join("compose.yaml");
    let yaml = std::fs::read_to_string(&compose).expect("compose.yaml");
    std::fs::write(&compose, yaml.replace("    user: composectl-test\n", "")).expect("fix it");
    let reset = manager.systemctl(&["reset-failed", &unit(&database)]);
    assert!(reset.status.success(), "{}", text(&reset));
    let started = composectl(&manager, &root, &["start", &database]);
    assert!(started.status.success(), "{}", text(&started));
    active(&manager, &genai);
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn disable_now_removes_what_a_stack_left() {
    environment();
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let app = stacks.stack("app", "0", &[], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", &app]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    // Containers of the project that systemd never ran (by hand, or a failed start of old).
    let networks = composectl(&manager, &root, &["networks"]);
    assert!(networks.status.success(), "{}", text(&networks));
    let up = Command::new("docker")
        .args(["compose", "--project-name", &app, "--file"])
        .arg(root.join("stacks").join(&app).join("compose.yaml"))
        .args(["up", "--detach", "--no-start"])
        .output()
        .expect("docker compose");
    assert!(up.status.success(), "{}", text(&up));
    assert_ne!(container_id(&app), "");

    let disabled = composectl(&manager, &root, &["disable", "--now", &app]);
    assert!(disabled.status.success(), "{}", text(&disabled));
    assert!(
        String::from_utf8_lossy(&disabled.stdout)
            .contains(&format!("removed 1 containers {app} left behind")),
        "{}",
        text(&disabled)
    );
    assert_eq!(container_id(&app), "");
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_container_killed_by_hand_fails_its_stack_without_waiting_out_the_grace() {
    environment();
    // A grace far longer than the test waits: only the engine's "will not restart" can explain
    // a quick restart.
    let mut stacks = Stacks::with_settings(indoc! {r#"
            [defaults]
            restart_sec = "300ms"
            failure_grace = "5min"
            start_timeout = "90s"
        "#});
    let manager = UserManager::start();
    let net = stacks.network("net");
    let app = stacks.custom(
        "app",
        "",
        &stacks
            .healthy_after("app", "0")
            .replace("restart: \"no\"", "restart: unless-stopped"),
        &net,
    );
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &app]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    // docker kill is a stop by hand: unless-stopped never restarts it.
    let kill = Command::new("docker")
        .args(["kill", &format!("{app}-app-1")])
        .output()
        .expect("docker kill");
    assert!(kill.status.success(), "{}", text(&kill));
    wait_for(
        &manager,
        &unit(&app),
        "NRestarts",
        Duration::from_secs(30),
        |n| n != "0",
    );
    assert!(
        manager
            .journal_lines(&unit(&app), &[])
            .iter()
            .any(|l| l.contains("exited with code 137 and the engine does not restart it")),
        "{:?}",
        manager.journal_lines(&unit(&app), &[])
    );
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_hung_or_vanished_engine_never_holds_a_stop_and_its_stacks_come_back_with_it() {
    environment();
    let mut stacks = Stacks::with_settings(indoc! {r#"
            [defaults]
            restart_sec = "300ms"
            failure_grace = "2s"
            start_timeout = "90s"
            stop_timeout = "2min"
        "#});
    let manager = UserManager::start();
    let mut engine = EngineProxy::new(&manager.root().join("docker.sock"));
    engine.forward();
    use_engine(&manager, &engine.docker_host());
    let net = stacks.network("net");
    let hung = stacks.stack("hung", "0", &[], &net);
    let gone = stacks.stack("gone", "0", &[], &net);
    let root = stacks.root().to_path_buf();
    let enabled = composectl(&manager, &root, &["enable", "--now", &hung, &gone]);
    assert!(enabled.status.success(), "{}", text(&enabled));

    // The engine stops answering (a socket-activated dockerd that is not coming back): a stop
    // does not wait for `compose down` until TimeoutStopSec.
    engine.hang();
    let begun = Instant::now();
    let stopped = manager.systemctl(&["stop", &unit(&hung)]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "stop took {:?}\n{}",
        begun.elapsed(),
        manager.journal_lines(&unit(&hung), &[]).join("\n")
    );

    // The engine goes away: gone's supervisor exits at once and waits for it to come back.
    let containers = container_id(&gone);
    engine.remove();
    wait_for(
        &manager,
        &unit(&gone),
        "NRestarts",
        Duration::from_secs(30),
        |n| n != "0",
    );
    assert!(
        wait_until(Duration::from_secs(20), || manager
            .property(&unit(&gone), "StatusText")
            .starts_with("waiting for the Docker engine")),
        "{}",
        manager.journal_lines(&unit(&gone), &[]).join("\n")
    );
    engine.forward();
    active(&manager, &gone);
    assert_eq!(
        container_id(&gone),
        containers,
        "its containers were adopted, not recreated"
    );
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_stop_waits_for_a_container_that_takes_its_grace_period_to_shut_down() {
    environment();
    // stop_timeout 30s (FAST_DEFAULTS), but the container takes 35s to shut down, as a database
    // writing its checkpoint does, within its stop_grace_period of 50s: the unit must allow
    // 50s + 30s, or systemd kills the stop halfway.
    let mut stacks = Stacks::new();
    let manager = UserManager::start();
    let net = stacks.network("net");
    let app = stacks.custom(
        "app",
        "",
        indoc! {r#"
            restart: "no"
            stop_grace_period: 50s
            command: ["sh", "-c", "trap 'echo checkpoint; sleep 35; echo shut down cleanly; exit 0' TERM; echo accepting; while :; do sleep 1; done"]
        "#}
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .as_str(),
        &net,
    );
    let root = stacks.root().to_path_buf();
    let dropin = composectl(&manager, &root, &["render", &app]);
    assert!(
        text(&dropin).contains("TimeoutStopSec=80s"),
        "{}",
        text(&dropin)
    );
    let enabled = composectl(&manager, &root, &["enable", "--now", &app]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    active(&manager, &app);

    let began = Instant::now();
    let stopped = manager.systemctl(&["stop", &unit(&app)]);
    let took = began.elapsed();
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(
        manager.property(&unit(&app), "Result"),
        "success",
        "systemd did not time the stop out"
    );
    assert!(took >= Duration::from_secs(35), "the stop took {took:?}");
    let lines = manager.journal_lines(&unit(&app), &["COMPOSE_SERVICE=app"]);
    assert!(
        lines.iter().any(|l| l == "shut down cleanly"),
        "the container finished its shutdown: {lines:?}"
    );
}

/// A receiver of notifications on 127.0.0.1: each request's path and body, as they come.
struct Receiver {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = listener.local_addr().expect("its address").port();
        let got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> =
            std::sync::Arc::default();
        let sink = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                sink.lock()
                    .expect("lock")
                    .push((path, String::from_utf8_lossy(&body).into_owned()));
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, got }
    }

    fn received(&self) -> Vec<(String, String)> {
        self.got.lock().expect("lock").clone()
    }
}

#[test]
#[ignore = "end-to-end: needs root, systemd, journald, dockerd and Compose v2 (scripts/test.sh provisions them)"]
fn a_stack_that_stays_failed_is_notified_once_and_a_clean_stop_never() {
    environment();
    let receiver = Receiver::start();
    let mut stacks = Stacks::with_settings(&format!(
        "{FAST_DEFAULTS}\n[notify]\ncommand = 'curl -fsS -m 5 --data-binary @- http://127.0.0.1:{}/$COMPOSECTL_STACK/$COMPOSECTL_STATE/$COMPOSECTL_RESULT'\n",
        receiver.port
    ));
    let manager = UserManager::start();
    let net = stacks.network("net");
    // Every start fails, until the start limit keeps it failed.
    let broken = unstartable(&stacks, "broken", &net);
    let fine = stacks.stack("fine", "0", &[], &net);
    let root = stacks.root().to_path_buf();

    let enabled = composectl(&manager, &root, &["enable", "--now", &broken]);
    assert_eq!(enabled.status.code(), Some(1), "{}", text(&enabled));
    wait_for(
        &manager,
        &unit(&broken),
        "ActiveState",
        Duration::from_secs(60),
        |s| s == "failed",
    );
    assert!(
        wait_until(Duration::from_secs(30), || !receiver.received().is_empty()),
        "no notification for {broken}, which stays failed\n{}",
        manager.manager_log()
    );
    // Its earlier failures, which systemd restarted it after, started the notifier too:
    // none of them may be sent, nor the final state twice.
    std::thread::sleep(Duration::from_secs(5));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let (path, body) = &received[0];
    assert!(path.starts_with(&format!("/{broken}/failed/")), "{path}");
    assert!(body.contains(&format!("stack {broken} failed")), "{body}");
    assert!(body.contains("stays failed"), "{body}");
    // The stack's last journal lines follow the message: the start's own error.
    assert!(body.contains("composectl-test"), "{body}");

    let enabled = composectl(&manager, &root, &["enable", "--now", &fine]);
    assert!(enabled.status.success(), "{}", text(&enabled));
    let stopped = composectl(&manager, &root, &["stop", &fine]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    std::thread::sleep(Duration::from_secs(3));
    let received = receiver.received();
    assert!(
        received.iter().all(|(path, _)| !path.contains(&fine)),
        "a clean stop notified: {received:#?}"
    );

    // By hand, to try the command out.
    let tried = composectl(&manager, &root, &["notify", &fine, "--test"]);
    assert!(tried.status.success(), "{}", text(&tried));
    assert!(
        wait_until(Duration::from_secs(10), || receiver
            .received()
            .iter()
            .any(|(path, _)| path.starts_with(&format!("/{fine}/test/")))),
        "{:#?}",
        receiver.received()
    );
}
