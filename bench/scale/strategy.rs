//! The ways of starting the same stacks that the benchmark compares, each started, watched and
//! torn down the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::engine::{Engine, now_nanos};
use crate::measure::seconds;
use crate::topology::Topology;
use composectl_testkit::e2e::{
    POLL, UserManager, find_in_path, run_with_timeout, stderr_of, wait_until,
};

/// How long a start, a teardown or one command may take before the run counts as failed.
pub const LIMIT: Duration = Duration::from_secs(300);
/// How long a unit gets to leave `active` after one of its containers was killed.
pub const DETECTION_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Starts each stack the moment every stack it requires is healthy, polling the engine
    /// every 20 ms: what no orchestrator can beat by more than its polling.
    Ideal,
    /// `composectl start` of the last layer, its units enabled beforehand: `composectl run` as
    /// Type=notify units.
    Composectl,
    /// Type=oneshot units running `docker compose up -d --wait`, with Requires=/After=.
    Oneshot,
    /// Type=simple units running `docker compose up` in the foreground, with Requires=/After=.
    Foreground,
    /// `docker compose up -d` of every stack at once: no ordering at all.
    Naive,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Ideal,
        Strategy::Composectl,
        Strategy::Oneshot,
        Strategy::Foreground,
        Strategy::Naive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ideal => "ideal",
            Strategy::Composectl => "composectl",
            Strategy::Oneshot => "oneshot",
            Strategy::Foreground => "foreground",
            Strategy::Naive => "naive",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Strategy::Ideal => "ideal (starts at healthy, 20 ms polling)",
            Strategy::Composectl => "composectl (`start`, units enabled)",
            Strategy::Oneshot => "systemd oneshot `up -d --wait`",
            Strategy::Foreground => "systemd simple, foreground `compose up`",
            Strategy::Naive => "naive `up -d` all at once",
        }
    }

    /// The unit that runs `stack`, for the strategies systemd runs.
    pub fn unit(self, stack: &str) -> Option<String> {
        match self {
            Strategy::Composectl => Some(format!("compose@{stack}.service")),
            Strategy::Oneshot => Some(format!("{stack}-oneshot.service")),
            Strategy::Foreground => Some(format!("{stack}-fg.service")),
            Strategy::Ideal | Strategy::Naive => None,
        }
    }

    /// The units of every stack, none for the strategies without systemd.
    pub fn units(self, topology: &Topology) -> Vec<String> {
        topology.all().filter_map(|s| self.unit(s)).collect()
    }
}

/// What every run works with.
pub struct Bench {
    pub topology: Topology,
    pub manager: UserManager,
    pub engine: Engine,
    docker: PathBuf,
    /// composectl as packaged: this build's binary beside the supervisor its units run.
    composectl: PathBuf,
}

/// composectl and composectl-supervisor as the packages ship them, each built with its own profile
/// (composectl for speed, the supervisor for size: see Cargo.toml), side by side in the target
/// directory's `bench-bin/`, since composectl writes units that run the supervisor beside it.
/// `cargo bench` built composectl; the supervisor's profile is built here.
fn as_packaged() -> Result<PathBuf, String> {
    let composectl = PathBuf::from(composectl_testkit::bin());
    let target = composectl
        .parent()
        .and_then(|dir| dir.parent())
        .ok_or("composectl is not in a target directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--profile", "supervisor"])
        .args(["--bin", "composectl-supervisor", "--target-dir"])
        .arg(target)
        .status()
        .map_err(|e| format!("cargo build of composectl-supervisor: {e}"))?;
    if !built.success() {
        return Err(format!("cargo build of composectl-supervisor: {built}"));
    }
    let staged = target.join("bench-bin");
    fs::create_dir_all(&staged).map_err(|e| format!("{}: {e}", staged.display()))?;
    for (from, name) in [
        (composectl.clone(), "composectl"),
        (
            target.join("supervisor/composectl-supervisor"),
            "composectl-supervisor",
        ),
    ] {
        // Replaced, not written over: a supervisor of an earlier run may still be running it.
        let to = staged.join(name);
        let _ = fs::remove_file(&to);
        fs::copy(&from, &to).map_err(|e| format!("{} → {}: {e}", from.display(), to.display()))?;
    }
    Ok(staged.join("composectl"))
}

/// When a strategy was started and when its command returned (unix nanoseconds).
pub struct Started {
    pub t0: i64,
    pub returned: i64,
}

/// What happened to a stack's unit when one of its containers was killed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detection {
    /// No unit: nothing is there to notice.
    NoUnit,
    /// Still active after [`DETECTION_LIMIT`].
    Never,
    /// Seconds from the engine's `die` to the unit leaving `active`.
    After(f64),
}

impl Bench {
    /// The stacks, a private user manager, and the unit files of the oneshot and foreground
    /// strategies in it.
    pub fn new(topology: Topology) -> Bench {
        let bench = Bench {
            topology,
            manager: UserManager::start(),
            engine: Engine::connect(),
            docker: find_in_path("docker").expect("the docker CLI"),
            composectl: as_packaged().unwrap_or_else(|e| panic!("{e}")),
        };
        // composectl creates the networks a stack joins as it starts it; the others need them.
        let out = bench.composectl(&["networks"]);
        assert!(out.status.success(), "networks: {}", stderr_of(&out));
        for strategy in [Strategy::Oneshot, Strategy::Foreground] {
            bench.write_units(strategy);
        }
        let out = bench.manager.systemctl(&["daemon-reload"]);
        assert!(out.status.success(), "daemon-reload: {}", stderr_of(&out));
        bench
    }

    fn write_units(&self, strategy: Strategy) {
        let (kind, up) = match strategy {
            Strategy::Oneshot => ("Type=oneshot\nRemainAfterExit=yes", "up --detach --wait"),
            _ => ("Type=simple", "up"),
        };
        for stack in self.topology.all() {
            let mut text = format!("[Unit]\nDescription=scale benchmark: {stack}\n");
            for required in &self.topology.requires[stack] {
                let unit = strategy.unit(required).expect("a unit");
                text.push_str(&format!("Requires={unit}\nAfter={unit}\n"));
            }
            text.push_str(&format!(
                "[Service]\n{kind}\nTimeoutSec={}\nExecStart={compose} {up}\nExecStop={compose} down --timeout 1\n",
                LIMIT.as_secs(),
                compose = self.compose_line(stack),
            ));
            let unit = strategy.unit(stack).expect("a unit");
            fs::write(self.manager.unit_dir().join(unit), text).expect("write a unit file");
        }
    }

    /// `docker compose` for one stack, as composectl runs it (project = stack).
    fn compose_line(&self, stack: &str) -> String {
        format!(
            "{} compose --project-name {stack} --file {}",
            self.docker.display(),
            self.topology.compose_file(stack).display()
        )
    }

    fn compose(&self, stack: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.docker);
        command
            .args(["compose", "--project-name", stack, "--file"])
            .arg(self.topology.compose_file(stack))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// `composectl --user --root ROOT ARGS`, as packaged.
    fn composectl(&self, args: &[&str]) -> Output {
        self.manager
            .composectl_at(&self.composectl, self.topology.stacks.root(), args)
    }

    /// Starts every stack the strategy's way; returns once its command has (for the ideal
    /// orchestrator: once every stack is healthy).
    pub fn start(&self, strategy: Strategy) -> Result<Started, String> {
        let top: Vec<&str> = self.topology.top().iter().map(String::as_str).collect();
        if strategy == Strategy::Composectl {
            // Installed and enabled before the clock starts, as the other systemd strategies'
            // units are: what is timed is a start, as at boot.
            let mut args = vec!["-q", "enable"];
            args.extend(&top);
            succeeded("composectl enable", &self.composectl(&args))?;
        }
        let t0 = now_nanos();
        let units: Vec<String> = top.iter().filter_map(|s| strategy.unit(s)).collect();
        match strategy {
            Strategy::Ideal => return self.ideal(),
            Strategy::Composectl => {
                let mut args = vec!["-q", "start"];
                args.extend(&top);
                succeeded("composectl start", &self.composectl(&args))?;
            }
            Strategy::Oneshot | Strategy::Foreground => {
                let mut args = vec!["start"];
                args.extend(units.iter().map(String::as_str));
                succeeded("systemctl start", &self.manager.systemctl(&args))?;
            }
            Strategy::Naive => {
                let children: Vec<(String, Child)> = self
                    .topology
                    .all()
                    .map(|s| Ok((s.clone(), self.spawn_up(s)?)))
                    .collect::<Result<_, String>>()?;
                for (stack, child) in children {
                    exited(&stack, child)?;
                }
            }
        }
        Ok(Started {
            t0,
            returned: now_nanos(),
        })
    }

    fn spawn_up(&self, stack: &str) -> Result<Child, String> {
        self.compose(stack, &["up", "--detach"])
            .spawn()
            .map_err(|e| format!("docker compose up: {e}"))
    }

    /// The ideal orchestrator: lists the containers every 20 ms and runs `compose up -d` of each
    /// stack whose required stacks are all healthy, until every stack is.
    fn ideal(&self) -> Result<Started, String> {
        let topology = &self.topology;
        let prefix = topology.prefix();
        let t0 = now_nanos();
        let deadline = Instant::now() + LIMIT;
        let mut started: BTreeMap<&str, Child> = BTreeMap::new();
        loop {
            let healthy: BTreeSet<String> = self
                .engine
                .containers(&prefix)
                .into_iter()
                .filter(|c| c.healthy)
                .map(|c| c.project)
                .collect();
            if topology.all().all(|s| healthy.contains(s)) {
                break;
            }
            for stack in topology.all() {
                if !started.contains_key(stack.as_str())
                    && topology.requires[stack].iter().all(|r| healthy.contains(r))
                {
                    started.insert(stack.as_str(), self.spawn_up(stack)?);
                }
            }
            let failed = started.iter_mut().find_map(|(stack, child)| {
                let status = child.try_wait().ok()??;
                (!status.success()).then_some(*stack)
            });
            if let Some(stack) = failed {
                // Its error, with what compose said.
                exited(stack, started.remove(stack).expect("started"))?;
            }
            if Instant::now() >= deadline {
                return Err(format!("not all healthy after {} s", LIMIT.as_secs()));
            }
            sleep(POLL);
        }
        let returned = now_nanos();
        for (stack, child) in started {
            exited(stack, child)?;
        }
        Ok(Started { t0, returned })
    }

    /// Stops what the strategy started and removes every container left, then lets the engine
    /// settle (network endpoints, exec clean-up) before the next run.
    pub fn teardown(&self, strategy: Strategy) -> Result<(), String> {
        let all: Vec<&str> = self.topology.all().map(String::as_str).collect();
        let stopped = match strategy {
            Strategy::Composectl => {
                let mut args = vec!["-q", "disable", "--now"];
                args.extend(&all);
                succeeded("composectl disable --now", &self.composectl(&args))
            }
            Strategy::Oneshot | Strategy::Foreground => {
                let mut args = vec!["stop".to_string()];
                args.extend(strategy.units(&self.topology));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                succeeded("systemctl stop", &self.manager.systemctl(&args))
            }
            Strategy::Ideal | Strategy::Naive => Ok(()),
        };
        let prefix = self.topology.prefix();
        self.engine.remove_all(&prefix);
        if !wait_until(LIMIT, || self.engine.containers(&prefix).is_empty()) {
            return Err("containers left after the teardown".into());
        }
        sleep(Duration::from_secs(1));
        stopped
    }

    /// Kills the container of a stack of the last layer (nothing requires it) and measures how
    /// long its unit takes to leave `active`, from the engine's `die`.
    pub fn detection(
        &self,
        strategy: Strategy,
        recorder: &crate::engine::Recorder,
    ) -> Result<Detection, String> {
        let victim = &self.topology.top()[0];
        let Some(unit) = strategy.unit(victim) else {
            return Ok(Detection::NoUnit);
        };
        let container = self
            .engine
            .containers(&self.topology.prefix())
            .into_iter()
            .find(|c| &c.project == victim)
            .ok_or_else(|| format!("{victim} has no container"))?;
        self.engine.kill(&container.id);
        // systemctl as fast as it runs (a few ms a call): the resolution of this measure.
        let left = wait_until(DETECTION_LIMIT, || {
            self.manager.property(&unit, "ActiveState") != "active"
        });
        let observed = now_nanos();
        let mut died = None;
        recorder.wait(LIMIT, |events| {
            died = events
                .iter()
                .find(|e| e.id == container.id && e.action == "die")
                .map(|e| e.time_nano);
            died.is_some()
        });
        let died = died.ok_or("the engine reported no death")?;
        Ok(if left {
            Detection::After(seconds(observed - died))
        } else {
            Detection::Never
        })
    }

    /// How long the strategy's way of seeing every stack's state takes: `composectl status`
    /// (units, containers and health); systemd's unit list; compose's project list.
    pub fn status_seconds(&self, strategy: Strategy, times: usize) -> Result<f64, String> {
        let pattern = format!("{}*", self.topology.prefix());
        let mut command = match strategy {
            Strategy::Composectl => {
                let mut command = self.manager.command(&self.composectl);
                command.args(["--user", "status"]);
                command
            }
            Strategy::Oneshot | Strategy::Foreground => {
                let mut command = self.manager.command("systemctl");
                command.args(["--user", "list-units", "--all", &pattern]);
                command
            }
            Strategy::Ideal | Strategy::Naive => {
                let mut command = Command::new(&self.docker);
                command.args(["compose", "ls", "--all", "--filter"]);
                command.arg(format!("name={}", self.topology.prefix()));
                command
            }
        };
        succeeded("status", &run_with_timeout(&mut command, LIMIT))?;
        command.stdout(Stdio::null()).stderr(Stdio::null());
        Ok(crate::measure::median_seconds(times, || {
            let _ = command.status();
        }))
    }
}

fn succeeded(what: &str, out: &Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}: {}",
            out.status,
            composectl_testkit::e2e::stderr_of(out).trim()
        ))
    }
}

fn exited(stack: &str, child: Child) -> Result<(), String> {
    let out = child
        .wait_with_output()
        .map_err(|e| format!("docker compose of {stack}: {e}"))?;
    succeeded(&format!("docker compose of {stack}"), &out)
}
