//! The faults of issue 8, each caused for real: what it is called, where it applies, and how it
//! is done in each environment.

use std::fs;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::target::{Kind, Target, script};
use composectl_testkit::e2e::{
    HostDaemonsExclusive, host_daemons_exclusive, run_with_timeout, stderr_of, stdout_of,
};
use composectl_testkit::layered::{CRASH_NAME, DATA_DIR};

/// How long the engine stays down while the stacks start (engine-late).
const ENGINE_LATE: Duration = Duration::from_secs(20);
/// How long a killed host daemon may take to exit, and a started one to answer.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ContainerKilled,
    ContainerUnhealthy,
    SupervisorKilled,
    EngineTerm,
    EngineKill,
    EngineLate,
    Reboot,
    DockerRestart,
    JournaldRestart,
    Stop,
    Reload,
    UpdateRolledBack,
    RestartLoop,
}

impl Fault {
    pub const ALL: [Fault; 13] = [
        Fault::ContainerKilled,
        Fault::ContainerUnhealthy,
        Fault::SupervisorKilled,
        Fault::EngineTerm,
        Fault::EngineKill,
        Fault::EngineLate,
        Fault::Reboot,
        Fault::DockerRestart,
        Fault::JournaldRestart,
        Fault::Stop,
        Fault::Reload,
        Fault::UpdateRolledBack,
        Fault::RestartLoop,
    ];

    /// The name `--fault` takes.
    pub fn name(self) -> &'static str {
        match self {
            Fault::ContainerKilled => "container-killed",
            Fault::ContainerUnhealthy => "container-unhealthy",
            Fault::SupervisorKilled => "supervisor-killed",
            Fault::EngineTerm => "engine-restarted",
            Fault::EngineKill => "engine-killed",
            Fault::EngineLate => "engine-late",
            Fault::Reboot => "reboot",
            Fault::DockerRestart => "docker-restart",
            Fault::JournaldRestart => "journald-restarted",
            Fault::Stop => "stop",
            Fault::Reload => "reload",
            Fault::UpdateRolledBack => "update-rolled-back",
            Fault::RestartLoop => "restart-loop",
        }
    }

    /// What the table calls it.
    pub fn title(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Fault::ContainerKilled, _) => "database's container killed",
            (Fault::ContainerUnhealthy, _) => "database's container unhealthy for good",
            (Fault::SupervisorKilled, _) => "database's supervisor SIGKILLed",
            (Fault::EngineTerm, _) => "engine restarted (SIGTERM)",
            (Fault::EngineKill, _) => "engine SIGKILLed",
            (Fault::EngineLate, _) => "engine down at start, up 20 s later",
            (Fault::Reboot, Kind::User) => "reboot (new user manager)",
            (Fault::Reboot, Kind::Guest) => "guest reboot",
            (Fault::DockerRestart, _) => "systemctl restart docker",
            (Fault::JournaldRestart, _) => "journald restarted",
            (Fault::Stop, _) => "systemctl stop database mid-write, then start genai",
            (Fault::Reload, _) => "database's compose file changed, composectl reload",
            (Fault::UpdateRolledBack, _) => "update to a build never healthy, rolled back",
            (Fault::RestartLoop, _) => "restart loop to failed, reset-failed + start",
        }
    }

    /// `systemctl restart docker` needs a docker.service: the guest's.
    pub fn applies(self, kind: Kind) -> bool {
        self != Fault::DockerRestart || kind == Kind::Guest
    }

    /// An engine outage: recovery is timed from the engine's return.
    pub fn engine_outage(self) -> bool {
        matches!(
            self,
            Fault::EngineTerm | Fault::EngineKill | Fault::EngineLate | Fault::DockerRestart
        )
    }

    /// Whether the fault kills PostgreSQL itself, so that its next start recovers from its
    /// write-ahead log; after any other, a start must find a clean shutdown.
    pub fn kills_database(self) -> bool {
        matches!(self, Fault::ContainerKilled | Fault::RestartLoop)
    }

    /// Whether the fault stops the database (an orderly stop), which must end with
    /// PostgreSQL's own clean shutdown.
    pub fn stops_database(self) -> bool {
        matches!(
            self,
            Fault::Stop
                | Fault::Reboot
                | Fault::DockerRestart
                | Fault::Reload
                | Fault::UpdateRolledBack
        )
    }

    /// Whether, in the user environment, it takes down the host's dockerd or journald, which
    /// every other test on the machine shares.
    pub fn takes_host_daemons(self) -> bool {
        matches!(
            self,
            Fault::EngineTerm | Fault::EngineKill | Fault::EngineLate | Fault::JournaldRestart
        )
    }
}

/// What causing a fault did.
pub struct Caused {
    /// When recovery is timed from: the fault, or the engine's return for an engine outage.
    pub origin: Instant,
    /// The stacks were certainly not ready at some point (the engine was away, or everything
    /// was stopped).
    pub broken: bool,
    pub notes: Vec<String>,
}

impl Caused {
    fn now() -> Caused {
        Caused {
            origin: Instant::now(),
            broken: false,
            notes: Vec::new(),
        }
    }
    fn broken_now() -> Caused {
        Caused {
            broken: true,
            ..Caused::now()
        }
    }
    fn engine_back(notes: Vec<String>) -> Caused {
        Caused {
            notes,
            ..Caused::broken_now()
        }
    }
}

/// Exclusive use of the host's daemons for a fault that takes them down; on drop both are
/// running again (started the way provisioning starts them), then the lock is released.
pub struct HostOutage {
    _lock: HostDaemonsExclusive,
}

impl HostOutage {
    pub fn take() -> HostOutage {
        HostOutage {
            _lock: host_daemons_exclusive(),
        }
    }
}

impl Drop for HostOutage {
    fn drop(&mut self) {
        if let Err(e) = start_host_daemons(&["journald", "dockerd"]) {
            eprintln!("faults: {e}");
        }
    }
}

/// Causes `fault` in `target`, whose stacks are all ready. Err says what went wrong (the fault
/// could not be caused, or the engine did not come back).
pub fn cause(fault: Fault, target: &mut Target) -> Result<Caused, String> {
    let database = target.stacks().database();
    let container = target.database_container();
    let unit = format!("compose@{database}.service");
    match (fault, target.kind()) {
        (Fault::ContainerKilled, _) => {
            let caused = Caused::now();
            ok(target.docker(&["kill", &container]), "docker kill")?;
            Ok(caused)
        }
        (Fault::ContainerUnhealthy, _) => {
            // Its healthcheck fails while /tmp/sick exists: until the container starts again.
            let caused = Caused::now();
            ok(
                target.docker(&["exec", &container, "touch", "/tmp/sick"]),
                "docker exec touch",
            )?;
            Ok(caused)
        }
        (Fault::SupervisorKilled, _) => {
            let caused = Caused::now();
            ok(
                target.systemctl(&["kill", "-s", "KILL", "--kill-who=main", &unit]),
                "systemctl kill",
            )?;
            Ok(caused)
        }
        (Fault::EngineTerm | Fault::EngineKill, Kind::User) => {
            let signal = if fault == Fault::EngineTerm {
                "TERM"
            } else {
                "KILL"
            };
            let down = Instant::now();
            kill_host_daemon("dockerd", signal)?;
            start_host_daemons(&["dockerd"])?;
            Ok(Caused::engine_back(vec![format!(
                "dockerd down {:.1} s (started again as provisioning does)",
                down.elapsed().as_secs_f64()
            )]))
        }
        (Fault::EngineTerm | Fault::EngineKill, Kind::Guest) => {
            let signal = if fault == Fault::EngineTerm {
                "TERM"
            } else {
                "KILL"
            };
            let guest = target.guest();
            let before = guest.property("docker.service", "MainPID");
            let down = Instant::now();
            ok(
                guest.systemctl(&["kill", "-s", signal, "--kill-who=main", "docker.service"]),
                "systemctl kill docker",
            )?;
            // docker.service's own Restart= brings it back.
            let back = composectl_testkit::e2e::wait_until(crate::LIMIT, || {
                let pid = guest.property("docker.service", "MainPID");
                pid != before && pid != "0" && target.engine_answers()
            });
            if !back {
                return Err(format!(
                    "the engine was not back after {} s: docker.service {}",
                    crate::LIMIT.as_secs(),
                    guest.property("docker.service", "ActiveState")
                ));
            }
            Ok(Caused::engine_back(vec![format!(
                "engine away {:.1} s (docker.service restarted it)",
                down.elapsed().as_secs_f64()
            )]))
        }
        (Fault::EngineLate, Kind::User) => {
            kill_host_daemon("dockerd", "TERM")?;
            target.manager().restart();
            sleep(ENGINE_LATE);
            start_host_daemons(&["dockerd"])?;
            Ok(Caused::engine_back(vec![
                "dockerd stopped, new user manager, dockerd started 20 s later".into(),
            ]))
        }
        (Fault::EngineLate, Kind::Guest) => {
            let guest = target.guest();
            ok(
                guest.systemctl(&["mask", "docker.service", "docker.socket"]),
                "mask docker",
            )?;
            // Not until the boot settles: the stacks may wait for the engine as long as their
            // start timeout allows.
            guest.reboot_without_settling();
            sleep(ENGINE_LATE);
            ok(
                guest.systemctl(&["unmask", "docker.service", "docker.socket"]),
                "unmask docker",
            )?;
            ok(
                guest.systemctl(&["start", "docker.service"]),
                "start docker",
            )?;
            if !target.wait_engine(crate::LIMIT) {
                return Err("the guest's engine did not answer after its start".into());
            }
            Ok(Caused::engine_back(vec![
                "docker masked over a reboot, started 20 s after the boot began".into(),
            ]))
        }
        // Everything was stopped: broken, even when the stacks are back before anyone looks
        // (guest.sh reboot returns once the boot's jobs are done).
        (Fault::Reboot, Kind::User) => {
            let caused = Caused::broken_now();
            target.manager().restart();
            Ok(caused)
        }
        (Fault::Reboot, Kind::Guest) => {
            let caused = Caused::broken_now();
            target.guest().reboot();
            Ok(caused)
        }
        (Fault::DockerRestart, _) => {
            let down = Instant::now();
            ok(
                target.systemctl(&["restart", "docker.service"]),
                "restart docker",
            )?;
            if !target.wait_engine(crate::LIMIT) {
                return Err("the engine did not answer after systemctl restart docker".into());
            }
            Ok(Caused::engine_back(vec![format!(
                "restart job took {:.1} s",
                down.elapsed().as_secs_f64()
            )]))
        }
        (Fault::JournaldRestart, Kind::User) => {
            let caused = Caused::now();
            kill_host_daemon("journald", "TERM")?;
            start_host_daemons(&["journald"])?;
            Ok(caused)
        }
        (Fault::JournaldRestart, Kind::Guest) => {
            let caused = Caused::now();
            ok(
                target.systemctl(&["restart", "systemd-journald.service"]),
                "restart journald",
            )?;
            Ok(caused)
        }
        (Fault::Stop, _) => {
            let stopping = Instant::now();
            ok(target.systemctl(&["stop", &unit]), "systemctl stop")?;
            let result = target.systemctl(&["show", "-P", "Result", &unit]);
            let note = format!(
                "stopped in {:.1} s, Result={}; started by hand",
                stopping.elapsed().as_secs_f64(),
                stdout_of(&result).trim()
            );
            let caused = Caused {
                notes: vec![note],
                ..Caused::broken_now()
            };
            // genai went down with it (it requires database); its start pulls database in.
            start_genai(target)?;
            Ok(caused)
        }
        (Fault::Reload, _) => {
            // A change compose applies by recreating the container.
            let path = target.database_compose();
            let compose = fs::read_to_string(&path).map_err(|e| format!("read {path:?}: {e}"))?;
            let changed = compose.replacen(
                "    restart: \"no\"\n",
                "    restart: \"no\"\n    environment: {GENERATION: \"2\"}\n",
                1,
            );
            fs::write(&path, changed).map_err(|e| format!("write {path:?}: {e}"))?;
            // The command returns once the stack is ready again: broken meanwhile.
            let caused = Caused::broken_now();
            ok(
                target.composectl(&["reload", &database]),
                "composectl reload",
            )?;
            Ok(caused)
        }
        (Fault::UpdateRolledBack, _) => update_rolled_back(target, &container, &database),
        (Fault::RestartLoop, _) => restart_loop(target, &container, &unit),
    }
}

/// A new build under database's tag that PostgreSQL runs on the data but that never turns
/// healthy (it has /broken): `composectl update` recreates the container on it, and once its
/// healthcheck gives up, rolls back to the image it replaced. Timed from the update.
fn update_rolled_back(target: &Target, container: &str, database: &str) -> Result<Caused, String> {
    let image = target.stacks().database_image();
    let build = format!("{database}-broken-build");
    let _ = target.docker(&["rm", "-f", &build]);
    ok(
        target.docker(&[
            "run",
            "--name",
            &build,
            "--network=none",
            "--pull=never",
            &image,
            "touch",
            "/broken",
        ]),
        "docker run (the broken build)",
    )?;
    let committed = target.docker(&[
        "commit",
        "--change",
        r#"CMD ["/usr/local/bin/composectl-postgres"]"#,
        &build,
        &image,
    ]);
    let _ = target.docker(&["rm", "-f", &build]);
    ok(committed, "docker commit")?;
    let before = target.docker(&["inspect", "-f", "{{.Image}}", container]);
    let caused = Caused::broken_now();
    let updated = target.composectl(&["update", database]);
    let said = format!("{}{}", stdout_of(&updated), stderr_of(&updated));
    if updated.status.success() || !said.contains("back on the images they replaced") {
        return Err(format!("the update was not rolled back: {}", said.trim()));
    }
    let after = target.docker(&["inspect", "-f", "{{.Image}}", container]);
    if stdout_of(&after) != stdout_of(&before) {
        return Err("database does not run the image it ran before the update".into());
    }
    Ok(Caused {
        notes: vec![format!(
            "rolled back in {:.1} s",
            caused.origin.elapsed().as_secs_f64()
        )],
        ..caused
    })
}

/// database's container exits at once from now on (a file in its volume says so), until
/// systemd gives up; then the file goes, `reset-failed` and a start of genai must bring all
/// back. Timed from that start.
fn restart_loop(target: &Target, container: &str, unit: &str) -> Result<Caused, String> {
    let start = Instant::now();
    let crash_file = format!("{DATA_DIR}/{CRASH_NAME}");
    ok(
        target.in_volume(&["touch", &crash_file]),
        "create the crash file",
    )?;
    ok(target.docker(&["kill", container]), "docker kill")?;
    let mut state = String::new();
    let failed = composectl_testkit::e2e::wait_until(crate::LIMIT, || {
        let units = target.units();
        let database = units
            .iter()
            .find(|u| u.get("Id").is_some_and(|id| id == unit));
        state = database
            .map(|u| {
                format!(
                    "{}/{} result {} after {} restarts",
                    u.get("ActiveState").map_or("?", String::as_str),
                    u.get("SubState").map_or("?", String::as_str),
                    u.get("Result").map_or("?", String::as_str),
                    u.get("NRestarts").map_or("?", String::as_str)
                )
            })
            .unwrap_or_default();
        state.starts_with("failed/")
    });
    if !failed {
        return Err(format!(
            "{unit} did not end failed within {:?}: {state}",
            crate::LIMIT
        ));
    }
    let note = format!("{unit} {state} in {:.0} s", start.elapsed().as_secs_f64());
    ok(
        target.in_volume(&["rm", "-f", &crash_file]),
        "remove the crash file",
    )?;
    let caused = Caused {
        origin: Instant::now(),
        broken: true,
        notes: vec![note, "timed from reset-failed + start".into()],
    };
    ok(target.systemctl(&["reset-failed"]), "reset-failed")?;
    start_genai(target)?;
    Ok(caused)
}

/// `systemctl start` of genai, which pulls in what it requires. --no-block: the start is part of
/// what is timed, and may itself fail.
fn start_genai(target: &Target) -> Result<(), String> {
    let genai = format!("compose@{}.service", target.stacks().genai());
    ok(
        target.systemctl(&["start", "--no-block", &genai]),
        "systemctl start",
    )
}

fn ok(out: std::process::Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", stderr_of(&out).trim()))
    }
}

/// Runs scripts/start-host-daemon.sh: the same start as provisioning's.
pub fn start_host_daemons(daemons: &[&str]) -> Result<(), String> {
    let out = run_with_timeout(
        Command::new(script("start-host-daemon.sh")).args(daemons),
        DAEMON_TIMEOUT,
    );
    ok(out, "start-host-daemon.sh")
}

/// Sends `signal` to the host's dockerd or journald and waits until it is gone.
fn kill_host_daemon(daemon: &str, signal: &str) -> Result<(), String> {
    let pid = match daemon {
        "dockerd" => fs::read_to_string("/var/run/docker.pid")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok()),
        _ => host_journald(),
    }
    .ok_or_else(|| format!("no host {daemon} running"))?;
    let out = run_with_timeout(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
        composectl_testkit::e2e::CMD_TIMEOUT,
    );
    ok(out, "kill")?;
    let gone = composectl_testkit::e2e::wait_until(DAEMON_TIMEOUT, || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    if gone {
        Ok(())
    } else {
        Err(format!(
            "{daemon} ({pid}) still runs {DAEMON_TIMEOUT:?} after SIG{signal}"
        ))
    }
}

/// The host's journald: `systemd-journal` in this PID namespace (the guest's runs in its own,
/// and its processes are visible here too).
fn host_journald() -> Option<u32> {
    let own_ns = fs::read_link("/proc/self/ns/pid").ok()?;
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "systemd-journal")
                && fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == own_ns)
        })
}

/// After a journald restart: does a line the container prints now still reach the journal?
pub fn logs_flow(target: &Target) -> bool {
    let genai = target.stacks().genai();
    let marker = format!("after-the-fault-{}", std::process::id());
    let printed = target.docker(&[
        "exec",
        &format!("{genai}-app-1"),
        "sh",
        "-c",
        &format!("echo {marker} >/proc/1/fd/1"),
    ]);
    if !printed.status.success() {
        return false;
    }
    let unit = format!("compose@{genai}.service");
    composectl_testkit::e2e::wait_until(Duration::from_secs(10), || {
        target.journal(&unit).iter().any(|l| l.contains(&marker))
    })
}
