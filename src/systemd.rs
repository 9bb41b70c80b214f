//! A small systemd client over D-Bus (zbus on a current-thread tokio runtime: composectl makes
//! a handful of calls and waits for signals, it never needs more than one thread).
//!
//! Jobs are waited for without races: subscribe, start listening for `JobRemoved`, then start the
//! job and match the job path the reply names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use zbus::{Connection, proxy};
use zbus::{OwnedObjectPath, OwnedVariant};

use crate::mode::Mode;

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// What to do with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Stop,
    Restart,
}

impl JobKind {
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
        }
    }
}

/// A unit's state, from one `GetAll` per interface.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UnitStatus {
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
    /// When the unit entered its current state, in microseconds since the epoch (0: never).
    pub since_usec: u64,
    pub n_restarts: u32,
    pub status_text: String,
    pub result: String,
    pub main_pid: u32,
}

pub struct Systemd {
    manager: ManagerProxy<'static>,
    connection: Connection,
}

fn bus_address(mode: Mode) -> Option<String> {
    match mode {
        Mode::System => None,
        Mode::User => std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
            .or_else(|| {
                let runtime = std::env::var_os("XDG_RUNTIME_DIR")?;
                Some(format!(
                    "unix:path={}",
                    PathBuf::from(runtime).join("bus").display()
                ))
            }),
    }
}

/// Turns D-Bus errors users meet into sentences that say what to do.
pub fn explain(error: zbus::Error) -> anyhow::Error {
    if let zbus::Error::MethodError(name, message, _) = &error {
        let detail = message.clone().unwrap_or_default();
        return match name.as_str() {
            "org.freedesktop.DBus.Error.AccessDenied"
            | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                anyhow!(
                    "systemd refused: {detail} (polkit). Run with sudo, or use --user for your own stacks"
                )
            }
            "org.freedesktop.systemd1.NoSuchUnit" => anyhow!("unit not found: {detail}"),
            _ => anyhow!("systemd: {detail} ({name})"),
        };
    }
    anyhow!(error)
}

impl Systemd {
    pub async fn connect(mode: Mode) -> Result<Systemd> {
        let address = bus_address(mode);
        let connection = match &address {
            None => Connection::system().await,
            Some(address) => {
                zbus::connection::Builder::address(address.as_str())
                    .build()
                    .await
            }
        };
        let connection = connection.map_err(|e| {
            let (bus, hint) = match &address {
                None => ("the system bus".to_string(), "is systemd running as PID 1 on this host?"),
                Some(address) => (
                    format!("the user bus at {address}"),
                    "is a systemd user manager running for you (loginctl enable-linger $USER)? Or use --system",
                ),
            };
            anyhow!("cannot connect to systemd over {bus}: {e}; {hint}")
        })?;
        let manager = ManagerProxy::new(&connection).await.map_err(explain)?;
        manager.subscribe().await.map_err(explain)?;
        Ok(Systemd {
            manager,
            connection,
        })
    }

    pub async fn reload(&self) -> Result<()> {
        self.manager
            .reload()
            .await
            .map_err(explain)
            .context("daemon reload failed")
    }

    pub async fn enable(&self, units: &[String]) -> Result<()> {
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .enable_unit_files(&names, false, true)
            .await
            .map_err(explain)
            .with_context(|| format!("cannot enable {}", units.join(" ")))?;
        Ok(())
    }

    pub async fn disable(&self, units: &[String]) -> Result<()> {
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .disable_unit_files(&names, false)
            .await
            .map_err(explain)
            .with_context(|| format!("cannot disable {}", units.join(" ")))?;
        Ok(())
    }

    /// Queues `kind` for each of `units` and waits until every job has finished; `progress` hears
    /// about every finished job of the `watched` units (dependencies included), in order.
    /// Returns each requested unit's job result (`done`, `failed`, `dependency`, ...).
    pub async fn run_jobs(
        &self,
        kind: JobKind,
        units: &[String],
        watched: &[String],
        progress: &mut dyn FnMut(&str, &str),
    ) -> Result<Vec<(String, String)>> {
        let mut removed = self.manager.receive_job_removed().await.map_err(explain)?;
        let mut pending: HashMap<OwnedObjectPath, Vec<String>> = HashMap::new();
        for unit in units {
            let job = match kind {
                JobKind::Start => self.manager.start_unit(unit, "replace").await,
                JobKind::Stop => self.manager.stop_unit(unit, "replace").await,
                JobKind::Restart => self.manager.restart_unit(unit, "replace").await,
            }
            .map_err(explain)
            .with_context(|| format!("cannot {} {unit}", kind.verb()))?;
            pending.entry(job).or_default().push(unit.clone());
        }
        let mut results = Vec::new();
        while !pending.is_empty() {
            let signal = removed.next().await.ok_or_else(|| {
                anyhow!("the connection to systemd closed while waiting for jobs")
            })?;
            let args = signal.args().context("malformed JobRemoved signal")?;
            if watched.iter().any(|w| w == args.unit()) {
                progress(args.unit(), args.result());
            }
            if let Some(units) = pending.remove(args.job()) {
                for unit in units {
                    results.push((unit, args.result().clone()));
                }
            }
        }
        Ok(results)
    }

    async fn properties(
        &self,
        path: &OwnedObjectPath,
        interface: &str,
    ) -> Result<HashMap<String, OwnedVariant>> {
        let proxy = zbus::fdo::PropertiesProxy::builder(&self.connection)
            .destination("org.freedesktop.systemd1")
            .path(path.as_ref())
            .build()
            .await?;
        let interface = zbus::names::InterfaceName::try_from(interface)?;
        proxy
            .get_all(interface)
            .await
            .map_err(|e| explain(e.into()))
    }

    pub async fn status(&self, unit: &str) -> Result<UnitStatus> {
        let path = self.manager.load_unit(unit).await.map_err(explain)?;
        let props = self
            .properties(&path, "org.freedesktop.systemd1.Unit")
            .await?;
        let text = |key: &str| property_text(&props, key);
        let mut status = UnitStatus {
            unit: unit.to_string(),
            load_state: text("LoadState"),
            active_state: text("ActiveState"),
            sub_state: text("SubState"),
            unit_file_state: text("UnitFileState"),
            since_usec: props
                .get("StateChangeTimestamp")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            ..UnitStatus::default()
        };
        if status.load_state == "loaded" && unit.ends_with(".service") {
            let service = self
                .properties(&path, "org.freedesktop.systemd1.Service")
                .await?;
            let text = |key: &str| property_text(&service, key);
            status.status_text = text("StatusText");
            status.result = text("Result");
            status.n_restarts = service
                .get("NRestarts")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
            status.main_pid = service
                .get("MainPID")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
        }
        Ok(status)
    }

    /// The last lines a unit logged, for error messages.
    pub fn last_log_lines(&self, status: &UnitStatus, lines: usize) -> Vec<String> {
        let mut command = journalctl();
        command.args(["-n", &lines.to_string(), "-o", "cat"]);
        // Not by invocation ID: user managers' units log without _SYSTEMD_INVOCATION_ID.
        command.args(unit_matches(&status.unit, &[]));
        command
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A string property, empty when absent or of another type.
fn property_text(properties: &HashMap<String, OwnedVariant>, key: &str) -> String {
    properties
        .get(key)
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default()
}

/// journalctl with the options every composectl use shares.
pub fn journalctl() -> Command {
    let mut command = Command::new("journalctl");
    command.args(["--no-pager", "-q"]);
    command
}

/// Matches for everything a unit logged, under a system or a user manager, each combined with
/// `extra` (journalctl ORs groups separated by `+` and ANDs matches within a group).
pub fn unit_matches(unit: &str, extra: &[String]) -> Vec<String> {
    let mut args = Vec::new();
    for (index, field) in ["_SYSTEMD_UNIT", "UNIT", "_SYSTEMD_USER_UNIT", "USER_UNIT"]
        .iter()
        .enumerate()
    {
        if index > 0 {
            args.push("+".to_string());
        }
        args.push(format!("{field}={unit}"));
        args.extend(extra.iter().cloned());
    }
    args
}

/// Fails with the unit's state and last log lines unless every job is done and every unit is
/// in the state the job should leave it in.
pub async fn check_outcome(
    systemd: &Systemd,
    kind: JobKind,
    results: &[(String, String)],
    watched: &[String],
) -> Result<()> {
    let mut failures = Vec::new();
    for unit in watched {
        let status = systemd.status(unit).await?;
        let job_result = results
            .iter()
            .find(|(u, _)| u == unit)
            .map(|(_, r)| r.as_str());
        let bad_job = job_result.is_some_and(|r| r != "done");
        // A stop is done when its job is: a unit that failed on the way down is still stopped.
        let bad_state = match kind {
            JobKind::Start | JobKind::Restart => {
                status.active_state == "failed"
                    || (job_result.is_some() && status.active_state != "active")
            }
            JobKind::Stop => false,
        };
        if bad_job || bad_state {
            let mut message = format!(
                "{unit}: {} ({}/{}{})",
                job_result.map_or("failed".to_string(), |r| format!("job {r}")),
                status.active_state,
                status.sub_state,
                if status.status_text.is_empty() {
                    String::new()
                } else {
                    format!(", {}", status.status_text)
                }
            );
            for line in systemd.last_log_lines(&status, 10) {
                message.push_str("\n    ");
                message.push_str(&line);
            }
            failures.push(message);
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
