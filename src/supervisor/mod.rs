//! `composectl run STACK`: the main process of `compose@STACK.service` (Type=notify).
//!
//! It waits for the engine and for the stacks it requires, makes sure the stack's networks match
//! networks.toml, runs `compose up -d`, and watches the engine's event stream: READY=1 once every
//! service's containers run (and are healthy where they have a healthcheck), STATUS= kept
//! current, container output forwarded to the journal, and a container that dies or stays
//! unhealthy ends the process with an error so systemd's Restart=on-failure restarts the stack.
//! SIGTERM brings the project down, unless the engine is gone (then there is nothing to bring
//! down, and waiting for it would hold the stop for minutes).

mod health;
mod logs;
mod requirements;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use crate::compose::Compose;
use crate::engine::{self, Engine};
use crate::mode::Mode;
use crate::model::{Root, Stack};
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
    last_status: String,
}

impl Notifier {
    fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            last_status: String::new(),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if self.enabled {
            let _ = sd_notify::notify(states);
        }
    }

    fn status(&mut self, text: &str) {
        if text != self.last_status {
            tracing::info!("{text}");
            self.send(&[sd_notify::NotifyState::Status(text)]);
            self.last_status = text.to_string();
        }
    }

    /// Says why the stack cannot go on; the error makes systemd restart it.
    fn fail(&mut self, stack: &str, reason: &str) -> anyhow::Error {
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
    let mut notifier = Notifier::new();
    let mut stop = StopSignals::new()?;
    let engine = tokio::select! {
        engine = Engine::wait(stack.start_timeout, |text| notifier.status(text)) => {
            engine.map_err(|e| notifier.fail(&stack.name, &format!("{e:#}")))?
        }
        () = stop.recv() => return Ok(Ending::Stopped),
    };
    Supervisor {
        root,
        stack,
        engine: Arc::new(engine),
        compose: Compose::new(root, stack),
        requirements: Requirements::of(stack, mode),
        notifier,
        stop,
    }
    .supervise()
    .await
}

struct Supervisor<'a> {
    root: &'a Root,
    stack: &'a Stack,
    engine: Arc<Engine>,
    compose: Compose<'a>,
    requirements: Requirements,
    notifier: Notifier,
    stop: StopSignals,
}

impl Supervisor<'_> {
    async fn supervise(mut self) -> Result<Ending> {
        let started = unix_now();
        tokio::select! {
            result = self.requirements.wait_until_ready(|text| self.notifier.status(text)) => {
                if let Err(e) = result {
                    return Err(self.give_up(e.to_string(), false).await);
                }
            }
            () = self.stop.recv() => return Ok(Ending::Stopped),
        }
        // Removals of required stacks count from here: earlier ones were waited out above.
        let mut removals = self
            .requirements
            .removals(&self.engine, i64::from(unix_now()));

        self.notifier.status("checking networks");
        let networks: Vec<_> = self
            .stack
            .external_networks()
            .filter_map(|name| self.root.networks.get(name))
            .collect();
        let checks = match self
            .engine
            .ensure_networks(&networks, engine::Scope::Local)
            .await
        {
            Ok(checks) => checks,
            Err(e) => return Err(self.give_up(format!("{e:#}"), false).await),
        };
        if let Err(e) = engine::drift_error(&checks) {
            return Err(self.give_up(e.to_string(), false).await);
        }

        // Replayed from our start: no event of this run can slip by, whenever the stream connects.
        let mut events = self
            .engine
            .events(&self.stack.name, i64::from(started), &EVENTS);
        self.notifier.status("starting containers (compose up)");
        tokio::select! {
            result = self.compose.up() => {
                if let Err(e) = result {
                    // What a failed `up` created (containers left in Created) goes too.
                    return Err(self.give_up(format!("{e:#}"), true).await);
                }
            }
            () = self.stop.recv() => return self.shut_down().await,
        }

        let mut logs = LogForwarder::new(&self.stack.name, started);
        let watchdog = sd_notify::watchdog_enabled()
            .map(|usec| usec / 2)
            .filter(|half| !half.is_zero());
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let grace = self.root.settings.failure_grace;
        let mut trouble = Trouble::default();
        let mut ready = false;
        loop {
            let containers = match self.engine.containers(Some(&self.stack.name)).await {
                Ok(containers) => containers,
                Err(e) => return Err(self.give_up(format!("{e:#}"), true).await),
            };
            logs.follow(&self.engine, &containers);
            trouble.forget_recovered(&containers);
            match health::readiness(self.stack, &containers) {
                Readiness::Ready(summary) => {
                    self.notifier.status(&summary);
                    if !ready {
                        self.notifier.send(&[sd_notify::NotifyState::Ready]);
                        tracing::info!("ready: {summary}");
                        ready = true;
                    }
                }
                Readiness::Waiting(text) => self.notifier.status(&text),
            }
            let failure = tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => match trouble.judge(&self.engine, &event, grace).await {
                        Ok(failure) => failure,
                        Err(e) => Some(format!("{e:#}")),
                    },
                    Some(Err(e)) => Some(format!("{e:#}")),
                    None => Some("the engine closed its event stream".to_string()),
                },
                () = sleep_until(trouble.next_deadline()) => {
                    match self.engine.containers(Some(&self.stack.name)).await {
                        Ok(containers) => trouble.expired(&containers, grace),
                        Err(e) => Some(format!("{e:#}")),
                    }
                },
                Some(stack) = removals.next() => {
                    match self.requirements.removal(&stack).await {
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
                _ = watchdog_tick.tick() => {
                    if watchdog.is_some() {
                        self.notifier.send(&[sd_notify::NotifyState::Watchdog]);
                    }
                    None
                },
                () = self.stop.recv() => return self.shut_down().await,
            };
            if let Some(reason) = failure {
                return Err(self.give_up(reason, true).await);
            }
        }
    }

    /// How long `compose down` may take: within the stop timeout, whatever the engine does.
    fn down_limit(&self) -> Duration {
        self.root
            .settings
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
        self.compose.down(self.down_limit()).await
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
