//! Running an external CLI (compose, the docker CLI for `stack deploy`): what it prints returned,
//! stdin fed or closed, an optional time limit, and a failure that quotes the last lines the
//! program wrote on stderr, which is where both say what went wrong.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// How many of the program's last stderr lines a failure quotes.
const QUOTED_LINES: usize = 8;

/// Runs `command` (described as `what` in errors, with `install` saying how to get the program
/// when it cannot start); killed after `limit`. Returns what it printed on stdout.
pub async fn run(
    mut command: Command,
    what: &str,
    install: &str,
    stdin: Option<&[u8]>,
    limit: Option<Duration>,
) -> Result<String> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow!("cannot run {what}: {e}; {install}"))?;
    let input = child.stdin.take();
    let stderr = child.stderr.take();
    let stdout = child.stdout.take();
    // Fed and read at once, so no pipe can fill up while another is waited on; stdin is closed
    // once written.
    let feed = async {
        if let (Some(mut input), Some(bytes)) = (input, stdin) {
            // A program that exits without reading says why on stderr.
            let _ = input.write_all(bytes).await;
        }
    };
    let read = async {
        let mut tail = VecDeque::with_capacity(QUOTED_LINES);
        if let Some(stderr) = stderr {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tail.len() == QUOTED_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        tail
    };
    let printed = async {
        let mut out = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut out).await;
        }
        out
    };
    let finished = async {
        let ((), tail, out) = tokio::join!(feed, read, printed);
        (child.wait().await, tail, out)
    };
    let (status, tail, out) = match limit {
        Some(limit) => tokio::time::timeout(limit, finished).await.map_err(|_| {
            anyhow!(
                "{what} did not finish within {}",
                crate::duration::format(limit)
            )
        })?,
        None => finished.await,
    };
    let status = status.map_err(|e| anyhow!("{what}: {e}"))?;
    if !status.success() {
        let quoted: Vec<String> = tail
            .into_iter()
            .map(|line| format!("\n    {line}"))
            .collect();
        bail!("{what} failed ({status}){}", quoted.concat());
    }
    Ok(out)
}
