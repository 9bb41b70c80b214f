//! Sending entries to journald over its native protocol, so container lines carry fields
//! (COMPOSE_SERVICE=, CONTAINER_NAME=, ...) that `journalctl` can filter on.

use std::io::Write;
use std::os::unix::net::UnixDatagram;

const SOCKET: &str = "/run/systemd/journal/socket";
/// Longer lines are cut: a datagram must fit the socket's buffer.
const MAX_LINE: usize = 48 * 1024;

pub struct Journal {
    /// Unbound, each entry sent to the socket's path: a restarted journald binds a new socket
    /// there, which a connected socket would never reach.
    socket: UnixDatagram,
}

/// syslog priorities composectl uses.
pub const PRIORITY_WARNING: u8 = 4;
pub const PRIORITY_INFO: u8 = 6;

impl Journal {
    /// None where no journald listens (composectl run outside systemd then logs to stderr).
    pub fn connect() -> Option<Journal> {
        if !std::path::Path::new(SOCKET).exists() {
            return None;
        }
        Some(Journal {
            socket: UnixDatagram::unbound().ok()?,
        })
    }

    /// Sends one entry; failures are dropped, since there is nowhere left to report them.
    pub fn send(&self, priority: u8, message: &[u8], fields: &[(&str, &str)]) {
        let message = &message[..message.len().min(MAX_LINE)];
        let mut datagram = Vec::with_capacity(message.len() + 256);
        append(&mut datagram, "PRIORITY", priority.to_string().as_bytes());
        append(&mut datagram, "MESSAGE", message);
        for (key, value) in fields {
            append(&mut datagram, key, value.as_bytes());
        }
        let _ = self.socket.send_to(&datagram, SOCKET);
    }
}

/// One field: `KEY=value\n`, or the length-prefixed form when the value holds a newline.
fn append(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        let _ = out.write_all(value);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_newlines_use_the_length_prefixed_form() {
        let mut out = Vec::new();
        append(&mut out, "A", b"one");
        append(&mut out, "B", b"two\nlines");
        let mut want = b"A=one\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(out, want);
    }
}
