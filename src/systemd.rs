//! A small systemd client over D-Bus (zbus on a current-thread tokio runtime: composectl makes
//! a handful of calls and waits for signals, it never needs more than one thread).
//!
//! Jobs are waited for without races: subscribe, start listening for `JobRemoved`, then start the
//! job and match the job path the reply names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use zbus::{Connection, proxy};
use zbus::{OwnedObjectPath, OwnedVariant};

use crate::graph::Graph;
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
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn list_units_by_names(&self, names: &[&str]) -> zbus::Result<Vec<ListedUnit>>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// One entry of `ListUnitsByNames`: name, description, load, active and sub state, followed unit,
/// object path, job id, job type, job path.
type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// A unit's state and pending job, for many units from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    pub active_state: String,
    pub sub_state: String,
    /// The type of the unit's pending job (`start`, `stop`, `restart`, ...), if it has one.
    pub job: Option<String>,
}

impl UnitState {
    /// Failed, and nothing will start it again unless someone asks (no job, no auto-restart).
    pub fn failed_for_good(&self) -> bool {
        self.active_state == "failed" && self.job.is_none()
    }
}

/// How often a running start is checked for units it waits on that failed for good.
const BLOCKED_CHECK: Duration = Duration::from_secs(1);

/// Jobs to run together: what to do, to which units, and which units to watch: the jobs' units
/// and, transitively, the units they require (their failures explain the jobs').
pub struct Jobs {
    kind: JobKind,
    units: Vec<String>,
    watched: Vec<String>,
    /// Units and the units they require, to see a start that waits for a unit that failed for
    /// good.
    requires: Graph,
}

/// How one queued job ended, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobOutcome {
    pub unit: String,
    /// systemd's job result: `done`, `failed`, `dependency`, `timeout`, ...; `waiting` for a
    /// start that waits for a unit that failed for good.
    pub result: String,
}

impl Jobs {
    pub fn new(
        kind: JobKind,
        mut units: Vec<String>,
        requires: BTreeMap<String, Vec<String>>,
    ) -> Jobs {
        // Required units without requirements of their own are nodes too, so depths count them.
        let leaves: BTreeSet<String> = requires
            .values()
            .flatten()
            .filter(|unit| !requires.contains_key(*unit))
            .cloned()
            .collect();
        let requires = Graph::new(
            requires
                .into_iter()
                .chain(leaves.into_iter().map(|unit| (unit, Vec::new())))
                .map(|(unit, required)| (unit, required, Vec::new())),
        );
        // Jobs are queued one call at a time. A stop queued for a required unit while a
        // dependent still waits to auto-restart lets that restart pull it up again (Wants=), so
        // stops go to dependents first; starts go to required units first, for symmetry.
        let depths = requires.depths();
        let depth = |unit: &String| depths.get(unit.as_str()).copied().unwrap_or(0);
        match kind {
            JobKind::Stop => units.sort_by_cached_key(|u| std::cmp::Reverse(depth(u))),
            _ => units.sort_by_cached_key(depth),
        }
        let watched = requires.closure(units.iter().map(String::as_str));
        Jobs {
            kind,
            units,
            watched: watched.into_iter().collect(),
            requires,
        }
    }

    /// A unit among `failed` that `unit` requires, directly or through others.
    fn failed_requirement(&self, unit: &str, failed: &BTreeSet<String>) -> Option<String> {
        self.requires
            .closure([unit])
            .into_iter()
            .find(|required| required != unit && failed.contains(required))
    }
}

/// How a queued job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobEnd {
    /// systemd's job result: `done`, `failed`, `dependency`, `timeout`, ...
    Result(String),
    /// Still waiting (its unit is activating) for this required unit, which failed for good.
    WaitsFor(String),
}

/// What to do with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Stop,
    Restart,
    Reload,
}

impl JobKind {
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
            JobKind::Reload => "reload",
        }
    }
}

/// What a status is for: everything a unit's status has (one unit, JSON, job outcomes), or a
/// table's columns (no main PID, the result only of failed units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Everything,
    Table,
}

/// A unit's state and what `status` shows of it.
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
    /// A slice's memory and CPU time, when systemd accounts for them (the memory and cpu
    /// controllers of cgroup v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_nsec: Option<u64>,
}

impl UnitStatus {
    /// What the supervisor says: its STATUS= text while it runs; for a unit that failed (or waits
    /// to be restarted after failing) its last words, marked as such; nothing for a stopped one,
    /// whose last text would be stale.
    pub fn status_line(&self) -> String {
        let last = self
            .status_text
            .strip_prefix("failed: ")
            .unwrap_or(&self.status_text);
        let last = if last.is_empty() { &self.result } else { last };
        if shows_last_failure(&self.active_state, &self.sub_state) {
            return match self.sub_state.as_str() {
                "auto-restart" => format!("restarting; last failure: {last}"),
                _ => format!("last failure: {last}"),
            };
        }
        match self.active_state.as_str() {
            "active" | "activating" | "deactivating" | "reloading" => self.status_text.clone(),
            _ => String::new(),
        }
    }
}

/// A unit that failed, or waits to be restarted after failing: its status line is its last
/// words, which may be its `Result`.
fn shows_last_failure(active_state: &str, sub_state: &str) -> bool {
    active_state == "failed" || sub_state == "auto-restart"
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
        // No property cache: it would fetch all of the manager's properties (several KiB) and
        // subscribe to their changes, and composectl reads none of them.
        let manager = ManagerProxy::builder(&connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(explain)?;
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

    /// Queues `kind` for each of `jobs.units`, waits until every job has finished (or waits only
    /// for a unit that failed for good), then checks that every watched unit is where the jobs
    /// should have left it; a failure names the unit at its root with its last journal lines.
    /// `progress` hears about every finished job of the watched units, in order.
    pub async fn run_jobs(
        &self,
        jobs: &Jobs,
        progress: &mut dyn FnMut(&str, &str),
    ) -> Result<Vec<JobOutcome>> {
        // JobRemoved is only sent to subscribed clients.
        self.manager.subscribe().await.map_err(explain)?;
        let mut removed = self.manager.receive_job_removed().await.map_err(explain)?;
        let mut pending: HashMap<OwnedObjectPath, Vec<String>> = HashMap::new();
        for unit in &jobs.units {
            let job = match jobs.kind {
                JobKind::Start => self.manager.start_unit(unit, "replace").await,
                JobKind::Stop => self.manager.stop_unit(unit, "replace").await,
                JobKind::Restart => self.manager.restart_unit(unit, "replace").await,
                JobKind::Reload => self.manager.reload_unit(unit, "replace").await,
            }
            .map_err(explain)
            .with_context(|| format!("cannot {} {unit}", jobs.kind.verb()))?;
            pending.entry(job).or_default().push(unit.clone());
        }
        let mut ends: Vec<(String, JobEnd)> = Vec::new();
        let mut tick = tokio::time::interval(BLOCKED_CHECK);
        while !pending.is_empty() {
            tokio::select! {
                signal = removed.next() => {
                    let signal = signal.ok_or_else(|| {
                        anyhow!("the connection to systemd closed while waiting for jobs")
                    })?;
                    let args = signal.args().context("malformed JobRemoved signal")?;
                    if jobs.watched.iter().any(|w| w == args.unit()) {
                        progress(args.unit(), args.result());
                    }
                    if let Some(units) = pending.remove(args.job()) {
                        for unit in units {
                            ends.push((unit, JobEnd::Result(args.result().clone())));
                        }
                    }
                }
                _ = tick.tick(), if matches!(jobs.kind, JobKind::Start | JobKind::Restart) => {
                    let failed: BTreeSet<String> = self
                        .unit_states(&jobs.watched)
                        .await?
                        .into_iter()
                        .filter(UnitState::failed_for_good)
                        .map(|state| state.unit)
                        .collect();
                    let waiting: Vec<(String, String)> = pending
                        .values()
                        .flatten()
                        .filter_map(|unit| Some((unit.clone(), jobs.failed_requirement(unit, &failed)?)))
                        .collect();
                    // A start that waits for a unit nothing restarts would only end at its timeout.
                    if waiting.len() == pending.values().map(Vec::len).sum::<usize>() {
                        ends.extend(waiting.into_iter().map(|(unit, on)| (unit, JobEnd::WaitsFor(on))));
                        break;
                    }
                }
            }
        }
        self.check_outcome(jobs, &ends).await?;
        Ok(ends
            .into_iter()
            .map(|(unit, end)| JobOutcome {
                unit,
                result: match end {
                    JobEnd::Result(result) => result,
                    JobEnd::WaitsFor(_) => "waiting".into(),
                },
            })
            .collect())
    }

    /// Fails with each unit's state, the unit at the root of the problem and its last log lines,
    /// unless every job is done and every watched unit is in the state its job should leave it.
    async fn check_outcome(&self, jobs: &Jobs, ends: &[(String, JobEnd)]) -> Result<()> {
        let mut failures = Vec::new();
        for status in self.statuses(&jobs.watched).await? {
            let unit = &status.unit;
            let end = ends.iter().find(|(u, _)| u == unit).map(|(_, end)| end);
            let message = match end {
                Some(JobEnd::WaitsFor(failed)) => format!(
                    "{unit}: not started yet: it waits for {failed}, which failed (see there); it starts by itself once {failed} is ready"
                ),
                Some(JobEnd::Result(result)) if result == "dependency" => {
                    self.dependency_failure(unit, &status).await?
                }
                Some(JobEnd::Result(result)) if result != "done" => {
                    self.describe(&status, &format!("job {result}"))
                }
                // A stop is done when its job is: a unit that failed on the way down is stopped.
                _ if jobs.kind == JobKind::Stop => continue,
                _ if status.active_state == "failed"
                    || (end.is_some() && status.active_state != "active") =>
                {
                    self.describe(&status, "failed")
                }
                _ => continue,
            };
            failures.push(message);
        }
        if !failures.is_empty() {
            bail!("{}", failures.join("\n"));
        }
        Ok(())
    }

    /// A unit's state, status text and last journal lines, after `what` happened to it.
    fn describe(&self, status: &UnitStatus, what: &str) -> String {
        let mut message = format!(
            "{}: {what} ({}/{}{})",
            status.unit,
            status.active_state,
            status.sub_state,
            if status.status_text.is_empty() {
                String::new()
            } else {
                format!(", {}", status.status_text)
            }
        );
        for line in self.last_log_lines(status, 10) {
            message.push_str("\n    ");
            message.push_str(&line);
        }
        message
    }

    /// A job ended `dependency`: the hard dependency that did not start is the root cause.
    async fn dependency_failure(&self, unit: &str, status: &UnitStatus) -> Result<String> {
        for dependency in self.hard_dependencies(unit).await? {
            let cause = self.status(&dependency).await?;
            if cause.active_state != "active" {
                return Ok(format!(
                    "{unit}: not started, because {}",
                    self.describe(&cause, "it did not start")
                ));
            }
        }
        Ok(self.describe(status, "job dependency"))
    }

    /// systemd's list entries of `units`, in their order, from one call.
    async fn list(&self, units: &[String]) -> Result<Vec<ListedUnit>> {
        let names: Vec<&str> = units.iter().map(String::as_str).collect();
        self.manager
            .list_units_by_names(&names)
            .await
            .map_err(explain)
    }

    /// The state and pending job of each unit, from one call.
    pub async fn unit_states(&self, units: &[String]) -> Result<Vec<UnitState>> {
        Ok(self
            .list(units)
            .await?
            .into_iter()
            .map(
                |(unit, _, _, active_state, sub_state, _, _, job_id, job, _)| UnitState {
                    unit,
                    active_state,
                    sub_state,
                    job: (job_id != 0).then_some(job),
                },
            )
            .collect())
    }

    /// Properties of one object, each its own `Get` (all in flight at once): `GetAll` makes
    /// systemd write out, and composectl parse, a few hundred properties to read six.
    async fn properties(
        &self,
        path: &OwnedObjectPath,
        wanted: &[(&'static str, &'static str)],
    ) -> Result<HashMap<&'static str, OwnedVariant>> {
        // No property cache: it would subscribe to PropertiesChanged, a round trip per proxy.
        let proxy = zbus::fdo::PropertiesProxy::builder(&self.connection)
            .destination("org.freedesktop.systemd1")
            .path(path.as_ref())
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let values = futures_util::future::try_join_all(wanted.iter().map(|(interface, key)| {
            let proxy = &proxy;
            async move {
                let interface = zbus::names::InterfaceName::try_from(*interface)?;
                let value = proxy
                    .get(interface, key)
                    .await
                    .map_err(|e| explain(e.into()))?;
                anyhow::Ok((*key, value))
            }
        }))
        .await?;
        Ok(values.into_iter().collect())
    }

    pub async fn status(&self, unit: &str) -> Result<UnitStatus> {
        let mut statuses = self.statuses(&[unit.to_string()]).await?;
        statuses
            .pop()
            .ok_or_else(|| anyhow!("systemd did not list {unit}"))
    }

    /// The status of many units: their states from one call, then for the loaded ones the few
    /// properties shown, all asked at once (one round trip's wait, not one per unit).
    pub async fn statuses(&self, units: &[String]) -> Result<Vec<UnitStatus>> {
        self.statuses_of(units, Shown::Everything).await
    }

    /// [`Self::statuses`] with only the properties `shown` needs: each `Get` is a message built,
    /// routed by the bus and answered by the manager, which is most of what a status of many
    /// stacks costs on a busy host.
    pub async fn statuses_of(&self, units: &[String], shown: Shown) -> Result<Vec<UnitStatus>> {
        const UNIT: &str = "org.freedesktop.systemd1.Unit";
        const SERVICE: &str = "org.freedesktop.systemd1.Service";
        const SLICE: &str = "org.freedesktop.systemd1.Slice";
        let listed = self.list(units).await?;
        futures_util::future::try_join_all(listed.into_iter().map(
            |(unit, _, load_state, active_state, sub_state, _, path, _, _, _)| async move {
                let mut wanted = Vec::new();
                if load_state == "loaded" {
                    wanted.extend([(UNIT, "UnitFileState"), (UNIT, "StateChangeTimestamp")]);
                    // The rest only services have.
                    if unit.ends_with(".service") {
                        wanted.extend([(SERVICE, "StatusText"), (SERVICE, "NRestarts")]);
                        let everything = shown == Shown::Everything;
                        // A table shows the result only in a failed unit's status line.
                        if everything || shows_last_failure(&active_state, &sub_state) {
                            wanted.push((SERVICE, "Result"));
                        }
                        if everything {
                            wanted.push((SERVICE, "MainPID"));
                        }
                    }
                    if unit.ends_with(".slice") && active_state == "active" {
                        wanted.extend([(SLICE, "MemoryCurrent"), (SLICE, "CPUUsageNSec")]);
                    }
                }
                let props = self.properties(&path, &wanted).await?;
                let text = |key: &str| property_text(&props, key);
                let number = |key: &str| props.get(key).and_then(|v| u64::try_from(v).ok());
                Ok(UnitStatus {
                    unit_file_state: text("UnitFileState"),
                    since_usec: number("StateChangeTimestamp").unwrap_or(0),
                    status_text: text("StatusText"),
                    result: text("Result"),
                    n_restarts: props
                        .get("NRestarts")
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(0),
                    main_pid: props
                        .get("MainPID")
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(0),
                    // systemd says "not accounted" with the largest u64.
                    memory_bytes: number("MemoryCurrent").filter(|n| *n != u64::MAX),
                    cpu_nsec: number("CPUUsageNSec").filter(|n| *n != u64::MAX),
                    unit,
                    load_state,
                    active_state,
                    sub_state,
                })
            },
        ))
        .await
    }

    /// Requires=, Requisite= and BindsTo=: the units whose failure fails `unit`'s start.
    async fn hard_dependencies(&self, unit: &str) -> Result<Vec<String>> {
        const UNIT: &str = "org.freedesktop.systemd1.Unit";
        let path = self.manager.load_unit(unit).await.map_err(explain)?;
        let props = self
            .properties(
                &path,
                &[(UNIT, "Requires"), (UNIT, "Requisite"), (UNIT, "BindsTo")],
            )
            .await?;
        Ok(props
            .into_values()
            .filter_map(|v| Vec::<String>::try_from(v).ok())
            .flatten()
            .collect())
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
fn property_text(properties: &HashMap<&str, OwnedVariant>, key: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, sub: &str, text: &str) -> UnitStatus {
        UnitStatus {
            active_state: active.into(),
            sub_state: sub.into(),
            status_text: text.into(),
            result: "exit-code".into(),
            ..UnitStatus::default()
        }
    }

    #[test]
    fn stops_go_to_dependents_first_and_starts_to_required_units_first() {
        let requires: BTreeMap<String, Vec<String>> = [
            ("genai", vec!["database", "panel"]),
            ("database", vec!["storage"]),
            ("panel", vec![]),
        ]
        .into_iter()
        .map(|(unit, required)| {
            let required = required.into_iter().map(String::from).collect();
            (unit.to_string(), required)
        })
        .collect();
        let units: Vec<String> = ["panel", "genai", "storage", "database"]
            .map(String::from)
            .to_vec();
        let stop = Jobs::new(JobKind::Stop, units.clone(), requires.clone());
        assert_eq!(stop.units, ["genai", "database", "panel", "storage"]);
        let start = Jobs::new(JobKind::Start, units, requires);
        assert_eq!(start.units, ["panel", "storage", "database", "genai"]);
    }

    #[test]
    fn status_text_is_shown_while_running_and_marked_after_a_failure() {
        assert_eq!(
            unit("active", "running", "1/1 running").status_line(),
            "1/1 running"
        );
        assert_eq!(
            unit("failed", "failed", "failed: app exited with code 3").status_line(),
            "last failure: app exited with code 3"
        );
        assert_eq!(
            unit("activating", "auto-restart", "failed: app exited").status_line(),
            "restarting; last failure: app exited"
        );
        assert_eq!(
            unit("failed", "failed", "").status_line(),
            "last failure: exit-code"
        );
        assert_eq!(
            unit("inactive", "dead", "stopping (compose down)").status_line(),
            ""
        );
    }
}
