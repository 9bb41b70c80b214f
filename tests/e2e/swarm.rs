//! `composectl swarm` end to end, on the lab `scripts/swarm-lab.sh up` builds (scripts/test.sh
//! does): a single-node swarm (engine 1) and a three-node swarm (engines 2, 3, 4), each engine
//! in a network namespace of its own. Everything is read from the engines (their APIs through
//! the docker CLI), never by sending traffic to a task. Names and subnets are unique per test,
//! since the tests share the lab.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use composectl_testkit::e2e::{CMD_TIMEOUT, TEST_IMAGE, run_with_timeout, wait_until};
use composectl_testkit::harness::Test;
use composectl_testkit::stacks::{healthy_after, text};

const SOLO: &str = "/run/composectl-swarm/1/docker.sock";
const MULTI: [&str; 3] = [
    "/run/composectl-swarm/2/docker.sock",
    "/run/composectl-swarm/3/docker.sock",
    "/run/composectl-swarm/4/docker.sock",
];

static NEXT: AtomicU8 = AtomicU8::new(0);
/// Subnets handed out in this run, so concurrent tests never pick the same one.
static TAKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn docker(socket: &str, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new("docker")
            .arg("--host")
            .arg(format!("unix://{socket}"))
            .args(args),
        CMD_TIMEOUT,
    )
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Panics with how to get the lab unless both swarms answer with all their nodes ready.
fn lab() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECK.get_or_init(|| {
        for (manager, nodes) in [(SOLO, 1), (MULTI[0], MULTI.len())] {
            let listed = docker(manager, &["node", "ls", "--format", "{{.Status}}"]);
            let ready = lines(&listed).iter().filter(|s| *s == "Ready").count();
            if !listed.status.success() || ready != nodes {
                return Err(format!(
                    "{manager}: {ready} of {nodes} nodes ready: {}",
                    text(&listed)
                ));
            }
        }
        Ok(())
    });
    if let Err(reason) = checked {
        panic!("the swarm lab is not up ({reason}): run scripts/swarm-lab.sh up, as root");
    }
}

/// A root of busybox stacks deployed to one swarm of the lab; removed from it when dropped.
struct SwarmRoot {
    test: Test,
    prefix: String,
    manager: &'static str,
    nodes: &'static [&'static str],
}

impl SwarmRoot {
    fn new(manager: &'static str, nodes: &'static [&'static str]) -> SwarmRoot {
        lab();
        sweep_leftovers(manager);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        SwarmRoot {
            test: Test::new().file(
                "composectl.toml",
                "[defaults]\nstart_timeout = \"90s\"\nstop_timeout = \"60s\"\n",
            ),
            prefix: format!("s{}x{n}", std::process::id()),
            manager,
            nodes,
        }
    }

    fn root(&self) -> &Path {
        self.test.root()
    }

    fn name(&self, stack: &str) -> String {
        format!("{}-{stack}", self.prefix)
    }

    /// A network of networks.toml with a subnet no network of this swarm or test uses.
    fn network(&self, net: &str, internal: bool) -> String {
        let name = self.name(net);
        let used = lines(&docker(self.manager, &["network", "ls", "-q"]))
            .into_iter()
            .flat_map(|id| {
                lines(&docker(
                    self.manager,
                    &[
                        "network",
                        "inspect",
                        "-f",
                        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                        &id,
                    ],
                ))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        let subnet = (0..=255)
            .map(|octet| format!("10.126.{octet}.0/24"))
            .find(|s| !used.contains(s.as_str()) && !taken.contains(s))
            .expect("a free /24 in 10.126.0.0/16");
        taken.push(subnet.clone());
        let path = self.root().join("networks.toml");
        let mut toml = std::fs::read_to_string(&path).unwrap_or_default();
        toml.push_str(&format!(
            "[networks.{name}]\nsubnet = \"{subnet}\"\ninternal = {internal}\n"
        ));
        std::fs::write(path, toml).expect("networks.toml");
        name
    }

    /// A stack whose services (`services`, in compose syntax under `services:`) join `networks`.
    fn stack(&self, stack: &str, requires: &[&str], services: &str, networks: &[&str]) -> String {
        let name = self.name(stack);
        let requires: Vec<String> = requires.iter().map(|r| self.name(r)).collect();
        let declared: String = networks
            .iter()
            .map(|n| format!("  {n}:\n    external: true\n"))
            .collect();
        let compose = format!(
            "x-composectl:\n  requires: [{}]\nservices:\n{services}networks:\n{declared}",
            requires.join(", ")
        );
        let dir = self.root().join("stacks").join(&name);
        std::fs::create_dir_all(&dir).expect("stack dir");
        std::fs::write(dir.join("compose.yaml"), compose).expect("compose.yaml");
        name
    }

    fn composectl(&self, args: &[&str]) -> Output {
        let mut command = self.test.command();
        command
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.manager));
        run_with_timeout(&mut command, Duration::from_secs(300))
    }

    /// What of this test is still on any node: containers, services, networks, configs.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for node in self.nodes {
            for (what, args) in [
                ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
                ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
            ] {
                left.extend(
                    lines(&docker(node, args))
                        .into_iter()
                        .filter(|n| n.starts_with(&self.prefix))
                        .map(|n| format!("{what} {n} on {node}")),
                );
            }
        }
        for args in [
            &["service", "ls", "--format", "{{.Name}}"][..],
            &["config", "ls", "--format", "{{.Name}}"],
            &["secret", "ls", "--format", "{{.Name}}"],
        ] {
            left.extend(
                lines(&docker(self.manager, args))
                    .into_iter()
                    .filter(|n| n.starts_with(&self.prefix)),
            );
        }
        left
    }
}

impl Drop for SwarmRoot {
    fn drop(&mut self) {
        let _ = self.composectl(&["swarm", "rm"]);
        remove_prefixed(self.manager, &self.prefix);
    }
}

/// Removes the services and networks whose names start with `prefix`.
fn remove_prefixed(manager: &str, prefix: &str) {
    for (list, remove) in [
        (["service", "ls"], ["service", "rm"]),
        (["network", "ls"], ["network", "rm"]),
    ] {
        let names: Vec<String> = lines(&docker(
            manager,
            &[list[0], list[1], "--format", "{{.Name}}"],
        ))
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
        if !names.is_empty() {
            let mut args: Vec<&str> = remove.to_vec();
            args.extend(names.iter().map(String::as_str));
            let _ = docker(manager, &args);
        }
    }
}

/// What earlier test runs left behind when they were killed (their pid is gone).
fn sweep_leftovers(manager: &str) {
    for name in lines(&docker(
        manager,
        &["service", "ls", "--format", "{{.Name}}"],
    )) {
        let owner = name
            .strip_prefix('s')
            .and_then(|r| r.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            remove_prefixed(manager, &format!("s{pid}x"));
        }
    }
}

/// A container event on a node: (action, swarm service, container, time in ns).
type Event = (String, String, String, i64);

/// The `start` and `health_status` events of every node, streamed live while the watch runs:
/// an engine keeps only its last 256 events to replay, and healthchecks every 200 ms on a
/// dozen tasks push the start of a deploy out of that within seconds.
struct EventWatch {
    streams: Vec<(std::process::Child, std::thread::JoinHandle<Vec<Event>>)>,
}

impl EventWatch {
    fn start(nodes: &[&str]) -> EventWatch {
        let streams = nodes
            .iter()
            .map(|node| {
                let mut child = Command::new("docker")
                    .arg("--host")
                    .arg(format!("unix://{node}"))
                    .args([
                        "events",
                        "--filter",
                        "type=container",
                        "--filter",
                        "event=start",
                    ])
                    .args(["--filter", "event=health_status", "--format", "{{json .}}"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("docker events");
                let stdout = child.stdout.take().expect("stdout");
                let reader = std::thread::spawn(move || {
                    use std::io::BufRead;
                    std::io::BufReader::new(stdout)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
                        .map(|e| {
                            let attrs = &e["Actor"]["Attributes"];
                            let field =
                                |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                            (
                                field(&e["Action"]),
                                field(&attrs["com.docker.swarm.service.name"]),
                                field(&attrs["name"]),
                                e["timeNano"].as_i64().unwrap_or_default(),
                            )
                        })
                        .collect()
                });
                (child, reader)
            })
            .collect();
        // The streams are subscribed once the engines answered them; give them that moment.
        std::thread::sleep(Duration::from_millis(500));
        EventWatch { streams }
    }

    fn stop(self) -> Vec<Event> {
        let mut events = Vec::new();
        for (mut child, reader) in self.streams {
            let _ = child.kill();
            let _ = child.wait();
            events.extend(reader.join().expect("event reader"));
        }
        events.sort_by_key(|e| e.3);
        events
    }
}

/// No container of `dependent` started before every container of each `required` service was
/// healthy: the layers (and the waves within a stack) were deployed in order.
fn assert_ready_before(events: &[Event], dependent: &str, required: &[String]) {
    let start = events
        .iter()
        .filter(|(action, service, ..)| action == "start" && service == dependent)
        .map(|e| e.3)
        .min()
        .unwrap_or_else(|| panic!("{dependent} never started: {events:?}"));
    for required in required {
        let mut healthy: BTreeMap<&str, i64> = BTreeMap::new();
        for (action, service, container, time) in events {
            if action == "health_status: healthy" && service == required {
                healthy.entry(container).or_insert(*time);
            }
        }
        let last = healthy
            .values()
            .max()
            .unwrap_or_else(|| panic!("{required} never turned healthy: {events:?}"));
        assert!(
            start > *last,
            "{dependent} started {} ms before every task of {required} was healthy",
            (last - start) / 1_000_000
        );
    }
}

/// A service that turns healthy after `delay` seconds, with `replicas` tasks at most one a node.
fn service(name: &str, delay: &str, replicas: usize, extra: &str) -> String {
    format!(
        "  {name}:\n    image: {TEST_IMAGE}\n    pull_policy: never\n{}    deploy:\n      replicas: {replicas}\n      placement:\n        max_replicas_per_node: 1\n{extra}",
        healthy_after(name, delay)
    )
}

/// panel (healthy after 2 s), database (3 s) and genai (2 s, requiring both), as in TESTING.md;
/// genai's worker depends on its app (healthy): composectl deploys it in a second wave.
fn three_layers(root: &SwarmRoot, replicas: usize) -> (String, String, String) {
    let proxy = root.network("proxy", false);
    let db = root.network("db", true);
    let on = |net: &str| format!("    networks: [{net}]\n");
    let panel = root.stack(
        "panel",
        &[],
        &service("app", "2", replicas, &on(&proxy)),
        &[&proxy],
    );
    let database = root.stack(
        "database",
        &[],
        &service("app", "3", replicas, &on(&db)),
        &[&db],
    );
    let nets = format!("    networks: [{db}, {proxy}]\n");
    let genai_services = format!(
        "{}{}",
        service("app", "2", replicas, &nets),
        service(
            "worker",
            "1",
            1,
            &format!(
                "    depends_on:\n      app:\n        condition: service_healthy\n{}",
                on(&db)
            )
        )
    );
    let genai = root.stack(
        "genai",
        &["panel", "database"],
        &genai_services,
        &[&db, &proxy],
    );
    (panel, database, genai)
}

/// Deploys the three layers, checks the order, the networks and `status`; returns the seconds
/// each layer took.
fn deploy_in_layers(root: &SwarmRoot, replicas: usize) -> Vec<f64> {
    let (panel, database, genai) = three_layers(root, replicas);
    let rendered = root.composectl(&["swarm", "render", &genai]);
    assert!(rendered.status.success(), "{}", text(&rendered));

    let watch = EventWatch::start(root.nodes);
    let deployed = root.composectl(&["-o", "json", "swarm", "deploy", &genai]);
    let events = watch.stop();
    assert!(deployed.status.success(), "{}", text(&deployed));
    let report: serde_json::Value = serde_json::from_slice(&deployed.stdout).expect("json");
    let layers: Vec<f64> = report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["seconds"].as_f64().expect("seconds"))
        .collect();
    assert_eq!(layers.len(), 2, "{report}");

    let app = |stack: &str| format!("{stack}_app");
    assert_ready_before(&events, &app(&genai), &[app(&panel), app(&database)]);
    assert_ready_before(&events, &format!("{genai}_worker"), &[app(&genai)]);

    // The networks of networks.toml, as overlay networks with the same settings.
    for (net, internal) in [(root.name("proxy"), "false"), (root.name("db"), "true")] {
        let inspect = docker(
            root.manager,
            &[
                "network",
                "inspect",
                "-f",
                "{{.Driver}} {{.Scope}} {{.Internal}} {{.Attachable}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
                &net,
            ],
        );
        let shown = String::from_utf8_lossy(&inspect.stdout);
        assert!(
            shown.starts_with(&format!("overlay swarm {internal} true 10.126.")),
            "{net}: {shown}"
        );
        assert!(shown.trim_end().ends_with(".1"), "{net}: {shown}");
    }

    let status = root.composectl(&["-o", "json", "swarm", "status", &panel, &database, &genai]);
    assert!(status.status.success(), "{}", text(&status));
    let stacks: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    for stack in stacks.as_array().expect("stacks") {
        assert_eq!(stack["ready"], true, "{stack}");
        for service in stack["services"].as_array().expect("services") {
            assert_eq!(service["running"], service["desired"], "{stack}");
            assert_eq!(service["healthcheck"], true, "{stack}");
        }
    }
    layers
}

fn measured(what: &str, layers: &[f64]) {
    let shown: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("layer {}: {s:.1}s", i + 1))
        .collect();
    let _ = writeln!(std::io::stderr(), "{what}: {}", shown.join(", "));
}

fn assert_nothing_left(root: &SwarmRoot) {
    let removed = root.composectl(&["swarm", "rm"]);
    assert!(removed.status.success(), "{}", text(&removed));
    // The manager has no task left when rm returns; the nodes remove the containers just after.
    let mut left = Vec::new();
    let gone = wait_until(Duration::from_secs(30), || {
        left = root.leftovers();
        left.is_empty()
    });
    assert!(gone, "left behind: {left:?}");
}

#[test]
#[ignore = "end-to-end: needs the swarm lab of scripts/swarm-lab.sh (scripts/test.sh builds it)"]
fn three_layers_deploy_in_order_on_a_single_node_swarm_update_and_leave_nothing() {
    let root = SwarmRoot::new(SOLO, std::slice::from_ref(&SOLO));
    let layers = deploy_in_layers(&root, 1);
    measured("single-node swarm", &layers);

    // update: every service of the stack gets a new task, and the stack is ready again.
    let database = root.name("database");
    let task_ids = || {
        lines(&docker(
            SOLO,
            &[
                "service",
                "ps",
                "-q",
                "--filter",
                "desired-state=running",
                &format!("{database}_app"),
            ],
        ))
    };
    let before = task_ids();
    let updated = root.composectl(&["swarm", "update", &database]);
    assert!(updated.status.success(), "{}", text(&updated));
    let after = task_ids();
    assert!(
        !after.is_empty() && after.iter().all(|t| !before.contains(t)),
        "{before:?} -> {after:?}"
    );

    assert_nothing_left(&root);
}

#[test]
#[ignore = "end-to-end: needs the swarm lab of scripts/swarm-lab.sh (scripts/test.sh builds it)"]
fn three_layers_deploy_in_order_with_tasks_on_every_node_of_a_three_node_swarm() {
    let root = SwarmRoot::new(MULTI[0], &MULTI);
    let layers = deploy_in_layers(&root, 3);
    measured("three-node swarm", &layers);
    // Three replicas, at most one a node: every node runs a task of each stack.
    let status = root.composectl(&["-o", "json", "swarm", "status", &root.name("panel")]);
    let stacks: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let nodes: BTreeSet<&str> = stacks[0]["services"][0]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["swarm-2", "swarm-3", "swarm-4"]),
        "{stacks}"
    );
    for node in MULTI {
        let running = lines(&docker(node, &["ps", "--format", "{{.Names}}"]));
        assert!(
            running.iter().any(|n| n.starts_with(&root.name("panel"))),
            "{node}: {running:?}"
        );
    }
    assert_nothing_left(&root);
}

#[test]
#[ignore = "end-to-end: needs the swarm lab of scripts/swarm-lab.sh (scripts/test.sh builds it)"]
fn a_failing_service_fails_the_deploy_with_its_task_error_and_dependents_wait() {
    let root = SwarmRoot::new(SOLO, std::slice::from_ref(&SOLO));
    let net = root.network("net", true);
    let broken = root.stack(
        "broken",
        &[],
        &format!("  app:\n    image: {TEST_IMAGE}\n    pull_policy: never\n    restart: \"no\"\n    command: [\"sh\", \"-c\", \"echo giving up; exit 3\"]\n    networks: [{net}]\n"),
        &[&net],
    );
    let dependent = root.stack(
        "dependent",
        &["broken"],
        &service("app", "0", 1, &format!("    networks: [{net}]\n")),
        &[&net],
    );
    let deployed = root.composectl(&["swarm", "deploy", &dependent]);
    assert_eq!(deployed.status.code(), Some(1), "{}", text(&deployed));
    let shown = text(&deployed);
    assert!(
        shown.contains(&format!("stack {broken} failed: service app: task app.1")),
        "{shown}"
    );
    assert!(shown.contains("non-zero exit (3)"), "{shown}");
    assert!(
        shown.contains(&format!(
            "not deployed (they require a failed stack): {dependent}"
        )),
        "{shown}"
    );
    let status = root.composectl(&["swarm", "status", &broken, &dependent]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(" not deployed"),
        "{}",
        text(&status)
    );
}

#[test]
#[ignore = "end-to-end: needs the swarm lab of scripts/swarm-lab.sh (scripts/test.sh builds it)"]
fn a_network_that_drifted_is_refused_and_the_host_engine_is_no_manager() {
    let root = SwarmRoot::new(SOLO, std::slice::from_ref(&SOLO));
    let net = root.network("net", true);
    let app = root.stack(
        "app",
        &[],
        &service("app", "0", 1, &format!("    networks: [{net}]\n")),
        &[&net],
    );
    let created = docker(
        SOLO,
        &[
            "network",
            "create",
            "--driver",
            "overlay",
            "--subnet",
            "10.127.99.0/24",
            &net,
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let deployed = root.composectl(&["swarm", "deploy", &app]);
    assert_eq!(deployed.status.code(), Some(1), "{}", text(&deployed));
    let shown = text(&deployed);
    for needle in [
        format!("network {net} differs from networks.toml"),
        "internal is false, networks.toml says true".into(),
        "subnet is 10.127.99.0/24".into(),
        "it is not attachable".into(),
        "then run `composectl swarm deploy`".into(),
    ] {
        assert!(shown.contains(&needle), "{needle}: {shown}");
    }
    assert!(
        lines(&docker(SOLO, &["service", "ls", "--format", "{{.Name}}"]))
            .iter()
            .all(|s| !s.starts_with(&app))
    );

    // The machine's own engine is not in swarm mode (and is never put into it).
    composectl_testkit::e2e::environment();
    let mut command = root.test.command();
    command
        .args(["swarm", "deploy", &app])
        .env("DOCKER_HOST", "unix:///var/run/docker.sock");
    let refused = run_with_timeout(&mut command, CMD_TIMEOUT);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("is not part of a swarm"),
        "{}",
        text(&refused)
    );
}
