//! The runs summed up per strategy: a Markdown table, the targets of issue 11, and the same as
//! JSON for machines.

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::measure::{Memory, Phases, median};
use crate::strategy::{Detection, Strategy};

/// One run of one strategy.
#[derive(Debug, Serialize)]
pub struct Run {
    pub strategy: &'static str,
    pub run: usize,
    pub error: Option<String>,
    /// Seconds from the start until every stack was healthy (the engine's timestamps).
    pub all_healthy: Option<f64>,
    /// Seconds until the strategy's own command returned.
    pub returned: Option<f64>,
    pub violations: Vec<String>,
    pub phases: Option<Phases>,
    /// Per stack: memory of the processes of its unit (the larger of two samples: once all are
    /// healthy, and after the idle time).
    pub memory_kib: Vec<Memory>,
    /// CPU of the units' processes while idle, per stack, in % of one core.
    pub idle_cpu_percent: Option<f64>,
    pub status_seconds: Option<f64>,
    pub detection: Option<Detection>,
}

impl Run {
    pub fn new(strategy: Strategy, run: usize) -> Run {
        Run {
            strategy: strategy.name(),
            run,
            error: None,
            all_healthy: None,
            returned: None,
            violations: Vec::new(),
            phases: None,
            memory_kib: Vec::new(),
            idle_cpu_percent: None,
            status_seconds: None,
            detection: None,
        }
    }

    /// One line for the progress output.
    pub fn line(&self) -> String {
        match (&self.error, self.all_healthy) {
            (Some(error), _) => format!("FAILED: {error}"),
            (None, Some(all)) => format!(
                "all healthy after {all:.3} s, {} ordering violation(s)",
                self.violations.len()
            ),
            (None, None) => "no measurement".into(),
        }
    }
}

/// Smallest, median and largest.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: median(values)?,
            min: values.iter().copied().reduce(f64::min)?,
            max: values.iter().copied().reduce(f64::max)?,
        })
    }
}

/// One strategy over all its runs.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub strategy: &'static str,
    pub title: &'static str,
    pub runs: usize,
    pub ok: usize,
    pub all_healthy: Option<Spread>,
    /// Median all-healthy time over the ideal orchestrator's.
    pub ratio: Option<f64>,
    pub violations: usize,
    /// Each phase's median over the runs.
    pub phases: Option<Phases>,
    /// MiB per stack, over every stack of every run.
    pub rss_mib: Option<Spread>,
    pub pss_mib: Option<Spread>,
    pub private_mib: Option<Spread>,
    pub idle_cpu_percent: Option<f64>,
    pub status_ms: Option<f64>,
    /// Median seconds, over the runs whose unit left `active`.
    pub detection_s: Option<f64>,
    /// Runs whose unit never left `active`; None without units.
    pub never_detected: Option<usize>,
    pub errors: Vec<String>,
}

fn summarise(strategy: Strategy, runs: &[Run], ideal: Option<f64>) -> Summary {
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| r.strategy == strategy.name())
        .collect();
    let ok: Vec<&Run> = mine.iter().copied().filter(|r| r.error.is_none()).collect();
    let all_healthy = Spread::of(&ok.iter().filter_map(|r| r.all_healthy).collect::<Vec<_>>());
    let mib = |pick: fn(&Memory) -> u64| {
        let values: Vec<f64> = ok
            .iter()
            .flat_map(|r| &r.memory_kib)
            .map(|memory| pick(memory) as f64 / 1024.0)
            .collect();
        Spread::of(&values)
    };
    let median_of = |pick: fn(&Run) -> Option<f64>| {
        median(&ok.iter().filter_map(|r| pick(r)).collect::<Vec<_>>())
    };
    let detections: Vec<Detection> = ok.iter().filter_map(|r| r.detection).collect();
    let after: Vec<f64> = detections
        .iter()
        .filter_map(|d| match d {
            Detection::After(s) => Some(*s),
            _ => None,
        })
        .collect();
    Summary {
        strategy: strategy.name(),
        title: strategy.title(),
        runs: mine.len(),
        ok: ok.len(),
        ratio: all_healthy.zip(ideal).map(|(a, i)| a.median / i),
        all_healthy,
        violations: ok.iter().map(|r| r.violations.len()).sum(),
        phases: Phases::median(&ok.iter().filter_map(|r| r.phases).collect::<Vec<_>>()),
        rss_mib: mib(|m| m.rss),
        pss_mib: mib(|m| m.pss),
        private_mib: mib(|m| m.private),
        idle_cpu_percent: median_of(|r| r.idle_cpu_percent),
        status_ms: median_of(|r| r.status_seconds).map(|s| s * 1000.0),
        detection_s: median(&after),
        never_detected: (!detections.iter().all(|d| *d == Detection::NoUnit)).then(|| {
            detections
                .iter()
                .filter(|d| **d == Detection::Never)
                .count()
        }),
        errors: mine.iter().filter_map(|r| r.error.clone()).collect(),
    }
}

/// Where the benchmark ran.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: u64,
    pub kernel: String,
    pub engine: String,
    pub compose: String,
    pub systemd: String,
    pub load_before: String,
    pub load_after: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The 1, 5 and 15 minute load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn describe(load_before: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu: cpuinfo
                .lines()
                .find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim()))
                .unwrap_or_default()
                .to_string(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: meminfo
                .lines()
                .find_map(|l| {
                    l.strip_prefix("MemTotal:")?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .map_or(0, |kib: u64| (kib + (1 << 19)) >> 20),
            kernel: first_line("uname", &["-r"]),
            engine: first_line("docker", &["version", "--format", "{{.Server.Version}}"]),
            compose: first_line("docker", &["compose", "version", "--short"]),
            systemd: first_line("systemctl", &["--version"]),
            load_before,
            load_after: load(),
        }
    }
}

/// Issue 11's targets, for composectl.
#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// None: not measured.
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub stacks: usize,
    pub layers: Vec<usize>,
    pub machine: Machine,
    pub summary: Vec<Summary>,
    pub render_stacks: usize,
    pub render_ms: Option<f64>,
    pub targets: Vec<Target>,
    pub runs: Vec<Run>,
}

impl Report {
    pub fn new(
        command: String,
        layers: Vec<usize>,
        machine: Machine,
        strategies: &[Strategy],
        runs: Vec<Run>,
        render: (usize, Option<f64>),
    ) -> Report {
        let ideal = summarise(Strategy::Ideal, &runs, None)
            .all_healthy
            .map(|s| s.median);
        let summary: Vec<Summary> = strategies
            .iter()
            .map(|s| summarise(*s, &runs, ideal))
            .collect();
        let render_ms = render.1.map(|s| s * 1000.0);
        let targets = targets(
            summary.iter().find(|s| s.strategy == "composectl"),
            layers.iter().sum(),
            render.0,
            render_ms,
        );
        Report {
            command,
            stacks: layers.iter().sum(),
            layers,
            machine,
            summary,
            render_stacks: render.0,
            render_ms,
            targets,
            runs,
        }
    }

    pub fn failed(&self) -> bool {
        self.runs.iter().any(|r| r.error.is_some())
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let layers: Vec<String> = self.layers.iter().map(ToString::to_string).collect();
        let mut out = format!(
            "Scale benchmark: {} stacks in layers of {} (each requiring every stack of the layer before; one \
             container each, healthy 1 s after start, healthcheck every 500 ms).\n\n\
             Machine: {}, {} cores, {} GiB; Linux {}; engine {}, Compose {}, {}.\n\
             Load average (1, 5, 15 min): {} before, {} after.\n\
             Command: `{}`\n\n",
            self.stacks,
            layers.join(" + "),
            m.cpu,
            m.cores,
            m.memory_gib,
            m.kernel,
            m.engine,
            m.compose,
            m.systemd,
            m.load_before,
            m.load_after,
            self.command
        );
        out.push_str(
            "| strategy | runs ok | all healthy s, median (min–max) | × ideal | ordering violations \
             | RSS/stack MiB (max) | PSS/stack MiB (max) | private/stack MiB (max) | idle CPU/stack | status \
             | container death → unit not active |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in &self.summary {
            let _ = writeln!(
                out,
                "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.title,
                s.ok,
                s.runs,
                s.all_healthy.map_or("–".into(), |a| format!(
                    "{:.2} ({:.2}–{:.2})",
                    a.median, a.min, a.max
                )),
                s.ratio.map_or("–".into(), |r| format!("{r:.3}")),
                if s.ok == 0 {
                    "–".into()
                } else {
                    s.violations.to_string()
                },
                mib(s.rss_mib),
                mib(s.pss_mib),
                mib(s.private_mib),
                s.idle_cpu_percent
                    .map_or("–".into(), |c| format!("{c:.4} %")),
                s.status_ms.map_or("–".into(), |ms| format!("{ms:.1} ms")),
                detection(s),
            );
        }
        out.push_str(
            "\nMedians over the runs (interleaved: round 1 runs every strategy, then round 2, ..., each round beginning with the next strategy). All healthy: \
             the engine's timestamp of the last `health_status: healthy` minus the start; × ideal: median over \
             the ideal orchestrator's median. Ordering violations: containers whose `start` event came before \
             every stack they require was healthy, summed over the runs. Memory: the processes of each stack's \
             unit (composectl: its supervisor; foreground: the compose CLI), once all were healthy and after \
             the idle time, the larger; RSS counts every page they map, PSS splits the pages processes share \
             (the binary, libc) among them, private counts the pages no other process maps. Idle CPU: those \
             processes over the idle time, per stack, in % of one core. Status: `composectl status`, \
             `systemctl --user list-units` (units only) or `docker compose ls` (projects only), median of 10. \
             Container death: `docker kill` of one container of the last layer, from the engine's `die` to \
             `systemctl show` first saying the unit is not `active` (polled, a few ms apart).\n",
        );
        out.push_str(
            "\nWhere the time went (medians, s): from the start to the first container created; per stack \
             requiring others, from the last of them turning healthy to its own container's creation (the \
             cost of starting a layer: noticing, systemd, the supervisor, `compose up`); per stack, from its \
             creation to its health (the engine and the healthcheck).\n\n\
             | strategy | start → first create | required healthy → create | create → healthy |\n\
             |---|---|---|---|\n",
        );
        for s in &self.summary {
            if let Some(p) = s.phases {
                let _ = writeln!(
                    out,
                    "| {} | {:.3} | {} | {:.3} |",
                    s.title,
                    p.first_create,
                    p.handoff.map_or("–".into(), |h| format!("{h:.3}")),
                    p.create_to_healthy
                );
            }
        }
        if let Some(ms) = self.render_ms {
            let _ = writeln!(
                out,
                "\n`composectl render` of {} stacks (the same layers): {ms:.1} ms, median of 10.",
                self.render_stacks
            );
        }
        out.push_str(
            "\nTargets (issue 11), composectl:\n\n| target | measured | met |\n|---|---|---|\n",
        );
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {met} |", t.target, t.measured);
        }
        for s in &self.summary {
            for e in &s.errors {
                let _ = writeln!(out, "\n- {}: failed run: {e}", s.strategy);
            }
        }
        out
    }
}

fn mib(spread: Option<Spread>) -> String {
    spread.map_or("–".into(), |s| format!("{:.2} ({:.2})", s.median, s.max))
}

fn detection(s: &Summary) -> String {
    match (s.never_detected, s.detection_s) {
        (None, _) => "– (no unit)".into(),
        (Some(0), Some(d)) => format!("{d:.3} s"),
        (Some(n), Some(d)) => format!("{d:.3} s ({n} runs: never)"),
        (Some(_), None) => format!(
            "never (still active after {} s)",
            crate::strategy::DETECTION_LIMIT.as_secs()
        ),
    }
}

fn targets(
    composectl: Option<&Summary>,
    stacks: usize,
    render_stacks: usize,
    render_ms: Option<f64>,
) -> Vec<Target> {
    let target = |what: &str, value: Option<f64>, unit: &str, limit: f64| Target {
        target: format!("{what} ≤ {limit}{unit}"),
        measured: value.map_or("–".into(), |v| format!("{v:.3}{unit}")),
        met: value.map(|v| v <= limit),
    };
    let c = composectl;
    vec![
        target(
            &format!("all healthy, {stacks} stacks, × ideal"),
            c.and_then(|c| c.ratio),
            "",
            1.02,
        ),
        Target {
            target: format!("ordering violations, {stacks} stacks = 0"),
            measured: c
                .filter(|c| c.ok > 0)
                .map_or("–".into(), |c| c.violations.to_string()),
            met: c.filter(|c| c.ok > 0).map(|c| c.violations == 0),
        },
        target(
            &format!("`status` of {stacks} stacks (issue: at 30)"),
            c.and_then(|c| c.status_ms),
            " ms",
            25.0,
        ),
        target(
            "supervisor RSS, largest",
            c.and_then(|c| c.rss_mib).map(|s| s.max),
            " MiB",
            3.0,
        ),
        target(
            "idle supervisor CPU, each",
            c.and_then(|c| c.idle_cpu_percent),
            " %",
            0.02,
        ),
        target(
            &format!("`render` of {render_stacks} stacks"),
            render_ms,
            " ms",
            20.0,
        ),
    ]
}
