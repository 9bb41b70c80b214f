//! What a running supervisor publishes in its runtime directory (`RuntimeDirectory=` of the
//! unit, `/run/composectl/STACK/`, gone when the stack stops):
//! - `control.sock`, where `composectl run --reload` (the unit's ExecReload=) and `composectl
//!   update` ask it to apply changed files or newer images and hear how that went, one JSON
//!   document a line;
//! - `applied.json`, the compose file and env layers it last applied (mode 0600: the env layers
//!   hold secrets), so `composectl diff` can show what a reload would change;
//! - `change.json`, when its last reload or update began and ended, so the supervisors of the
//!   stacks requiring it can tell the containers it replaced from a restart, however late they
//!   look (by the engine's timestamp of each removal).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::env::parse_env_file;
use crate::diag::Diagnostics;
use crate::mode::Mode;
use crate::model::Stack;

const SOCKET: &str = "control.sock";
const APPLIED: &str = "applied.json";
const CHANGE: &str = "change.json";
const PLACEMENT: &str = "placement.yaml";
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime directory of a stack's supervisor.
pub fn dir(mode: Mode, stack: &str) -> PathBuf {
    mode.runtime_dir().join(stack)
}

/// Where the supervisor writes the override file that places the containers in the stack's
/// slice (`compose_cli::placement_override`); gone with the runtime directory when it stops.
pub fn placement_path(mode: Mode, stack: &str) -> PathBuf {
    dir(mode, stack).join(PLACEMENT)
}

/// The placement override of a running supervisor, when it wrote one: every compose call that
/// compares or touches the stack's containers must read the files the supervisor ran with.
pub fn placement(mode: Mode, stack: &str) -> Option<PathBuf> {
    let path = placement_path(mode, stack);
    path.is_file().then_some(path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Apply the compose file and env layers as they are now: `compose up` recreates what
    /// changed; the unit stays active.
    Reload,
    /// Apply the images the tags name now (pulled by the caller), rolling back to the images
    /// that ran before when the stack does not become ready.
    Update,
}

impl Action {
    pub fn noun(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Update => "update",
        }
    }
}

/// A service whose image changed in an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    pub service: String,
    pub from: String,
    pub to: String,
}

/// How a reload or update ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    /// Services whose containers were replaced.
    pub recreated: Vec<String>,
    /// Update: the images that changed (after a rollback, none).
    pub images: Vec<ImageChange>,
    /// Update: the new images did not become ready, and the previous ones are pinned.
    pub rolled_back: bool,
}

impl Outcome {
    pub fn failed(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            message: message.into(),
            recreated: Vec::new(),
            images: Vec::new(),
            rolled_back: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Message {
    Progress(String),
    Done(Outcome),
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    action: Action,
}

/// Asks the supervisor of `stack` to `action`, telling `progress` what it says meanwhile, and
/// returns how it ended. `limit` bounds the whole exchange.
pub async fn request(
    mode: Mode,
    stack: &str,
    action: Action,
    limit: Duration,
    mut progress: impl FnMut(&str),
) -> Result<Outcome> {
    let path = dir(mode, stack).join(SOCKET);
    let stream = UnixStream::connect(&path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow!(
            "no supervisor of {stack} listens on {}: the stack is not running (composectl start {stack}), or its supervisor is older than this composectl (composectl restart {stack})",
            path.display()
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "cannot reach the supervisor of {stack} on {}: permission denied (run as its owner, or with sudo)",
            path.display()
        ),
        _ => anyhow!("cannot reach the supervisor of {stack} on {}: {e}", path.display()),
    })?;
    match tokio::time::timeout(limit, exchange(stream, action, &mut progress)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(e.context(format!(
            "the {} of {stack} did not finish (see composectl status {stack})",
            action.noun()
        ))),
        Err(_) => bail!(
            "the {} of {stack} did not finish within {}",
            action.noun(),
            crate::duration::format(limit)
        ),
    }
}

/// Sends the request and reads what the supervisor says until its outcome.
async fn exchange(
    mut stream: UnixStream,
    action: Action,
    mut progress: impl FnMut(&str),
) -> Result<Outcome> {
    let mut line = serde_json::to_string(&Request { action })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str(&line)? {
            Message::Progress(text) => progress(&text),
            Message::Done(outcome) => return Ok(outcome),
        }
    }
    bail!("the supervisor stopped before it finished")
}

/// The supervisor's end of the socket. Callers are accepted and their requests read by a task
/// of their own, so the supervisor's loop can wait for the next one among its other events
/// without ever dropping a caller half read.
pub struct Listener {
    requests: mpsc::Receiver<(Action, Client)>,
    task: JoinHandle<()>,
    path: PathBuf,
}

/// A caller waiting for a reload or update to end.
pub struct Client {
    stream: UnixStream,
}

impl Listener {
    /// Listens on the stack's socket, replacing one a killed supervisor left.
    pub fn bind(mode: Mode, stack: &str) -> Result<Listener> {
        let dir = dir(mode, stack);
        crate::files::create_dirs(&dir)?;
        let path = dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        Ok(Listener::serve(listener, path))
    }

    fn serve(listener: UnixListener, path: PathBuf) -> Listener {
        let (sender, requests) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // Callers that say nothing sensible are dropped.
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
                if let (Ok(Ok(_)), Ok(request)) = (read, serde_json::from_str::<Request>(&line)) {
                    let client = Client {
                        stream: reader.into_inner(),
                    };
                    if sender.send((request.action, client)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Listener {
            requests,
            task,
            path,
        }
    }

    /// The next caller and what it asks for. Cancel-safe.
    pub async fn accept(&mut self) -> (Action, Client) {
        match self.requests.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    /// Best effort: a caller that went away (Ctrl-C, the ExecReload killed at its timeout)
    /// changes nothing about the reload.
    pub async fn progress(&mut self, text: &str) {
        self.send(&Message::Progress(text.to_string())).await;
    }

    pub async fn done(mut self, outcome: &Outcome) {
        self.send(&Message::Done(outcome.clone())).await;
    }

    async fn send(&mut self, message: &Message) {
        if let Ok(mut line) = serde_json::to_string(message) {
            line.push('\n');
            let _ =
                tokio::time::timeout(REQUEST_TIMEOUT, self.stream.write_all(line.as_bytes())).await;
        }
    }
}

/// When a supervisor's last reload or update began and, once it has, ended: unix nanoseconds,
/// the engine's clock for its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub started: i64,
    pub finished: Option<i64>,
}

impl Change {
    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn save(&self, mode: Mode, stack: &str) -> Result<()> {
        let text = serde_json::to_string(self)?;
        crate::files::write_atomically(&dir(mode, stack).join(CHANGE), &text, 0o644)
    }

    /// Whether something that happened to `stack` at `time` was part of a reload or update.
    pub fn covers(mode: Mode, stack: &str, time: i64) -> bool {
        std::fs::read_to_string(dir(mode, stack).join(CHANGE))
            .ok()
            .and_then(|text| serde_json::from_str::<Change>(&text).ok())
            .is_some_and(|change| change.includes(time))
    }

    fn includes(&self, time: i64) -> bool {
        self.started <= time && self.finished.is_none_or(|end| time <= end)
    }
}

/// The files a supervisor applied: the compose file's text and each env layer's variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub compose_file: PathBuf,
    pub compose: String,
    pub env: Vec<(PathBuf, BTreeMap<String, String>)>,
}

impl Applied {
    /// The stack's files as they are on disk now.
    pub fn read(stack: &Stack) -> Applied {
        let mut ignored = Diagnostics::default();
        Applied {
            compose_file: stack.compose_file.clone(),
            compose: std::fs::read_to_string(&stack.compose_file).unwrap_or_default(),
            env: stack
                .env_files
                .iter()
                .map(|file| {
                    let text = std::fs::read_to_string(file).unwrap_or_default();
                    let vars = parse_env_file(file, &text, &mut ignored)
                        .into_iter()
                        .collect();
                    (file.clone(), vars)
                })
                .collect(),
        }
    }

    /// What the supervisor of `stack` applied last; None when it is not running.
    pub fn load(mode: Mode, stack: &str) -> Option<Applied> {
        let text = std::fs::read_to_string(dir(mode, stack).join(APPLIED)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, mode: Mode, stack: &str) -> Result<()> {
        let text = serde_json::to_string(self)?;
        crate::files::write_atomically(&dir(mode, stack).join(APPLIED), &text, 0o600)
    }

    /// The variables whose value differs between `self` (applied) and `now`, with how:
    /// `added`, `removed` or `changed`. Values are never part of it.
    pub fn env_changes(&self, now: &Applied) -> Vec<(String, &'static str)> {
        let merged = |applied: &Applied| -> BTreeMap<String, String> {
            applied
                .env
                .iter()
                .flat_map(|(_, vars)| vars.clone())
                .collect()
        };
        let (before, after) = (merged(self), merged(now));
        let mut changes = Vec::new();
        for (name, value) in &after {
            match before.get(name) {
                None => changes.push((name.clone(), "added")),
                Some(old) if old != value => changes.push((name.clone(), "changed")),
                _ => {}
            }
        }
        for name in before.keys().filter(|n| !after.contains_key(*n)) {
            changes.push((name.clone(), "removed"));
        }
        changes.sort();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_changes_name_variables_never_values() {
        let applied = |vars: &[(&str, &str)]| Applied {
            compose_file: "c".into(),
            compose: String::new(),
            env: vec![(
                "e".into(),
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )],
        };
        let before = applied(&[("A", "1"), ("B", "secret"), ("C", "x")]);
        let after = applied(&[("A", "1"), ("B", "other"), ("D", "new")]);
        assert_eq!(
            before.env_changes(&after),
            [
                ("B".to_string(), "changed"),
                ("C".to_string(), "removed"),
                ("D".to_string(), "added")
            ]
        );
    }

    #[test]
    fn a_change_covers_what_happened_while_it_lasted() {
        let running = Change {
            started: 100,
            finished: None,
        };
        assert!(!running.includes(99));
        assert!(running.includes(100) && running.includes(1_000));
        let over = Change {
            finished: Some(200),
            ..running
        };
        assert!(over.includes(200) && !over.includes(201));
    }

    #[tokio::test]
    async fn a_request_hears_progress_and_the_outcome() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join(SOCKET);
        let mut server = Listener::serve(UnixListener::bind(&path).unwrap(), path.clone());
        let serve = async {
            let (action, mut client) = server.accept().await;
            assert_eq!(action, Action::Update);
            client.progress("recreating web").await;
            client.done(&Outcome::failed("web is unhealthy")).await;
        };
        let ask = async {
            let stream = UnixStream::connect(&path).await.unwrap();
            let mut said = Vec::new();
            let outcome = exchange(stream, Action::Update, |t| said.push(t.to_string()))
                .await
                .unwrap();
            (outcome, said)
        };
        let ((), (outcome, said)) = tokio::join!(serve, ask);
        assert_eq!(said, ["recreating web"]);
        assert_eq!(outcome, Outcome::failed("web is unhealthy"));
    }
}
