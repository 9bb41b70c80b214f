//! Forwarding every container's output to the journal, one task per container, with fields
//! (COMPOSE_SERVICE=, CONTAINER_NAME=, ...) that `journalctl` filters on.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::engine::{Container, Engine};
use crate::journal::{Journal, PRIORITY_INFO, PRIORITY_WARNING};

pub struct LogForwarder {
    journal: Option<Arc<Journal>>,
    stack: String,
    /// Lines from this time (unix seconds) on are forwarded for containers seen the first time.
    since: i32,
    tasks: HashMap<String, JoinHandle<()>>,
}

impl LogForwarder {
    pub fn new(stack: &str, since: i32) -> LogForwarder {
        LogForwarder {
            journal: Journal::connect().map(Arc::new),
            stack: stack.to_string(),
            since,
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
            let task = tokio::spawn(forward(stream, journal, fields));
            self.tasks.insert(container.id.clone(), task);
        }
    }
}

/// Splits a container's stdout and stderr into lines, each one journal entry.
async fn forward(
    mut stream: crate::engine::LogStream,
    journal: Option<Arc<Journal>>,
    fields: [(&'static str, String); 5],
) {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    while let Some(Ok((is_stderr, bytes))) = stream.next().await {
        let buffer = &mut pending[usize::from(is_stderr)];
        buffer.extend_from_slice(&bytes);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            emit(journal.as_deref(), is_stderr, trim_line(&line), &fields);
        }
    }
    for (index, rest) in pending.iter().enumerate() {
        if !rest.is_empty() {
            emit(journal.as_deref(), index == 1, trim_line(rest), &fields);
        }
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
