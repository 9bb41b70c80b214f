//! The scale benchmark (issue 11): the same layered stacks started by composectl and by the
//! other ways people start compose stacks, side by side in one run, against an ideal
//! orchestrator, in a private `systemd --user` manager on the host's engine (the end-to-end
//! tests' harness and fixtures).
//!
//!   cargo bench --bench scale -- [--stacks N] [--runs K] [--idle SECONDS] [--only S,...]
//!                                [--skip S,...] [--render N] [--no-warmup] [--json]
//!
//! Strategies: ideal, composectl, oneshot, foreground, naive (see strategy.rs). Per strategy: time
//! until every stack is healthy (median, min, max) and over the ideal one's, ordering violations,
//! memory and idle CPU per stack, how long a status takes, and how long a unit takes to notice a
//! container's death; then the time `composectl render` takes for `--render` stacks (200). A
//! Markdown table on stdout, or JSON with `--json`; progress on stderr. Times are reported, never
//! asserted: the exit code is 1 only when a run failed.
//!
//! As root, after `scripts/provision-e2e.sh`. `cargo bench` passes `--bench`; without it (as
//! `cargo test --benches` runs it) it only says how to run it.

// The table and the progress lines are this runner's output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod engine;
mod measure;
mod report;
mod strategy;
mod topology;

use std::process::{Command, ExitCode, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use composectl_testkit::e2e;
use engine::Recorder;
use measure::{all_healthy, ordering_violations, phases, seconds};
use report::{Machine, Report, Run};
use strategy::{Bench, LIMIT, Strategy};
use topology::{Topology, layer_sizes};

const USAGE: &str = "usage: cargo bench --bench scale -- [--stacks N] [--runs K] [--idle SECONDS] \
                     [--only S,...] [--skip S,...] [--render N] [--no-warmup] [--json]\n\
                     strategies: ideal, composectl, oneshot, foreground, naive";

/// How many times each status and render is timed.
const TIMES: usize = 10;

struct Args {
    bench: bool,
    help: bool,
    stacks: usize,
    runs: usize,
    idle: Duration,
    render: usize,
    warmup: bool,
    json: bool,
    strategies: Vec<Strategy>,
    /// The command line, for the report.
    given: Vec<String>,
}

fn strategies(list: &str) -> Result<Vec<Strategy>, String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|name| {
            Strategy::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| format!("unknown strategy {name:?}"))
        })
        .collect()
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        bench: false,
        help: false,
        stacks: 24,
        runs: 3,
        idle: Duration::from_secs(20),
        render: 200,
        warmup: true,
        json: false,
        strategies: Strategy::ALL.to_vec(),
        given: Vec::new(),
    };
    let number = |flag: &str, value: Option<String>| -> Result<usize, String> {
        value
            .as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    };
    while let Some(arg) = args.next() {
        if arg != "--bench" {
            parsed.given.push(arg.clone());
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            let value = inline.clone().or_else(|| args.next());
            if inline.is_none()
                && let Some(v) = &value
            {
                parsed.given.push(v.clone());
            }
            value
        };
        match flag.as_str() {
            "--bench" => parsed.bench = true,
            "-h" | "--help" => parsed.help = true,
            "--stacks" => parsed.stacks = number("--stacks", value())?.max(1),
            "--runs" => parsed.runs = number("--runs", value())?.max(1),
            "--idle" => parsed.idle = Duration::from_secs(number("--idle", value())? as u64),
            "--render" => parsed.render = number("--render", value())?,
            "--only" => parsed.strategies = strategies(&value().unwrap_or_default())?,
            "--skip" => {
                let skipped = strategies(&value().unwrap_or_default())?;
                parsed.strategies.retain(|s| !skipped.contains(s));
            }
            "--no-warmup" => parsed.warmup = false,
            "--json" => parsed.json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// One run of one strategy, from nothing to torn down again.
fn run_one(bench: &Bench, strategy: Strategy, run: usize, idle: Duration) -> Run {
    let mut result = Run::new(strategy, run);
    let recorder = Recorder::start(&bench.topology.prefix());
    if let Err(e) = measure_run(bench, strategy, &recorder, idle, &mut result) {
        result.error = Some(e);
    }
    drop(recorder);
    if let Err(e) = bench.teardown(strategy) {
        result.error.get_or_insert(e);
    }
    result
}

fn measure_run(
    bench: &Bench,
    strategy: Strategy,
    recorder: &Recorder,
    idle: Duration,
    result: &mut Run,
) -> Result<(), String> {
    let topology = &bench.topology;
    let started = bench.start(strategy)?;
    result.returned = Some(seconds(started.returned - started.t0));
    let mut healthy = None;
    recorder.wait(LIMIT, |events| {
        healthy = all_healthy(topology, events, started.t0);
        healthy.is_some()
    });
    result.all_healthy = Some(healthy.ok_or("not every stack turned healthy")?);
    let events = recorder.events();
    result.violations = ordering_violations(topology, &events, started.t0);
    result.phases = phases(topology, &events, started.t0);

    let units = measure::units(&bench.manager, &strategy.units(topology));
    let ready: Vec<measure::Memory> = units.iter().map(measure::Unit::memory_kib).collect();
    let cpu_before: u64 = units.iter().map(measure::Unit::cpu_usec).sum();
    let idle_began = Instant::now();
    sleep(idle);
    let cpu = units.iter().map(measure::Unit::cpu_usec).sum::<u64>() - cpu_before;
    if !units.is_empty() && !idle.is_zero() {
        let per_stack = cpu as f64 / 1e6 / idle_began.elapsed().as_secs_f64() / units.len() as f64;
        result.idle_cpu_percent = Some(per_stack * 100.0);
    }
    result.memory_kib = units
        .iter()
        .zip(ready)
        .map(|(unit, ready)| ready.max(unit.memory_kib()))
        .collect();
    result.status_seconds = Some(bench.status_seconds(strategy, TIMES)?);
    result.detection = Some(bench.detection(strategy, recorder)?);
    Ok(())
}

/// `composectl render` of a root of `n` stacks in the same layers, in seconds (median).
fn render_seconds(n: usize) -> Result<f64, String> {
    let topology = Topology::new(n);
    let mut command = Command::new(composectl_testkit::bin());
    command
        .arg("--root")
        .arg(topology.stacks.root())
        .arg("render");
    let out = e2e::run_with_timeout(&mut command, LIMIT);
    if !out.status.success() {
        return Err(format!("render: {}", e2e::stderr_of(&out)));
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    Ok(measure::median_seconds(TIMES, || {
        let _ = command.status();
    }))
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
    if !args.bench {
        println!("scale: a benchmark, not a test; run it with cargo bench --bench scale");
        return ExitCode::SUCCESS;
    }
    e2e::environment();
    let load_before = report::load();
    let bench = Bench::new(Topology::new(args.stacks));
    if args.warmup {
        eprintln!("scale: warm-up (not measured)");
        run_one(&bench, Strategy::Naive, 0, Duration::ZERO);
    }
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        // Each run begins with the next strategy: whichever follows another's teardown starts on
        // a busier engine, so no strategy always pays for it.
        let mut order = args.strategies.clone();
        let first = (run - 1) % order.len().max(1);
        order.rotate_left(first);
        for strategy in &order {
            eprintln!("scale: {} #{run}/{} ...", strategy.name(), args.runs);
            let result = run_one(&bench, *strategy, run, args.idle);
            eprintln!("scale: {} #{run}: {}", strategy.name(), result.line());
            runs.push(result);
        }
    }
    drop(bench);
    let render = (args.render > 0).then(|| {
        eprintln!("scale: render of {} stacks ...", args.render);
        render_seconds(args.render).unwrap_or_else(|e| {
            eprintln!("scale: {e}");
            f64::NAN
        })
    });
    let command = format!("cargo bench --bench scale -- {}", args.given.join(" "));
    let report = Report::new(
        command.trim_end().to_string(),
        layer_sizes(args.stacks),
        Machine::describe(load_before),
        &args.strategies,
        runs,
        (args.render, render.filter(|r| r.is_finite())),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report as JSON")
        );
    } else {
        println!("{}", report.markdown());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
