//! Reloads and updates of a running stack, asked for on its control socket (`runtime.rs`).
//!
//! Both read the root again and run `compose up` on the running project: compose recreates the
//! services whose configuration or image changed and leaves the other containers alone. While
//! that lasts the unit is `reloading` (RELOADING=1 until READY=1), which is how the supervisors
//! of the stacks requiring this one tell it from a restart and keep running (requirements.rs).
//! The change ends once the stack is ready again. An update that does not get there within the
//! start timeout, or whose containers fail, is rolled back to the images it replaced, pinned
//! (state.rs); a reload that fails says why, and its trouble is then the stack's own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::{Failure, Supervisor, compose, up};
use crate::engine::{Container, short_id};
use crate::model;
use crate::runtime::{self, Action, Client, ImageChange, Outcome};

/// Kept free of a reload's start timeout, so its caller hears why it failed.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// A reload or update under way.
pub struct Change {
    action: Action,
    client: Client,
    /// Per service, before the change: its containers and the image they run.
    before: BTreeMap<String, (BTreeSet<String>, String)>,
    /// When the stack must be ready again.
    pub deadline: Instant,
    timeout: Duration,
    /// Update: why its images were rolled back.
    rolled_back: Option<String>,
    /// What it waits for, as last said.
    waiting: String,
    /// When it began, for the stacks requiring this one.
    record: runtime::Change,
}

impl Change {
    /// What the supervisor is doing, for STATUS= and the caller.
    pub fn doing(&self) -> &'static str {
        match (self.action, &self.rolled_back) {
            (Action::Reload, _) => "reloading",
            (Action::Update, None) => "updating",
            (Action::Update, Some(_)) => "rolling back",
        }
    }

    /// Tells the caller what the stack waits for, when that changed.
    pub async fn progress(&mut self, text: &str) {
        if text != self.waiting {
            self.waiting = text.to_string();
            self.client.progress(text).await;
        }
    }

    /// Why the deadline passed.
    pub fn late(&self) -> String {
        let waiting = self
            .waiting
            .split_once(": ")
            .map_or(self.waiting.as_str(), |(_, what)| what);
        format!(
            "not ready within {}: {waiting}",
            crate::duration::format(self.timeout)
        )
    }
}

/// How a request began.
pub enum Began {
    /// `compose up` ran: now the stack must become ready.
    Changing(Change),
    /// `compose up` failed.
    UpFailed(Change, String),
    /// Nothing was changed (the root is invalid, a network drifted, ...); the caller was told.
    Refused,
    /// SIGTERM came meanwhile.
    Stopped,
}

/// What follows a failed change.
pub enum Next {
    /// Supervise on: rolling back (Some), or as before (None).
    Continue(Option<Change>),
    /// The stack is in trouble: give up on it.
    GiveUp(String),
    Stopped,
}

/// Per service: its containers and the image they run (the first one's, for scaled services).
fn by_service(containers: &[Container]) -> BTreeMap<String, (BTreeSet<String>, String)> {
    let mut services: BTreeMap<String, (BTreeSet<String>, String)> = BTreeMap::new();
    for container in containers {
        let entry = services
            .entry(container.service.clone())
            .or_insert_with(|| (BTreeSet::new(), container.image.clone()));
        entry.0.insert(container.id.clone());
    }
    services
}

impl Supervisor {
    pub(super) async fn begin(
        &mut self,
        action: Action,
        mut client: Client,
        containers: &[Container],
    ) -> Began {
        // From the request on, as a unit's start timeout counts from its start. A reload run as
        // ExecReload= is killed at TimeoutStartSec=: it hears the outcome before that.
        let timeout = match action {
            Action::Reload => self
                .stack
                .start_timeout
                .saturating_sub(ANSWER_MARGIN)
                .max(ANSWER_MARGIN),
            Action::Update => self.stack.start_timeout,
        };
        let deadline = Instant::now() + timeout;
        let record = runtime::Change {
            started: runtime::Change::now(),
            finished: None,
        };
        self.record(record);
        let mut states = vec![sd_notify::NotifyState::Reloading];
        states.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
        self.notifier.send(&states);
        let doing = match action {
            Action::Reload => "reloading",
            Action::Update => "updating",
        };
        self.notifier
            .status(&format!("{doing}: reading {}", self.root.dir.display()));
        let loaded = match model::load_one(&self.root.dir, &self.stack.stack_name()) {
            Ok(loaded) => loaded.root,
            Err(diags) => {
                return self
                    .refuse(
                        record,
                        client,
                        format!("the root is not valid; nothing was changed:\n{diags}"),
                    )
                    .await;
            }
        };
        let Some(stack) = loaded.stacks.get(&self.stack.name).cloned() else {
            return self
                .refuse(
                    record,
                    client,
                    format!("stack {} is no longer in the root", self.stack.name),
                )
                .await;
        };
        if let Err(reason) = self.check(&loaded, &stack).await {
            return self.refuse(record, client, reason).await;
        }
        let before = by_service(containers);
        if action == Action::Update {
            let images = before
                .iter()
                .map(|(service, (_, image))| (service.clone(), image.clone()))
                .collect();
            if let Err(e) = self.state.begin_update(&images) {
                return self.refuse(record, client, format!("{e:#}")).await;
            }
        }
        self.root = loaded;
        self.stack = stack;
        let text = format!("{doing}: recreating what changed (compose up)");
        self.notifier.status(&text);
        client.progress(&text).await;
        let change = Change {
            action,
            client,
            before,
            deadline,
            timeout,
            rolled_back: None,
            waiting: text,
            record,
        };
        match up(
            compose(&self.root, &self.stack, &self.state, self.mode),
            &mut self.stop,
        )
        .await
        {
            Some(Ok(())) => Began::Changing(change),
            Some(Err(e)) => Began::UpFailed(change, format!("{e:#}")),
            None => Began::Stopped,
        }
    }

    /// Records when the change began and ended, for the supervisors of the stacks requiring
    /// this one (runtime.rs).
    fn record(&self, change: runtime::Change) {
        if let Err(e) = change.save(self.mode, &self.stack.name) {
            tracing::warn!("{e:#}");
        }
    }

    /// The change is over: said before anything else happens to the containers.
    fn ended(&self, began: runtime::Change) {
        self.record(runtime::Change {
            finished: Some(runtime::Change::now()),
            ..began
        });
    }

    /// Nothing was changed: the unit is active again and the caller hears why.
    async fn refuse(&mut self, record: runtime::Change, client: Client, reason: String) -> Began {
        self.ended(record);
        tracing::warn!("{reason}");
        self.notifier.send(&[sd_notify::NotifyState::Ready]);
        client.done(&Outcome::failed(reason)).await;
        Began::Refused
    }

    /// The stack is ready again.
    pub(super) async fn finish(&mut self, change: Change, containers: &[Container]) {
        let after = by_service(containers);
        let recreated: Vec<String> = after
            .iter()
            .filter(|(service, (ids, _))| {
                change
                    .before
                    .get(*service)
                    .is_none_or(|(old, _)| old != ids)
            })
            .map(|(service, _)| service.clone())
            .collect();
        let images: Vec<ImageChange> = after
            .iter()
            .filter_map(|(service, (_, image))| {
                let (_, old) = change.before.get(service)?;
                (old != image).then(|| ImageChange {
                    service: service.clone(),
                    from: old.clone(),
                    to: image.clone(),
                })
            })
            .collect();
        let listed = if recreated.is_empty() {
            "nothing to recreate".to_string()
        } else {
            format!("recreated {}", recreated.join(", "))
        };
        let outcome = match (change.action, &change.rolled_back) {
            (Action::Reload, _) => Outcome {
                ok: true,
                message: format!("reloaded: {listed}"),
                recreated,
                images: Vec::new(),
                rolled_back: false,
            },
            (Action::Update, None) => {
                if let Err(e) = self.state.commit_update() {
                    tracing::warn!("{e:#}");
                }
                let changed: Vec<String> = images
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.service, short_id(&c.from), short_id(&c.to)))
                    .collect();
                let message = if changed.is_empty() {
                    format!("no newer images: {listed}")
                } else {
                    format!("updated {}", changed.join(", "))
                };
                Outcome {
                    ok: true,
                    message,
                    recreated,
                    images,
                    rolled_back: false,
                }
            }
            (Action::Update, Some(reason)) => Outcome {
                ok: false,
                message: format!(
                    "the new images did not become ready: {reason}; back on the images they replaced, pinned until an update becomes ready"
                ),
                recreated,
                images: Vec::new(),
                rolled_back: true,
            },
        };
        if outcome.ok {
            tracing::info!("{}", outcome.message);
        } else {
            tracing::warn!("{}", outcome.message);
        }
        self.ended(change.record);
        self.notifier.send(&[sd_notify::NotifyState::Ready]);
        self.save_applied();
        change.client.done(&outcome).await;
    }

    /// A change did not get the stack ready: an update is rolled back; anything else is
    /// reported, and the stack given up on when it is in trouble.
    pub(super) async fn change_failed(&mut self, mut change: Change, failure: Failure) -> Next {
        let reason = match &failure {
            Failure::Trouble(reason) | Failure::NotReady(reason) => reason.clone(),
        };
        if change.action == Action::Update && change.rolled_back.is_none() {
            tracing::warn!("the new images did not become ready: {reason}; rolling back");
            let rolled = self.state.roll_back();
            let text = format!("rolling back: {reason}");
            // The deadline may have taken the unit out of `reloading`: the dependents must
            // keep telling the rollback from a restart.
            self.notifier.send(&[sd_notify::NotifyState::Reloading]);
            self.notifier.status(&text);
            change.client.progress(&text).await;
            change.rolled_back = Some(reason.clone());
            change.deadline = Instant::now() + change.timeout;
            let result = match rolled {
                Ok(false) => Err(anyhow::anyhow!(
                    "the images to roll back to are gone (the state directory was changed)"
                )),
                Ok(true) => {
                    match up(
                        compose(&self.root, &self.stack, &self.state, self.mode),
                        &mut self.stop,
                    )
                    .await
                    {
                        Some(result) => result,
                        None => return Next::Stopped,
                    }
                }
                Err(e) => Err(e),
            };
            return match result {
                Ok(()) => Next::Continue(Some(change)),
                Err(e) => {
                    let message = format!(
                        "the new images did not become ready: {reason}; and the rollback failed: {e:#}"
                    );
                    self.ended(change.record);
                    self.notifier.send(&[sd_notify::NotifyState::Ready]);
                    change.client.done(&Outcome::failed(message.clone())).await;
                    Next::GiveUp(message)
                }
            };
        }
        let message = match &change.rolled_back {
            Some(first) => format!(
                "the new images did not become ready: {first}; the images they replaced did not either: {reason}"
            ),
            None => format!("the {} failed: {reason}", change.action.noun()),
        };
        tracing::warn!("{message}");
        // Before the stack is given up on (its containers removed): that is no reload.
        self.ended(change.record);
        self.notifier.send(&[sd_notify::NotifyState::Ready]);
        change.client.done(&Outcome::failed(message.clone())).await;
        match failure {
            Failure::Trouble(_) => Next::GiveUp(message),
            Failure::NotReady(_) => Next::Continue(None),
        }
    }
}
