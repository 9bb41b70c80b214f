//! The fault suite (issues 8 and 22): every fault a server meets, caused for real from the three
//! layered stacks all ready (testkit/src/layered.rs; database is PostgreSQL, a token written into
//! its named volume first), in a private `systemd --user` manager on the host's engine (`user`)
//! and in the system-mode guest with systemd as PID 1 (`guest`), while a client commits rows into
//! the database and remembers each commit PostgreSQL acknowledged (testkit/src/database.rs). It
//! prints one Markdown table row per fault and environment: whether the stacks came back by
//! themselves, how long until all were ready (from the fault, or from the engine's return for an
//! engine outage), whether genai (which requires database) was restarted for it, whether the
//! volume's token survived, how many acknowledged rows are missing, and how PostgreSQL found its
//! data when it started again (after a clean shutdown, or with crash recovery).
//!
//! Times are reported, never asserted. The exit code is non-zero when a row fails what must
//! hold: the stacks came back by themselves, the token is there, no acknowledged row is lost,
//! no start needed crash recovery unless the fault itself killed PostgreSQL, and a fault that
//! stops the database (stop, reboot, restart of the engine, reload, update) ended with a clean
//! shutdown.
//!
//!   cargo test --test faults -- --include-ignored [--env user|guest|all] [--fault NAME]
//!                                                 [--serial] [FILTER]
//!
//! The two environments run at the same time, each its rows one after another: they share no
//! engine (the guest's docker.service runs in its own network namespace), and a row that takes
//! the host's dockerd or journald down holds the host's lock, which only the user rows take.
//! `--serial` runs the guest's rows after the user's, for times measured without the other
//! environment's load. The table is printed when both are done, user rows first.
//!
//! Without `--include-ignored` (or `--ignored`) it only says it was ignored, so `cargo test`
//! stays quick; with it, a missing environment is a failure, as for the other end-to-end tests.
//! FILTER (what `cargo test FILTER` passes to every test binary) keeps the faults whose name
//! contains it. Faults that take down the host's dockerd or journald hold the exclusive side of
//! the lock every e2e test process holds shared (testkit/src/e2e.rs), so they never run while
//! another test needs the host's engine.

// The table and its progress lines are this runner's output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod fault;
mod target;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use composectl_testkit::database::{self, Starts};
use composectl_testkit::{e2e, guest};
use fault::{Caused, Fault, HostOutage};
use target::{Kind, Target, tail};

/// How long the stacks get to be ready again after a fault before the row says "no".
pub const LIMIT: Duration = Duration::from_secs(300);
/// Ready all along for this long after a fault that may leave the stacks untouched: absorbed.
const SETTLE: Duration = Duration::from_secs(30);
/// A unit down with no job queued for this long: nothing will bring it back.
const STUCK: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);
/// Commits acknowledged before the fault, so that it strikes mid-write, and after it.
const WRITES_BEFORE: usize = 20;
const WRITES_AFTER: usize = 10;
/// How long the writer gets to commit again once the stacks are ready.
const WRITES_AGAIN: Duration = Duration::from_secs(20);

const USAGE: &str = "usage: cargo test --test faults -- --include-ignored \
                     [--env user|guest|all] [--fault NAME] [--serial] [FILTER]";

struct Args {
    help: bool,
    run: bool,
    serial: bool,
    kinds: Vec<Kind>,
    faults: Vec<Fault>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut help = false;
    let mut run = false;
    let mut serial = false;
    let mut kinds = vec![Kind::User, Kind::Guest];
    let mut only: Option<Fault> = None;
    let mut filter: Option<String> = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--include-ignored" | "--ignored" => run = true,
            "--env" => {
                kinds = match value().as_deref() {
                    Some("user") => vec![Kind::User],
                    Some("guest") => vec![Kind::Guest],
                    Some("all") => vec![Kind::User, Kind::Guest],
                    other => {
                        return Err(format!(
                            "--env {}: user, guest or all",
                            other.unwrap_or("(missing)")
                        ));
                    }
                }
            }
            "--fault" => {
                let name = value().unwrap_or_default();
                only = Some(
                    Fault::ALL
                        .into_iter()
                        .find(|f| f.name() == name)
                        .ok_or_else(|| {
                            let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                            format!("--fault {name:?}: one of {}", names.join(", "))
                        })?,
                );
            }
            "--serial" => serial = true,
            "-h" | "--help" => help = true,
            // libtest's options that take a value (cargo passes them to every test binary).
            "--test-threads" | "--skip" | "--color" | "--format" | "--logfile" | "-Z" => {
                value();
            }
            f if f.starts_with('-') => {} // other libtest flags (--nocapture, --quiet, ...)
            _ => filter = Some(arg),
        }
    }
    let faults = Fault::ALL
        .into_iter()
        .filter(|f| only.is_none_or(|o| o == *f))
        .filter(|f| {
            filter
                .as_ref()
                .is_none_or(|s| f.name().contains(s.as_str()))
        })
        .collect();
    Ok(Args {
        help,
        run,
        serial,
        kinds,
        faults,
    })
}

/// One line of the table.
struct Row {
    kind: Kind,
    fault: Fault,
    came_back: bool,
    seconds: Option<f64>,
    containers_recreated: Option<bool>,
    unit_restarted: Option<bool>,
    /// None when the volume cannot be read (the engine is away).
    data_intact: Option<bool>,
    /// Commits PostgreSQL acknowledged during the row, and how many of them are missing (None
    /// when the table could not be read).
    acknowledged: usize,
    lost: Option<usize>,
    /// PostgreSQL's starts after the fault.
    starts: Starts,
    notes: Vec<String>,
}

impl Row {
    /// A row that says "no" until measured.
    fn new(kind: Kind, fault: Fault) -> Row {
        Row {
            kind,
            fault,
            came_back: false,
            seconds: None,
            containers_recreated: None,
            unit_restarted: None,
            data_intact: None,
            acknowledged: 0,
            lost: None,
            starts: Starts::default(),
            notes: Vec::new(),
        }
    }

    fn holds(&self) -> bool {
        self.came_back
            && self.data_intact == Some(true)
            && self.lost == Some(0)
            && (self.fault.kills_database() || self.starts.with_recovery == 0)
            && (!self.fault.stops_database() || self.starts.after_clean_shutdown > 0)
    }

    /// How PostgreSQL found its data on its starts after the fault.
    fn shutdown(&self) -> String {
        match (self.starts.after_clean_shutdown, self.starts.with_recovery) {
            (0, 0) => "not stopped".into(),
            (clean, 0) => format!("yes ({clean} start{} after it)", plural(clean)),
            (clean, recovered) => format!(
                "no: {recovered} of {} start{} recovered from a crash{}",
                clean + recovered,
                plural(clean + recovered),
                if self.fault.kills_database() {
                    " (the fault kills it)"
                } else {
                    ""
                }
            ),
        }
    }

    fn markdown(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let maybe = |b: Option<bool>| b.map_or("?", yes);
        let notes = self.notes.join("; ").replace('|', "/").replace('\n', " ");
        format!(
            "| {} | {} | {} | {} | containers: {}, unit: {} | {} | {} of {} | {} | {} |",
            self.kind.name(),
            self.fault.title(self.kind),
            yes(self.came_back),
            self.seconds.map_or("-".into(), |s| format!("{s:.1}")),
            maybe(self.containers_recreated),
            maybe(self.unit_restarted),
            maybe(self.data_intact),
            self.lost.map_or("?".into(), |n| n.to_string()),
            self.acknowledged,
            self.shutdown(),
            notes
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

enum Recovery {
    Ready { after: Duration, seen_broken: bool },
    Not(String),
}

/// Polls until all stacks are ready again, after they were seen not ready (or stayed ready for
/// [`SETTLE`]); gives up after [`LIMIT`] from the origin, or when a unit is down with no job left
/// that could start it.
fn recover(target: &Target, start: Instant, caused: &Caused) -> Recovery {
    let mut seen_broken = caused.broken;
    let mut stuck_since: Option<Instant> = None;
    let mut last = String::new();
    loop {
        let now = Instant::now();
        match target.not_ready() {
            None if seen_broken || now - start >= SETTLE => {
                return Recovery::Ready {
                    after: now.saturating_duration_since(caused.origin),
                    seen_broken,
                };
            }
            None => stuck_since = None,
            Some(why) => {
                seen_broken = true;
                last = why;
                let down = target.units().iter().any(|u| {
                    matches!(
                        u.get("ActiveState").map(String::as_str),
                        Some("inactive" | "failed")
                    )
                });
                if down && !target.jobs_pending() {
                    let since = *stuck_since.get_or_insert(now);
                    if now - since >= STUCK {
                        return Recovery::Not(format!(
                            "stuck (down, no job queued for {} s): {last}",
                            STUCK.as_secs()
                        ));
                    }
                } else {
                    stuck_since = None;
                }
            }
        }
        if now.saturating_duration_since(caused.origin) >= LIMIT {
            return Recovery::Not(format!("after {} s: {last}", LIMIT.as_secs()));
        }
        sleep(POLL);
    }
}

/// Runs one fault in a fresh target and measures it.
fn run_row(kind: Kind, fault: Fault, run: u8) -> Row {
    let mut row = Row::new(kind, fault);
    let token = format!("token-{}-{run}", std::process::id());
    let mut target = match Target::new(kind, run, &token) {
        Ok(target) => target,
        Err(e) => {
            row.notes.push(format!("setup failed: {e}"));
            return row;
        }
    };
    let before = target.snapshot();
    let sh = |script: &str| target.sh(script);
    let writer = match target.start_writer().and_then(|writer| {
        writer.wait_for_more(&sh, WRITES_BEFORE, LIMIT)?;
        Ok(writer)
    }) {
        Ok(writer) => writer,
        Err(e) => {
            row.notes.push(format!("writer: {e}"));
            return row;
        }
    };
    let database_unit = format!("compose@{}.service", target.stacks().database());
    let log_before = target.journal(&database_unit).len();
    let outage = (kind == Kind::User && fault.takes_host_daemons()).then(HostOutage::take);
    let start = Instant::now();
    let recovered = fault::cause(fault, &mut target).and_then(|caused| {
        row.notes.extend(caused.notes.iter().cloned());
        match recover(&target, start, &caused) {
            Recovery::Ready { after, seen_broken } => {
                if fault.engine_outage() {
                    let total = caused.origin.saturating_duration_since(start) + after;
                    row.notes.push(format!(
                        "all ready {:.1} s after the fault itself",
                        total.as_secs_f64()
                    ));
                }
                Ok((after, seen_broken))
            }
            Recovery::Not(why) => Err(why),
        }
    });
    match recovered {
        Ok((after, seen_broken)) => {
            row.came_back = true;
            row.seconds = Some(if seen_broken {
                after.as_secs_f64()
            } else {
                0.0
            });
            if !seen_broken {
                row.notes
                    .push(format!("ready all along ({} s watched)", SETTLE.as_secs()));
            }
        }
        Err(why) => {
            row.notes.push(why);
            for unit in target.units() {
                let id = unit.get("Id").cloned().unwrap_or_default();
                if unit.get("ActiveState").map(String::as_str) != Some("active") {
                    row.notes
                        .push(format!("{id} journal: {}", tail(&target.journal(&id), 3)));
                }
            }
        }
    }
    if fault == Fault::JournaldRestart && row.came_back {
        let flows = fault::logs_flow(&target);
        row.notes.push(format!(
            "container lines reach the journal afterwards: {}",
            if flows { "yes" } else { "no" }
        ));
    }
    let after = target.snapshot();
    row.containers_recreated = Some(after.genai_container != before.genai_container);
    row.unit_restarted = Some(after.genai_invocation != before.genai_invocation);
    row.data_intact = target.token().map(|t| t == token);
    let sh = |script: &str| target.sh(script);
    if row.came_back {
        // Writes go on after the fault (the guest's writer went down with a reboot).
        let _ = writer.wait_for_more(&sh, WRITES_AFTER, WRITES_AGAIN);
    }
    let acknowledged = writer.stop(&sh);
    row.acknowledged = acknowledged.len();
    match database::lost(
        &|args| target.docker(args),
        &target.database_container(),
        &acknowledged,
    ) {
        Ok(lost) => row.lost = Some(lost),
        Err(e) => row.notes.push(e),
    }
    let log = target.journal(&database_unit);
    row.starts = Starts::of(log.get(log_before..).unwrap_or_default());
    drop(outage);
    row
}

/// Panics with what is missing when `kind` is not there: asked for, so required.
fn require(kind: Kind) {
    match kind {
        Kind::User => e2e::environment(),
        // Taken and given back at once: the check, and a clean guest.
        Kind::Guest => drop(guest::guest()),
    }
}

/// Every row of `kind`, one after another; progress on stderr.
fn run_kind(kind: Kind, faults: &[Fault]) -> Vec<Row> {
    require(kind);
    // Runs number the engine objects' names: distinct per environment, which may run at once.
    let first: u8 = match kind {
        Kind::User => 0,
        Kind::Guest => 100,
    };
    let mut rows = Vec::new();
    for (fault, run) in faults
        .iter()
        .copied()
        .filter(|f| f.applies(kind))
        .zip(first..)
    {
        eprintln!("faults: {} {} ...", kind.name(), fault.name());
        let began = Instant::now();
        let row =
            catch_unwind(AssertUnwindSafe(|| run_row(kind, fault, run))).unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let mut row = Row::new(kind, fault);
                row.notes.push(format!("the runner panicked: {why}"));
                row
            });
        eprintln!(
            "faults: {} {} took {:.0} s (setup, fault, recovery, teardown){}",
            kind.name(),
            fault.name(),
            began.elapsed().as_secs_f64(),
            if row.holds() { "" } else { ": FAILED" }
        );
        rows.push(row);
    }
    rows
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !args.run {
        println!(
            "faults: ignored (takes minutes and real engine outages; \
             run: cargo test --test faults -- --include-ignored)"
        );
        return ExitCode::SUCCESS;
    }
    if args.faults.is_empty() {
        println!("faults: none matches the filter");
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Row> = if args.serial {
        args.kinds
            .iter()
            .flat_map(|&kind| run_kind(kind, &args.faults))
            .collect()
    } else {
        let faults = &args.faults;
        std::thread::scope(|scope| {
            let runs: Vec<_> = args
                .kinds
                .iter()
                .map(|&kind| scope.spawn(move || run_kind(kind, faults)))
                .collect();
            runs.into_iter()
                .flat_map(|run| run.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    println!(
        "| env | fault | came back by itself | s until all ready | dependents restarted | volume data intact | acknowledged rows lost | clean shutdown | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!("{}", row.markdown());
    }
    let failed = rows.iter().filter(|row| !row.holds()).count();
    let rows = rows.len();
    println!(
        "\nfaults: {rows} rows, {failed} where the stacks did not come back by themselves, lost data or did not shut down cleanly"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
