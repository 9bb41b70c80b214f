//! `composectl run STACK`: the main process of `compose@STACK.service` (Type=notify).
//!
//! It waits for the engine and for the stacks it requires, makes sure the stack's networks match
//! networks.toml, runs `compose up -d`, and watches the engine's event stream: READY=1 once every
//! service's containers run (and are healthy where they have a healthcheck), STATUS= kept
//! current, container output forwarded to the journal, and a container that dies or stays
//! unhealthy ends the process with an error so systemd's Restart=on-failure restarts the stack.
//! SIGTERM brings the project down, unless the engine is gone (then there is nothing to bring
//! down, and waiting for it would hold the stop for minutes). Once ready, it answers reloads and
//! updates on its control socket (`change.rs`).

mod change;
mod health;
mod logs;
mod requirements;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use crate::compose_cli::Compose;
use crate::engine::{self, Engine, Placement};
use crate::mode::Mode;
use crate::model::{Root, Stack};
use crate::runtime;
use crate::state::StackState;
use change::{Began, Change, Next};
use health::{Readiness, Trouble};
use logs::LogForwarder;
use requirements::{Removal, Requirements};

/// Kept free of `compose down` within the stop timeout, so composectl exits before systemd's
/// SIGKILL.
const STOP_MARGIN: Duration = Duration::from_secs(5);
/// The container events readiness and failure depend on; health checks' own exec events are not.
const EVENTS: [&str; 9] = [
    "create",
    "start",
    "restart",
    "die",
    "oom",
    "destroy",
    "pause",
    "unpause",
    "health_status",
];

/// How the supervisor ended without a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Asked to stop (SIGTERM), or stopped with a required stack.
    Stopped,
    /// A required stack's containers were recreated: systemd should start this stack again
    /// (exit status 75, which the unit restarts on without counting it a failure).
    Restart(String),
}

/// sd_notify messages; silent when not started by systemd.
struct Notifier {
    enabled: bool,
    /// A cell: the waits for the engine and for the required stacks run together, both saying
    /// what they wait for.
    last_status: RefCell<String>,
}

impl Notifier {
    fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            last_status: RefCell::default(),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if self.enabled {
            let _ = sd_notify::notify(states);
        }
    }

    fn status(&self, text: &str) {
        let mut last = self.last_status.borrow_mut();
        if text != *last {
            tracing::info!("{text}");
            self.send(&[sd_notify::NotifyState::Status(text)]);
            *last = text.to_string();
        }
    }

    /// Says why the stack cannot go on; the error makes systemd restart it.
    fn fail(&self, stack: &str, reason: &str) -> anyhow::Error {
        self.send(&[sd_notify::NotifyState::Status(&format!("failed: {reason}"))]);
        tracing::error!("{reason}");
        anyhow!("stack {stack}: {reason}")
    }
}

/// SIGTERM (systemctl stop) or SIGINT (Ctrl-C by hand).
struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
    }
}

pub(crate) fn unix_now() -> i32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
        .unwrap_or(0)
}

/// Runs the stack until it is stopped (Ok) or fails for good (Err).
pub async fn run(root: &Root, stack: &Stack, mode: Mode) -> Result<Ending> {
    let started = unix_now();
    let notifier = Notifier::new();
    let mut stop = StopSignals::new()?;
    let requirements = Requirements::of(stack, mode);
    // Together: a layer's start waits as long as the longer of the two, not their sum.
    let (engine, required) = tokio::select! {
        waited = async {
            tokio::join!(
                Engine::wait(stack.start_timeout, |text| notifier.status(text)),
                requirements.wait_until_ready(|text| notifier.status(text)),
            )
        } => waited,
        () = stop.recv() => return Ok(Ending::Stopped),
    };
    let engine = engine.map_err(|e| notifier.fail(&stack.name, &format!("{e:#}")))?;
    let mut supervisor = Supervisor {
        mode,
        root: root.clone(),
        stack: stack.clone(),
        state: StackState::new(mode, &stack.name),
        engine: Arc::new(engine),
        requirements,
        notifier,
        stop,
    };
    if let Err(e) = required {
        return Err(supervisor.give_up(e.to_string(), false).await);
    }
    supervisor.supervise(started).await
}

struct Supervisor {
    mode: Mode,
    /// The root and the stack as last applied: a reload reads them again.
    root: Root,
    stack: Stack,
    state: StackState,
    engine: Arc<Engine>,
    requirements: Requirements,
    notifier: Notifier,
    stop: StopSignals,
}

/// Why the stack is not where it should be.
enum Failure {
    /// A container died or stays unhealthy, or the engine failed: the stack cannot go on.
    Trouble(String),
    /// A reload or update did not get the stack ready in time, or its `compose up` failed.
    NotReady(String),
}

/// The compose command for the stack as applied now, with its pinned images and its placement
/// in the slice. A function of the
/// fields rather than a method, so it can run while `stop` is borrowed too.
fn compose<'a>(root: &'a Root, stack: &'a Stack, state: &StackState, mode: Mode) -> Compose<'a> {
    Compose::new(root, stack)
        .pinned(state.pinned())
        .placed(runtime::placement(mode, &stack.name))
}

impl Supervisor {
    /// Runs the stack whose supervisor started at `started` (unix seconds), its engine and its
    /// required stacks ready.
    async fn supervise(mut self, started: i32) -> Result<Ending> {
        // Removals of required stacks count from here: earlier ones were waited out.
        let mut removals = self.requirements.removals(&self.engine, SystemTime::now());

        let (root, stack) = (self.root.clone(), self.stack.clone());
        // Containers that are not running are from a run that ended uncleanly (the engine or
        // the supervisor killed): start fresh ones, as after a clean `compose down`. Starting
        // them again can inherit the runtime state a killed engine left (a task it could not
        // delete, health checks that can no longer exec). Running ones are adopted. Removed
        // while the networks are checked: neither depends on the other.
        let engine = Arc::clone(&self.engine);
        let (checked, removed) = tokio::join!(
            self.check(&root, &stack),
            engine.remove_stopped(&stack.name)
        );
        match removed {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} stopped containers of an earlier run"),
            Err(e) => tracing::warn!("{e:#}"),
        }
        if let Err(reason) = checked {
            return Err(self.give_up(reason, false).await);
        }
        match self.state.roll_back() {
            Ok(true) => tracing::warn!(
                "an update of {0} did not finish; it runs the images the update replaced (pinned): run composectl update {0} again",
                self.stack.name
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!("{e:#}"),
        }

        self.place().await;

        // Replayed from our start: no event of this run can slip by, whenever the stream connects.
        let mut events =
            self.engine
                .events(&[self.stack.name.as_str()], i64::from(started), &EVENTS);
        self.notifier.status("starting containers (compose up)");
        match up(
            compose(&self.root, &self.stack, &self.state, self.mode),
            &mut self.stop,
        )
        .await
        {
            None => return self.shut_down().await,
            // What a failed `up` created (containers left in Created) goes too.
            Some(Err(e)) => return Err(self.give_up(format!("{e:#}"), true).await),
            Some(Ok(())) => {}
        }
        self.save_applied();
        let mut control = match runtime::Listener::bind(self.mode, &self.stack.name) {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!("{e:#}; reload and update are not available");
                None
            }
        };

        let mut logs = LogForwarder::new(&self.stack.name, started, self.stack.log_rate_limit);
        let watchdog = sd_notify::watchdog_enabled()
            .map(|usec| usec / 2)
            .filter(|half| !half.is_zero());
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let mut trouble = Trouble::default();
        let mut ready = false;
        let mut change: Option<Change> = None;
        loop {
            // A reload may have changed it.
            let grace = self.root.settings.failure_grace;
            let listed = or_stop(
                self.engine.containers(Some(&self.stack.name)),
                &mut self.stop,
            );
            let containers = match listed.await {
                None => return self.shut_down().await,
                Some(Ok(containers)) => containers,
                Some(Err(e)) => return Err(self.give_up(format!("{e:#}"), true).await),
            };
            logs.follow(&self.engine, &containers);
            trouble.forget_recovered(&containers);
            match health::readiness(&self.stack, &containers) {
                Readiness::Ready(summary) => {
                    if let Some(done) = change.take() {
                        self.finish(done, &containers).await;
                    }
                    self.notifier.status(&summary);
                    if !ready {
                        self.notifier.send(&[sd_notify::NotifyState::Ready]);
                        tracing::info!("ready: {summary}");
                        ready = true;
                    }
                }
                Readiness::Waiting(text) => match &mut change {
                    Some(change) => {
                        let text = format!("{}: {text}", change.doing());
                        self.notifier.status(&text);
                        change.progress(&text).await;
                    }
                    None => self.notifier.status(&text),
                },
            }
            let failure = tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => match or_stop(trouble.judge(&self.engine, &event, grace), &mut self.stop).await {
                        None => return self.shut_down().await,
                        Some(Ok(failure)) => failure.map(Failure::Trouble),
                        Some(Err(e)) => Some(Failure::Trouble(format!("{e:#}"))),
                    },
                    Some(Err(e)) => Some(Failure::Trouble(format!("{e:#}"))),
                    None => Some(Failure::Trouble("the engine closed its event stream".to_string())),
                },
                () = sleep_until(trouble.next_deadline()) => {
                    match or_stop(self.engine.containers(Some(&self.stack.name)), &mut self.stop).await {
                        None => return self.shut_down().await,
                        Some(Ok(containers)) => trouble.expired(&containers, grace).map(Failure::Trouble),
                        Some(Err(e)) => Some(Failure::Trouble(format!("{e:#}"))),
                    }
                },
                () = sleep_until(change.as_ref().map(|c| c.deadline)) => {
                    change.as_ref().map(|c| Failure::NotReady(c.late()))
                },
                Some((stack, time)) = removals.next() => {
                    match self.requirements.removal(&stack, time).await {
                        Removal::Stop(reason) => {
                            tracing::info!("{reason}; stopping with it");
                            return self.shut_down().await;
                        }
                        Removal::Restart(reason) => {
                            tracing::info!("{reason}; restarting after it");
                            self.shut_down().await?;
                            return Ok(Ending::Restart(reason));
                        }
                        Removal::KeepRunning(reason) => {
                            tracing::info!("{reason}; keeping running");
                            None
                        }
                    }
                },
                (action, client) = accept(control.as_mut()), if ready => {
                    if change.is_some() {
                        client.done(&runtime::Outcome::failed("a reload or update of this stack is under way; try again once it has finished")).await;
                        None
                    } else {
                        match self.begin(action, client, &containers).await {
                            Began::Changing(began) => {
                                change = Some(began);
                                None
                            }
                            Began::UpFailed(began, reason) => {
                                change = Some(began);
                                Some(Failure::NotReady(reason))
                            }
                            Began::Refused => None,
                            Began::Stopped => return self.shut_down().await,
                        }
                    }
                },
                _ = watchdog_tick.tick() => {
                    if watchdog.is_some() {
                        self.notifier.send(&[sd_notify::NotifyState::Watchdog]);
                    }
                    None
                },
                () = self.stop.recv() => return self.shut_down().await,
            };
            match (failure, change.take()) {
                (None, still) => change = still,
                (Some(Failure::Trouble(reason)), None) => {
                    return Err(self.give_up(reason, true).await);
                }
                (Some(Failure::NotReady(_)), None) => {}
                (Some(failure), Some(failed)) => match self.change_failed(failed, failure).await {
                    Next::Continue(next) => {
                        if next.is_some() {
                            // What was in trouble was replaced by the rollback.
                            trouble = Trouble::default();
                        }
                        change = next;
                    }
                    Next::GiveUp(reason) => return Err(self.give_up(reason, true).await),
                    Next::Stopped => return self.shut_down().await,
                },
            }
        }
    }

    /// What must hold before the stack's containers are created: its secrets are set and its
    /// networks match networks.toml (missing ones are created).
    async fn check(&self, root: &Root, stack: &Stack) -> Result<(), String> {
        if !stack.missing_secrets.is_empty() {
            return Err(format!(
                "secrets {} are declared but no env file sets them: run composectl secrets {}",
                stack.missing_secrets.join(", "),
                stack.name
            ));
        }
        self.notifier.status("checking networks");
        let networks: Vec<_> = stack
            .external_networks()
            .filter_map(|name| root.networks.get(name))
            .collect();
        let checks = self
            .engine
            .ensure_networks(&networks, engine::Scope::Local)
            .await
            .map_err(|e| format!("{e:#}"))?;
        engine::drift_error(&checks).map_err(|e| e.to_string())
    }

    /// Puts the stack's containers into its slice where the engine can, by writing the override
    /// file every compose call of this run reads; says where they run otherwise. Never half: the
    /// override names every service, or there is none.
    async fn place(&self) {
        let path = runtime::placement_path(self.mode, &self.stack.name);
        let slice = crate::model::stack_slice(&self.stack.name);
        let placement = match self.engine.placement(self.mode).await {
            Ok(placement) => placement,
            Err(e) => Placement::Engine(format!("{e:#}")),
        };
        let written = match placement {
            Placement::Slice => crate::files::write_atomically(
                &path,
                &crate::compose_cli::placement_override(&self.stack),
                0o600,
            )
            .map(|()| tracing::info!("containers run in {slice}"))
            .map_err(|e| format!("{e:#}")),
            Placement::Engine(reason) => Err(reason),
        };
        if let Err(reason) = written {
            let _ = std::fs::remove_file(&path);
            if self.stack.resources.is_empty() {
                tracing::info!("containers run in the engine's cgroups, not in {slice}: {reason}");
            } else {
                tracing::warn!(
                    "containers run in the engine's cgroups, not in {slice}: the stack's resources limit only its supervisor: {reason}"
                );
            }
        }
    }

    /// Records the files as applied, for `composectl diff`.
    fn save_applied(&self) {
        if let Err(e) = runtime::Applied::read(&self.stack).save(self.mode, &self.stack.name) {
            tracing::warn!("{e:#}");
        }
    }

    /// How long `compose down` may take: within the stop timeout, whatever the engine does.
    fn down_limit(&self) -> Duration {
        self.stack
            .stop_timeout
            .saturating_sub(STOP_MARGIN)
            .max(STOP_MARGIN)
    }

    /// `compose down`, unless the engine is gone: its containers are gone or stopped with it,
    /// and a dead or socket-activated engine would hold the call until the timeout.
    async fn bring_down(&self) -> Result<()> {
        if !self.engine.answers(engine::PROBE).await {
            tracing::warn!(
                "the Docker engine does not answer on {}; nothing to bring down",
                self.engine.socket()
            );
            return Ok(());
        }
        Compose::new(&self.root, &self.stack)
            .down(self.down_limit())
            .await
    }

    /// SIGTERM, or stopping with a required stack: containers go, volumes stay.
    async fn shut_down(&mut self) -> Result<Ending> {
        self.notifier.send(&[sd_notify::NotifyState::Stopping]);
        self.notifier.status("stopping (compose down)");
        self.bring_down().await?;
        Ok(Ending::Stopped)
    }

    /// The stack cannot go on: say why, bring down what there is (when `down`), and return the
    /// error that makes systemd restart the stack.
    async fn give_up(&mut self, reason: String, down: bool) -> anyhow::Error {
        let error = self.notifier.fail(&self.stack.name, &reason);
        if down && let Err(e) = self.bring_down().await {
            tracing::warn!("{e:#}");
        }
        error
    }
}

/// What `work` returns, or None when SIGTERM comes first: a stop never waits for the engine
/// (a socket-activated engine that is going away answers no request until it times out).
async fn or_stop<T>(work: impl Future<Output = T>, stop: &mut StopSignals) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        () = stop.recv() => None,
    }
}

/// `compose up`, or None when SIGTERM comes first.
async fn up(compose: Compose<'_>, stop: &mut StopSignals) -> Option<Result<()>> {
    or_stop(compose.up(), stop).await
}

/// The next caller of the control socket; never, without one.
async fn accept(control: Option<&mut runtime::Listener>) -> (runtime::Action, runtime::Client) {
    match control {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sets up composectl's own logging for `run`: to the journal with the stack as a field when
/// journald listens, else to stderr.
pub fn init_logging(stack: &str) {
    use tracing_subscriber::prelude::*;
    let journald = tracing_journald::layer().ok().map(|layer| {
        layer
            .with_syslog_identifier("composectl".into())
            .with_field_prefix(Some("COMPOSECTL".into()))
            .with_custom_fields([("COMPOSECTL_STACK", stack), ("COMPOSE_PROJECT", stack)])
    });
    let stderr = journald
        .is_none()
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    // Only composectl's own messages: the HTTP and D-Bus crates are chatty at debug level.
    let filter =
        tracing_subscriber::filter::Targets::new().with_target("composectl", tracing::Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(journald)
        .with(stderr)
        .with(filter)
        .try_init();
}
