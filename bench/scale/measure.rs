//! What a run is judged by: the engine's event timestamps for the start (never what a strategy
//! says of itself), and the processes of the units for memory and CPU.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::Event;
use crate::topology::Topology;
use composectl_testkit::e2e::{UserManager, slice_pids, stdout_of};

const HEALTHY: &str = "health_status: healthy";

/// When each stack first had a healthy container from `t0` on (unix nanoseconds).
fn healthy_at(events: &[Event], t0: i64) -> HashMap<&str, i64> {
    let mut healthy = HashMap::new();
    for event in events
        .iter()
        .filter(|e| e.time_nano >= t0 && e.action == HEALTHY)
    {
        healthy
            .entry(event.project.as_str())
            .or_insert(event.time_nano);
    }
    healthy
}

/// Seconds from `t0` until every stack was healthy; None while one is not yet.
pub fn all_healthy(topology: &Topology, events: &[Event], t0: i64) -> Option<f64> {
    let healthy = healthy_at(events, t0);
    let mut last = t0;
    for stack in topology.all() {
        last = last.max(*healthy.get(stack.as_str())?);
    }
    Some(seconds(last - t0))
}

/// Containers of a stack that started before every stack it requires was healthy.
pub fn ordering_violations(topology: &Topology, events: &[Event], t0: i64) -> Vec<String> {
    let healthy = healthy_at(events, t0);
    let mut violations = Vec::new();
    for start in events
        .iter()
        .filter(|e| e.time_nano >= t0 && e.action == "start")
    {
        let Some(required) = topology.requires.get(&start.project) else {
            continue;
        };
        let ready = required
            .iter()
            .map(|r| healthy.get(r.as_str()).copied())
            .collect::<Option<Vec<i64>>>()
            .map(|times| times.into_iter().max().unwrap_or(t0));
        match ready {
            Some(ready) if ready <= start.time_nano => {}
            Some(ready) => violations.push(format!(
                "{} started {:.3} s before its required stacks were healthy",
                start.project,
                seconds(ready - start.time_nano)
            )),
            None => violations.push(format!(
                "{} started before its required stacks were healthy at all",
                start.project
            )),
        }
    }
    violations
}

/// Where a run's time went, in seconds, by the engine's timestamps: from the start to the first
/// container created; per stack that requires others, from the last of them turning healthy to
/// its own container's creation (what starting a layer costs the strategy: noticing, systemd,
/// the supervisor, `compose up`); per stack, from its creation to its health.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Phases {
    pub first_create: f64,
    /// None with a single layer: no stack requires another.
    pub handoff: Option<f64>,
    pub create_to_healthy: f64,
}

impl Phases {
    /// Each phase's median over `runs`; None without runs.
    pub fn median(runs: &[Phases]) -> Option<Phases> {
        let of = |pick: fn(&Phases) -> Option<f64>| {
            median(&runs.iter().filter_map(pick).collect::<Vec<_>>())
        };
        Some(Phases {
            first_create: of(|p| Some(p.first_create))?,
            handoff: of(|p| p.handoff),
            create_to_healthy: of(|p| Some(p.create_to_healthy))?,
        })
    }
}

pub fn phases(topology: &Topology, events: &[Event], t0: i64) -> Option<Phases> {
    let healthy = healthy_at(events, t0);
    let mut created: HashMap<&str, i64> = HashMap::new();
    for event in events
        .iter()
        .filter(|e| e.time_nano >= t0 && e.action == "create")
    {
        created
            .entry(event.project.as_str())
            .or_insert(event.time_nano);
    }
    let mut handoffs = Vec::new();
    let mut lives = Vec::new();
    for stack in topology.all() {
        let create = *created.get(stack.as_str())?;
        lives.push(seconds(*healthy.get(stack.as_str())? - create));
        let required = &topology.requires[stack];
        if let Some(ready) = required
            .iter()
            .map(|r| healthy.get(r.as_str()).copied())
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .max()
        {
            handoffs.push(seconds(create - ready));
        }
    }
    Some(Phases {
        first_create: seconds(created.values().min()? - t0),
        handoff: median(&handoffs),
        create_to_healthy: median(&lives)?,
    })
}

pub fn seconds(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// A unit's processes, as systemd has them.
pub struct Unit {
    cgroup: String,
}

/// The units' control groups, from one `systemctl show`.
pub fn units(manager: &UserManager, names: &[String]) -> Vec<Unit> {
    let mut args = vec!["show", "-p", "Id,ControlGroup"];
    args.extend(names.iter().map(String::as_str));
    let out = manager.systemctl(&args);
    stdout_of(&out)
        .split("\n\n")
        .filter_map(|block| {
            let mut fields: HashMap<&str, &str> =
                block.lines().filter_map(|l| l.split_once('=')).collect();
            fields.remove("Id")?;
            Some(Unit {
                cgroup: fields
                    .remove("ControlGroup")
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

/// The unified (v2) cgroup hierarchy: its own mount on a hybrid host like these VMs, or the
/// only one.
fn unified() -> PathBuf {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("a cgroup v2 hierarchy")
}

/// Memory in KiB, three ways: RSS counts every page a process maps, PSS splits the pages
/// processes share (the binary, libc) among them, private counts only the pages no other process
/// maps: what the unit alone costs.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
    pub private: u64,
}

impl Memory {
    /// Each figure the larger of the two.
    pub fn max(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss.max(other.rss),
            pss: self.pss.max(other.pss),
            private: self.private.max(other.private),
        }
    }
}

impl Unit {
    fn pids(&self) -> Vec<u32> {
        if self.cgroup.is_empty() {
            return Vec::new();
        }
        slice_pids(&unified(), self.cgroup.trim_start_matches('/'))
    }

    /// The memory of every process in the unit, in KiB.
    pub fn memory_kib(&self) -> Memory {
        self.pids().iter().fold(Memory::default(), |sum, pid| {
            let proc = Path::new("/proc").join(pid.to_string());
            let rollup = fs::read_to_string(proc.join("smaps_rollup")).unwrap_or_default();
            Memory {
                rss: sum.rss + field_kib(&rollup, "Rss:"),
                pss: sum.pss + field_kib(&rollup, "Pss:"),
                private: sum.private
                    + field_kib(&rollup, "Private_Clean:")
                    + field_kib(&rollup, "Private_Dirty:"),
            }
        })
    }

    /// CPU time the unit's processes used, ever (microseconds): cgroup v2 counts it for every
    /// group, with or without the cpu controller.
    pub fn cpu_usec(&self) -> u64 {
        if self.cgroup.is_empty() {
            return 0;
        }
        let stat = unified()
            .join(self.cgroup.trim_start_matches('/'))
            .join("cpu.stat");
        fs::read_to_string(stat)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The number on the `Key: 123 kB` line of a /proc file's text; 0 when absent (the process is
/// gone).
fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The median wall time of `times` calls of `f`, in seconds.
pub fn median_seconds(times: usize, mut f: impl FnMut()) -> f64 {
    let took: Vec<f64> = (0..times)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(&took).unwrap_or_default()
}

/// The median of some numbers (the lower one of the middle two), None for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}
