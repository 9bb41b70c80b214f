//! The stacks a stack requires, as its supervisor handles them.
//!
//! A stack's unit only `Wants=` and is `After=` the stacks it requires: with systemd 252's
//! `Requires=`, a required stack whose first start attempt fails fails its dependents' start
//! jobs for good (they never start, even once it is restarted and ready), and every restart of
//! the required unit restarts its dependents, even when its containers never stopped (a
//! supervisor killed and restarted). So the rest of "requires" is done here:
//! - before `compose up`, wait until every required stack is active (ready);
//! - when a required stack's containers are removed: if its unit is being stopped, stop with it;
//!   if it is reloading (a reload or an update recreates what changed while the unit stays
//!   active, each service away for seconds, as when the engine restarts one of its containers)
//!   keep running; otherwise (restarted, failed, recreated) restart, so this stack comes back
//!   after it, unless the stack said `restart: false` for that dependency (then keep running).

use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use futures_util::{Stream, StreamExt, stream};

use crate::engine::Engine;
use crate::mode::Mode;
use crate::model::Stack;
use crate::runtime;
use crate::systemd::Systemd;
use crate::units;

/// How often the state of required units is asked while waiting for them.
const POLL: Duration = Duration::from_millis(500);

/// What a required stack's removed containers mean for this stack.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// The required stack is being stopped: stop with it.
    Stop(String),
    /// It is restarted, failed or recreated: restart after it.
    Restart(String),
    /// It is reloading, or restarted and this stack said `restart: false` for it.
    KeepRunning(String),
}

pub struct Requirements {
    mode: Mode,
    /// (stack, unit) of every required stack.
    required: Vec<(String, String)>,
    /// The required stacks whose recreation does not restart this one.
    keep_running_with: Vec<String>,
}

/// (required stack, when the engine removed one of its containers, unix nanoseconds).
pub type RemovedStream = Pin<Box<dyn Stream<Item = (String, i64)> + Send>>;

impl Requirements {
    pub fn of(stack: &Stack, mode: Mode) -> Requirements {
        Requirements {
            mode,
            required: stack
                .requires
                .iter()
                .map(|name| (name.clone(), units::stack_unit(name)))
                .collect(),
            keep_running_with: stack.keeps_running_with.iter().cloned().collect(),
        }
    }

    /// Returns once every required stack is active; `status` hears what is waited for. Fails at
    /// once when one was stopped (nothing will start it); a failed one is waited for, since an
    /// administrator may start it again (systemd's TimeoutStartSec bounds the wait).
    pub async fn wait_until_ready(&self, mut status: impl FnMut(&str)) -> Result<()> {
        if self.required.is_empty() {
            return Ok(());
        }
        let systemd = Systemd::connect(self.mode).await?;
        let units: Vec<String> = self.required.iter().map(|(_, u)| u.clone()).collect();
        loop {
            let states = systemd.unit_states(&units).await?;
            let mut waiting = Vec::new();
            for ((stack, _), state) in self.required.iter().zip(&states) {
                match (state.active_state.as_str(), &state.job) {
                    ("active", _) => {}
                    ("inactive", None) => bail!(
                        "required stack {stack} is stopped and nothing starts it: start it first (composectl start {stack})"
                    ),
                    (active, _) => waiting.push(format!("{stack} ({active}/{})", state.sub_state)),
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            status(&format!(
                "waiting for required stacks: {}",
                waiting.join(", ")
            ));
            tokio::time::sleep(POLL).await;
        }
    }

    /// The required stacks whose containers are removed from `since` on, one item per
    /// removal. Never ends when there are none.
    pub fn removals(&self, engine: &Engine, since: SystemTime) -> RemovedStream {
        if self.required.is_empty() {
            return stream::pending().boxed();
        }
        let stacks: Vec<&str> = self
            .required
            .iter()
            .map(|(stack, _)| stack.as_str())
            .collect();
        let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
        // The engine filters by whole seconds: a removal earlier in the same second (a required
        // stack's stop a moment before this one started, as `restore --stop` does) is not one.
        let since_ns = i64::try_from(since.as_nanos()).unwrap_or(i64::MAX);
        engine
            .events(
                &stacks,
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                &["destroy"],
            )
            .filter_map(move |event| async move {
                event
                    .ok()
                    .filter(|e| e.time_nano >= since_ns)
                    .map(|e| (e.project, e.time_nano))
            })
            .boxed()
    }

    /// Why `stack`'s container was removed at `time`. Its unit tells, even when asked a little
    /// late: a stop job, or stopped with no job left, means it is being stopped. Otherwise a
    /// removal its supervisor's last reload or update covers (by the engine's timestamp, however
    /// late this is asked), or one while its unit is `reloading`, was a reload; a restart job
    /// (a `start` job once the restart's stop part is done), a failure or a recreation otherwise.
    pub async fn removal(&self, stack: &str, time: i64) -> Removal {
        let unit = units::stack_unit(stack);
        let state = match Systemd::connect(self.mode).await {
            Ok(systemd) => systemd
                .unit_states(std::slice::from_ref(&unit))
                .await
                .map(|states| states.into_iter().next()),
            Err(e) => Err(e),
        };
        let (stopping, reloading) = match state {
            Ok(Some(state)) => (
                state.job.as_deref() == Some("stop")
                    || (state.active_state == "inactive" && state.job.is_none()),
                state.active_state == "reloading",
            ),
            Ok(None) => (false, false),
            Err(e) => {
                tracing::warn!("cannot ask systemd about {unit}: {e:#}");
                (false, false)
            }
        };
        if stopping {
            Removal::Stop(format!("required stack {stack} is being stopped"))
        } else if reloading || runtime::Change::covers(self.mode, stack, time) {
            Removal::KeepRunning(format!(
                "required stack {stack} is reloading or updating: it recreates what changed and stays active"
            ))
        } else if self.keep_running_with.iter().any(|s| s == stack) {
            Removal::KeepRunning(format!(
                "required stack {stack}'s containers were removed; it says restart: false for it"
            ))
        } else {
            Removal::Restart(format!(
                "required stack {stack}'s containers were removed (restarted or failed)"
            ))
        }
    }
}
