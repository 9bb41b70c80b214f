//! When a stack is ready, and when it has failed: the judgement of the supervisor, from the
//! engine's containers and events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use crate::config::meta::Ready;
use crate::engine::{Container, ContainerSummary, Engine, Event};
use crate::model::Stack;

/// Where the stack is on its way to ready.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready, with the STATUS= text.
    Ready(String),
    /// Not yet, with what it waits for.
    Waiting(String),
}

/// Ready when every service `compose up` starts (no profile, or an active one) has its
/// containers running (or, for one-shot services, exited 0), and healthy where they have a
/// healthcheck and the stack waits for health.
pub fn readiness(stack: &Stack, containers: &[Container]) -> Readiness {
    let mut waiting = Vec::new();
    let mut summary = ContainerSummary::default();
    for service in stack
        .services
        .iter()
        .filter(|s| stack.running.contains(&s.name))
    {
        let mut own = containers
            .iter()
            .filter(|c| c.service == service.name)
            .peekable();
        if own.peek().is_none() {
            waiting.push(format!("{} (not created)", service.name));
        }
        for container in own {
            summary.add(container);
            if !container.running {
                if container.exit_code != Some(0) {
                    waiting.push(format!("{} (exited)", service.name));
                }
                continue;
            }
            match container.health.as_deref() {
                Some(state) if state != "healthy" && stack.ready == Ready::Healthy => {
                    waiting.push(format!("{} ({state})", service.name))
                }
                _ => {}
            }
        }
    }
    if waiting.is_empty() {
        Readiness::Ready(summary.to_string())
    } else {
        Readiness::Waiting(format!("waiting for {}", waiting.join(", ")))
    }
}

/// Containers that died or turned unhealthy and get a grace period to come back by themselves.
#[derive(Default)]
pub struct Trouble {
    deadlines: BTreeMap<String, (Instant, String)>,
    /// Containers the engine reported an "oom" for while they still ran: when one dies, that
    /// was why. The engine's own OOMKilled flag stays false when the limit that struck is the
    /// stack's slice rather than the container's own.
    oom_seen: BTreeSet<String>,
}

impl Trouble {
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().map(|(at, _)| *at).min()
    }

    /// Only containers that still exist and are still in trouble keep their grace period.
    pub fn forget_recovered(&mut self, containers: &[Container]) {
        self.deadlines
            .retain(|id, _| containers.iter().any(|c| &c.id == id && c.in_trouble()));
    }

    /// Takes the expired entries; the reason of the first one still in trouble is the failure.
    pub fn expired(&mut self, containers: &[Container], grace: Duration) -> Option<String> {
        let now = Instant::now();
        let expired: Vec<String> = self
            .deadlines
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut failure = None;
        for id in expired {
            let Some((_, why)) = self.deadlines.remove(&id) else {
                continue;
            };
            if failure.is_none() && containers.iter().any(|c| c.id == id && c.in_trouble()) {
                failure = Some(format!(
                    "{why} and did not recover within {}",
                    crate::duration::format(grace)
                ));
            }
        }
        failure
    }

    /// Why the stack cannot go on after `event`, or None when it is harmless or gets a grace.
    pub async fn judge(
        &mut self,
        engine: &Engine,
        event: &Event,
        grace: Duration,
    ) -> Result<Option<String>> {
        let who = format!("container {} (service {})", event.name, event.service);
        match event.action.as_str() {
            "die" | "oom" => {
                // Gone already: a container of an earlier run, removed by its `compose down`.
                let Ok(exit) = engine.exit(&event.id).await else {
                    return Ok(None);
                };
                if event.action == "oom" && exit.running && !exit.restarting {
                    // A process of the container hit the limit (the stack's memory_max, or the
                    // service's own): if it was the container's main process, its "die" follows.
                    tracing::warn!("a process in {who} was killed for lack of memory (OOM)");
                    self.oom_seen.insert(event.id.clone());
                    return Ok(None);
                }
                let oom_seen = self.oom_seen.remove(&event.id);
                let oom = exit.oom_killed || event.action == "oom" || oom_seen;
                let code = event.exit_code.unwrap_or(exit.code);
                let what = if oom {
                    format!("{who} was killed for lack of memory (OOM)")
                } else {
                    format!("{who} exited with code {code}")
                };
                if exit.restarting || exit.running {
                    let how = if exit.restarting {
                        "its restart policy brings it back"
                    } else {
                        "it runs again"
                    };
                    tracing::warn!("{what}; {how}");
                    self.deadlines
                        .insert(event.id.clone(), (Instant::now() + grace, what));
                } else if code != 0 || oom {
                    return Ok(Some(format!("{what} and the engine does not restart it")));
                }
            }
            action
                if action.starts_with("health_status: unhealthy")
                    && !self.deadlines.contains_key(&event.id) =>
            {
                // What the check said is usually why: "connection refused", a stack trace.
                let why = match engine.health_log(&event.id).await.pop() {
                    Some(output) => format!("{who} is unhealthy (its check said: {output})"),
                    None => format!("{who} is unhealthy"),
                };
                self.deadlines
                    .insert(event.id.clone(), (Instant::now() + grace, why));
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::compose_file::Service;

    fn stack(ready: Ready) -> Stack {
        let service = |name: &str, profiles: &[&str]| Service {
            name: name.into(),
            healthcheck: false,
            container_name: None,
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
            networks: Vec::new(),
            image: None,
            health_budget: None,
            stop_grace: None,
            depends_on: Vec::new(),
            cgroup_parent: None,
            line: 1,
        };
        Stack {
            name: "s".into(),
            dir: "/r/stacks/s".into(),
            compose_file: "/r/stacks/s/compose.yaml".into(),
            description: String::new(),
            requires: Vec::new(),
            keeps_running_with: BTreeSet::new(),
            wants: Vec::new(),
            ready,
            start_timeout: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(1),
            restart_sec: Duration::from_secs(1),
            services: vec![
                service("db", &[]),
                service("web", &[]),
                service("tools", &["debug"]),
            ],
            running: ["db".to_string(), "web".to_string()].into(),
            networks: Vec::new(),
            env_files: Vec::new(),
            env: Default::default(),
            dependency_lines: BTreeMap::new(),
            mounts: BTreeSet::new(),
            secrets: Vec::new(),
            encrypted: BTreeMap::new(),
            missing_secrets: Vec::new(),
            log_rate_limit: (Duration::from_secs(30), 10_000),
            backup: Default::default(),
            update: Default::default(),
            resources: Default::default(),
        }
    }

    fn container(
        service: &str,
        running: bool,
        health: Option<&str>,
        exit_code: Option<i64>,
    ) -> Container {
        Container {
            id: format!("{service}-id"),
            name: format!("s-{service}-1"),
            project: "s".into(),
            service: service.into(),
            running,
            health: health.map(str::to_string),
            exit_code,
            image: "sha256:1".into(),
            config_hash: None,
        }
    }

    #[test]
    fn ready_means_running_and_healthy_except_profiles() {
        let s = stack(Ready::Healthy);
        assert_eq!(
            readiness(&s, &[container("db", true, Some("starting"), None)]),
            Readiness::Waiting("waiting for db (starting), web (not created)".into())
        );
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", true, None, None)
                ]
            ),
            Readiness::Ready("2/2 running, 1/1 healthy".into())
        );
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", false, None, Some(1))
                ]
            ),
            Readiness::Waiting("waiting for web (exited)".into())
        );
        // A one-shot service that completed counts as done, and is shown as not running.
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("healthy"), None),
                    container("web", false, None, Some(0))
                ]
            ),
            Readiness::Ready("1/2 running, 1/1 healthy".into())
        );
    }

    #[test]
    fn ready_running_ignores_health() {
        let s = stack(Ready::Running);
        assert_eq!(
            readiness(
                &s,
                &[
                    container("db", true, Some("starting"), None),
                    container("web", true, None, None)
                ]
            ),
            Readiness::Ready("2/2 running, 0/1 healthy".into())
        );
    }

    #[test]
    fn only_containers_still_in_trouble_fail_after_their_grace() {
        let mut trouble = Trouble::default();
        let grace = Duration::from_secs(0);
        trouble
            .deadlines
            .insert("db-id".into(), (Instant::now(), "db died".into()));
        trouble
            .deadlines
            .insert("web-id".into(), (Instant::now(), "web died".into()));
        let containers = [
            container("db", true, None, None),
            container("web", false, None, Some(1)),
        ];
        assert_eq!(
            trouble.expired(&containers, grace).as_deref(),
            Some("web died and did not recover within 0")
        );
        assert_eq!(trouble.next_deadline(), None);
    }
}
