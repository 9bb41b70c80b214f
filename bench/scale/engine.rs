//! The engine as the benchmark sees it, through its API (bollard, as composectl itself): the
//! containers of the benchmark's stacks, and their events recorded live. The engine replays only
//! its last 256 events and every container's healthcheck adds three exec events per interval, so
//! a run's events cannot be read back afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The events a run is judged by; healthchecks' exec events are left out at the engine.
const ACTIONS: [&str; 5] = ["create", "start", "health_status", "die", "destroy"];

/// Nanoseconds since the epoch: the engine's event clock (it runs on this host).
pub fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn connect() -> Docker {
    Docker::connect_with_unix_defaults().expect("the Docker engine's socket")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A container of the benchmark, as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub project: String,
    /// Running, and healthy by its healthcheck.
    pub healthy: bool,
}

/// A container event of the benchmark's projects.
#[derive(Debug, Clone)]
pub struct Event {
    pub time_nano: i64,
    pub action: String,
    pub project: String,
    pub id: String,
}

pub struct Engine {
    runtime: Runtime,
    docker: Docker,
}

impl Engine {
    pub fn connect() -> Engine {
        Engine {
            runtime: runtime(),
            docker: connect(),
        }
    }

    /// Every container whose project begins with `prefix`, from one request.
    pub fn containers(&self, prefix: &str) -> Vec<Listed> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([
                ("label".to_string(), vec![PROJECT_LABEL.to_string()]),
                ("name".to_string(), vec![prefix.to_string()]),
            ])),
            ..Default::default()
        };
        let list = self
            .runtime
            .block_on(self.docker.list_containers(Some(options)))
            .expect("list the benchmark's containers");
        list.into_iter()
            .filter_map(|c| {
                let project = c.labels?.remove(PROJECT_LABEL)?;
                project.starts_with(prefix).then(|| Listed {
                    id: c.id.unwrap_or_default(),
                    project,
                    // The list has no structured health before API 1.52: "Up 2 seconds (healthy)".
                    healthy: c.status.unwrap_or_default().ends_with("(healthy)"),
                })
            })
            .collect()
    }

    /// Removes every container of the benchmark (what a strategy's teardown left), at once.
    pub fn remove_all(&self, prefix: &str) {
        let ids: Vec<String> = self.containers(prefix).into_iter().map(|c| c.id).collect();
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        self.runtime
            .block_on(join_all(ids.iter().map(|id| {
                self.docker.remove_container(id, Some(options.clone()))
            })));
    }

    /// SIGKILL, as `docker kill`.
    pub fn kill(&self, id: &str) {
        self.runtime
            .block_on(self.docker.kill_container(id, None))
            .expect("kill a container");
    }
}

/// Container events of the projects beginning with a prefix, streamed into memory by a thread of
/// its own from the moment it was started until it is stopped.
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start(prefix: &str) -> Recorder {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        // From now on, replayed if the subscription is slower than the run it records.
        let now = now_nanos();
        let since = format!("{}.{:09}", now / 1_000_000_000, now % 1_000_000_000);
        let prefix = prefix.to_string();
        let sink = Arc::clone(&events);
        let thread = thread::spawn(move || {
            let docker = connect();
            let options = EventsOptions {
                since: Some(since),
                filters: Some(HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    ("label".to_string(), vec![PROJECT_LABEL.to_string()]),
                    (
                        "event".to_string(),
                        ACTIONS.iter().map(|a| a.to_string()).collect(),
                    ),
                ])),
                ..Default::default()
            };
            let mut stream = docker.events(Some(options));
            let record = async {
                while let Some(message) = stream.next().await {
                    let message = message.expect("the engine's event stream");
                    let actor = message.actor.unwrap_or_default();
                    let project = actor
                        .attributes
                        .unwrap_or_default()
                        .remove(PROJECT_LABEL)
                        .unwrap_or_default();
                    if project.starts_with(&prefix) {
                        sink.lock().expect("events").push(Event {
                            time_nano: message.time_nano.unwrap_or_default(),
                            action: message.action.unwrap_or_default(),
                            project,
                            id: actor.id.unwrap_or_default(),
                        });
                    }
                }
            };
            runtime().block_on(async {
                tokio::select! {
                    () = record => panic!("the engine closed its event stream"),
                    _ = stopped => {}
                }
            });
        });
        Recorder {
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What was recorded so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.events.lock().expect("events").clone();
        events.sort_by_key(|e| e.time_nano);
        events
    }

    /// Polls what was recorded every 20 ms until `done` holds for it; false after `limit`.
    pub fn wait(&self, limit: Duration, mut done: impl FnMut(&[Event]) -> bool) -> bool {
        composectl_testkit::e2e::wait_until(limit, || done(&self.events()))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A recorder that died (the engine went away) has already said so.
            let _ = thread.join();
        }
    }
}
