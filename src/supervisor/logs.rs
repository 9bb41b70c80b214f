//! Forwarding every container's output to the journal, one task per container, with fields
//! (COMPOSE_SERVICE=, CONTAINER_NAME=, ...) that `journalctl` filters on.
//!
//! journald rate-limits a unit as a whole, and every container of a stack logs through its one
//! supervisor: one chatty container would use up the unit's budget and silence the others. So
//! each container gets its own budget here (`log_rate_limit`), and the unit's limit in the
//! drop-in is the sum of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::engine::{Container, Engine};
use crate::journal::{Journal, PRIORITY_INFO, PRIORITY_WARNING};

pub struct LogForwarder {
    journal: Option<Arc<Journal>>,
    stack: String,
    /// Lines from this time (unix seconds) on are forwarded for containers seen the first time.
    since: i32,
    /// (interval, lines per container and interval).
    limit: (Duration, u32),
    tasks: HashMap<String, JoinHandle<()>>,
}

/// A container's budget: at most `burst` lines per `interval`; the rest of an interval is
/// counted, and said once the next interval begins.
struct Budget {
    interval: Duration,
    burst: u32,
    window: Instant,
    used: u32,
    dropped: u64,
}

impl Budget {
    fn new((interval, burst): (Duration, u32)) -> Budget {
        Budget {
            interval,
            burst,
            window: Instant::now(),
            used: 0,
            dropped: 0,
        }
    }

    /// Whether a line may go out now; the lines dropped in the interval that just ended, once.
    fn take(&mut self) -> (bool, u64) {
        let mut ended = 0;
        if self.window.elapsed() >= self.interval {
            ended = std::mem::take(&mut self.dropped);
            self.window = Instant::now();
            self.used = 0;
        }
        if self.used < self.burst {
            self.used += 1;
            (true, ended)
        } else {
            self.dropped += 1;
            (false, ended)
        }
    }

    fn notice(&self, dropped: u64) -> String {
        format!(
            "composectl: dropped {dropped} lines of this container (more than {} in {})",
            self.burst,
            crate::duration::format(self.interval)
        )
    }
}

impl LogForwarder {
    pub fn new(stack: &str, since: i32, limit: (Duration, u32)) -> LogForwarder {
        LogForwarder {
            journal: Journal::connect().map(Arc::new),
            stack: stack.to_string(),
            since,
            limit,
            tasks: HashMap::new(),
        }
    }

    /// Follows every running container not followed yet (new, recreated or restarted ones).
    pub fn follow(&mut self, engine: &Arc<Engine>, containers: &[Container]) {
        for container in containers.iter().filter(|c| c.running) {
            let since = match self.tasks.get(&container.id) {
                Some(task) if !task.is_finished() => continue,
                // A restarted container's earlier lines were forwarded already.
                Some(_) => super::unix_now(),
                None => self.since,
            };
            let stream = engine.logs(&container.id, since);
            let journal = self.journal.clone();
            let fields = [
                ("COMPOSE_PROJECT", self.stack.clone()),
                ("COMPOSE_SERVICE", container.service.clone()),
                ("CONTAINER_NAME", container.name.clone()),
                ("CONTAINER_ID", container.id.chars().take(12).collect()),
                (
                    "SYSLOG_IDENTIFIER",
                    format!("{}/{}", self.stack, container.service),
                ),
            ];
            let task = tokio::spawn(forward(stream, journal, fields, Budget::new(self.limit)));
            self.tasks.insert(container.id.clone(), task);
        }
    }
}

/// Splits a container's stdout and stderr into lines, each one journal entry.
async fn forward(
    mut stream: crate::engine::LogStream,
    journal: Option<Arc<Journal>>,
    fields: [(&'static str, String); 5],
    mut budget: Budget,
) {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let journal = journal.as_deref();
    let mut send = |is_stderr: bool, line: &[u8]| {
        let (allowed, dropped) = budget.take();
        if dropped > 0 {
            emit(journal, true, budget.notice(dropped).as_bytes(), &fields);
        }
        if allowed {
            emit(journal, is_stderr, trim_line(line), &fields);
        }
    };
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    while let Some(Ok((is_stderr, bytes))) = stream.next().await {
        let buffer = &mut pending[usize::from(is_stderr)];
        buffer.extend_from_slice(&bytes);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            send(is_stderr, &line);
        }
    }
    for (index, rest) in pending.iter().enumerate() {
        if !rest.is_empty() {
            send(index == 1, rest);
        }
    }
    if budget.dropped > 0 {
        emit(
            journal,
            true,
            budget.notice(budget.dropped).as_bytes(),
            &fields,
        );
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn emit(journal: Option<&Journal>, is_stderr: bool, line: &[u8], fields: &[(&str, &str)]) {
    match journal {
        Some(journal) => {
            let priority = if is_stderr {
                PRIORITY_WARNING
            } else {
                PRIORITY_INFO
            };
            journal.send(priority, line, fields);
        }
        // Outside systemd (a developer running `composectl run` by hand): the terminal.
        None => {
            let service = fields
                .iter()
                .find(|(k, _)| *k == "SYSLOG_IDENTIFIER")
                .map_or("", |(_, v)| *v);
            crate::output::container_line(service, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_drops_what_exceeds_its_burst_and_says_so_once() {
        let mut budget = Budget::new((Duration::from_millis(50), 2));
        assert_eq!(budget.take(), (true, 0));
        assert_eq!(budget.take(), (true, 0));
        assert_eq!(budget.take(), (false, 0));
        assert_eq!(budget.take(), (false, 0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(budget.take(), (true, 2));
        assert_eq!(budget.take(), (true, 0));
        assert_eq!(
            budget.notice(2),
            "composectl: dropped 2 lines of this container (more than 2 in 50ms)"
        );
    }
}
