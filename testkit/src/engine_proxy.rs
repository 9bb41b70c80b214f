//! A stand-in socket for the Docker engine that a test can take away: it forwards every
//! connection to the real engine, or accepts connections and never answers (what a
//! socket-activated dockerd that is not coming back does), or is absent. Units of a private
//! manager reach it through `DOCKER_HOST`, so a test makes the engine late, gone or hung for its
//! own stacks without touching the engine every other test uses.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const ENGINE: &str = "/var/run/docker.sock";

const FORWARD: u8 = 0;
const HANG: u8 = 1;

pub struct EngineProxy {
    path: PathBuf,
    mode: Arc<AtomicU8>,
    /// Connections being served, so `cut` can close them as a dying engine would.
    open: Arc<Mutex<Vec<UnixStream>>>,
    /// Bumped when the socket goes away; the accept loop of an older one then ends.
    generation: Arc<AtomicU8>,
    listening: bool,
}

impl EngineProxy {
    /// A proxy socket at `path`, not listening yet.
    pub fn new(path: &Path) -> EngineProxy {
        EngineProxy {
            path: path.to_path_buf(),
            mode: Arc::new(AtomicU8::new(FORWARD)),
            open: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(AtomicU8::new(0)),
            listening: false,
        }
    }

    /// `unix://PATH`, for DOCKER_HOST.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Starts forwarding to the real engine (the engine "comes up").
    pub fn forward(&mut self) {
        self.mode.store(FORWARD, Ordering::SeqCst);
        self.listen();
    }

    /// New connections are accepted and never answered; open ones go on.
    pub fn hang(&mut self) {
        self.mode.store(HANG, Ordering::SeqCst);
        self.listen();
    }

    /// The engine is gone: open connections are cut and the socket disappears, so new ones are
    /// refused.
    pub fn remove(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.listening = false;
        self.cut();
    }

    fn cut(&self) {
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn listen(&mut self) {
        if self.listening {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the engine proxy socket");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        self.listening = true;
        let (mode, open) = (self.mode.clone(), self.open.clone());
        let (generation, born) = (
            self.generation.clone(),
            self.generation.load(Ordering::SeqCst),
        );
        thread::spawn(move || {
            while generation.load(Ordering::SeqCst) == born {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = client.set_nonblocking(false);
                if let Ok(copy) = client.try_clone() {
                    open.lock().unwrap_or_else(|e| e.into_inner()).push(copy);
                }
                if mode.load(Ordering::SeqCst) == HANG {
                    continue;
                }
                let _ = serve(client, &open);
            }
        });
    }
}

/// Copies bytes both ways between a client and the real engine, one thread per direction.
fn serve(client: UnixStream, open: &Arc<Mutex<Vec<UnixStream>>>) -> io::Result<()> {
    let engine = UnixStream::connect(ENGINE)?;
    open.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(engine.try_clone()?);
    let (mut client_in, mut engine_out) = (client.try_clone()?, engine.try_clone()?);
    thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut engine_out);
        let _ = engine_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut engine_in, mut client_out) = (engine, client);
    thread::spawn(move || {
        let _ = io::copy(&mut engine_in, &mut client_out);
        let _ = client_out.shutdown(std::net::Shutdown::Write);
    });
    Ok(())
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.remove();
    }
}
