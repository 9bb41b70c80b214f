//! `resources`: what a stack may use, as settings of its slice (`compose-STACK.slice`), where
//! its supervisor and, on an engine with the systemd cgroup driver, its containers run. Written
//! in `x-composectl` per stack and under `[resources]` of composectl.toml for every stack; the
//! two parsers read values through `parse`, so both accept and refuse the same.

use std::collections::BTreeMap;

use serde::Serialize;

/// The slice settings a stack asks for: key (of [`KEYS`]) → value as systemd writes it (`8G`,
/// `50`, `200%`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Resources(BTreeMap<&'static str, String>);

/// The keys, in the order the slice lists them, with the slice setting each becomes.
pub const KEYS: [(&str, &str); 6] = [
    ("memory_max", "MemoryMax"),
    ("memory_high", "MemoryHigh"),
    ("cpu_weight", "CPUWeight"),
    ("cpu_quota", "CPUQuota"),
    ("io_weight", "IOWeight"),
    ("tasks_max", "TasksMax"),
];

impl Resources {
    /// Sets `key` from what the user wrote; the message says what is wrong and what to write.
    pub fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
        let value = parse(key, text)?;
        let (key, _) = KEYS
            .iter()
            .find(|(known, _)| *known == key)
            .ok_or_else(|| format!("{key} is not a resource"))?;
        self.0.insert(key, value);
        Ok(())
    }

    /// Each key this one does not set taken from `defaults` (composectl.toml's `[resources]`).
    pub fn or(mut self, defaults: &Resources) -> Resources {
        for (key, value) in &defaults.0 {
            self.0.entry(key).or_insert_with(|| value.clone());
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(setting, value)` for the slice, in a fixed order.
    pub fn directives(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .filter_map(|(key, setting)| Some((*setting, self.0.get(key)?.clone())))
            .collect()
    }

    /// A contradiction between keys: memory_high above memory_max never throttles.
    pub fn conflict(&self) -> Option<String> {
        let (high, max) = (self.0.get("memory_high")?, self.0.get("memory_max")?);
        match (bytes(high), bytes(max)) {
            (Some(h), Some(m)) if h > m => Some(format!(
                "memory_high {high} is above memory_max {max}: the stack would be killed before it is ever throttled"
            )),
            _ => None,
        }
    }
}

/// A value of `key` as systemd takes it, or what is wrong with it.
pub fn parse(key: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    match key {
        "memory_max" | "memory_high" => memory(text).ok_or_else(|| {
            format!("{key} is {text:?}, expected a size such as 512M, 8G, a share of the host's memory such as 50%, or infinity")
        }),
        "cpu_weight" | "io_weight" => match text.parse::<u32>() {
            Ok(weight) if (1..=10_000).contains(&weight) => Ok(weight.to_string()),
            _ => Err(format!(
                "{key} is {text:?}, expected a weight from 1 to 10000 (100 is every stack's default share)"
            )),
        },
        "cpu_quota" => percent(text, u32::MAX)
            .filter(|p| *p > 0)
            .map(|p| format!("{p}%"))
            .ok_or_else(|| {
                format!("{key} is {text:?}, expected a percentage of one CPU such as 50% or 200% (two CPUs)")
            }),
        "tasks_max" => {
            if text == "infinity" {
                Ok(text.to_string())
            } else if let Some(p) = percent(text, 100).filter(|p| *p > 0) {
                Ok(format!("{p}%"))
            } else {
                match text.parse::<u64>() {
                    Ok(tasks) if tasks > 0 => Ok(tasks.to_string()),
                    _ => Err(format!(
                        "{key} is {text:?}, expected a positive number of processes and threads, a percentage of the host's limit, or infinity"
                    )),
                }
            }
        }
        _ => Err(format!("{key} is not a resource")),
    }
}

/// `infinity`, `N%` (1 to 100) or a size: digits with an optional K, M, G or T (base 1024;
/// compose's lowercase and a trailing B accepted), written back the way systemd prints it.
fn memory(text: &str) -> Option<String> {
    if text == "infinity" {
        return Some(text.to_string());
    }
    if let Some(p) = percent(text, 100) {
        return (p > 0).then(|| format!("{p}%"));
    }
    let (number, unit) = split_size(text)?;
    let value: u64 = number.parse().ok()?;
    (value > 0 && bytes(text).is_some()).then(|| format!("{value}{unit}"))
}

/// The digits and the unit (uppercase, without B) of a size.
fn split_size(text: &str) -> Option<(&str, &'static str)> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    let unit = match suffix.to_ascii_uppercase().trim_end_matches('B') {
        "" if suffix.is_empty() => "",
        "K" => "K",
        "M" => "M",
        "G" => "G",
        "T" => "T",
        _ => return None,
    };
    Some((number, unit))
}

/// A size in bytes, for comparing two of them (percentages and infinity are not compared).
fn bytes(text: &str) -> Option<u64> {
    let (number, unit) = split_size(text)?;
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => 40,
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn percent(text: &str, most: u32) -> Option<u32> {
    text.strip_suffix('%')?
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_systemd_takes_them() {
        assert_eq!(parse("memory_max", "8G"), Ok("8G".into()));
        assert_eq!(parse("memory_max", "512m"), Ok("512M".into()));
        assert_eq!(parse("memory_high", "7gb"), Ok("7G".into()));
        assert_eq!(parse("memory_max", "1048576"), Ok("1048576".into()));
        assert_eq!(parse("memory_max", "50%"), Ok("50%".into()));
        assert_eq!(parse("memory_max", "infinity"), Ok("infinity".into()));
        assert_eq!(parse("cpu_weight", "50"), Ok("50".into()));
        assert_eq!(parse("cpu_quota", "200%"), Ok("200%".into()));
        assert_eq!(parse("io_weight", "10000"), Ok("10000".into()));
        assert_eq!(parse("tasks_max", "4096"), Ok("4096".into()));
        assert_eq!(parse("tasks_max", "infinity"), Ok("infinity".into()));
    }

    #[test]
    fn nonsense_is_refused_with_what_to_write() {
        for (key, text) in [
            ("memory_max", "lots"),
            ("memory_max", "0"),
            ("memory_max", "-1G"),
            ("memory_max", "8X"),
            ("memory_max", "150%"),
            ("memory_max", "G"),
            ("memory_max", "99999999999T"),
            ("cpu_weight", "-5"),
            ("cpu_weight", "0"),
            ("cpu_weight", "10001"),
            ("io_weight", "high"),
            ("cpu_quota", "2"),
            ("cpu_quota", "0%"),
            ("tasks_max", "0"),
            ("tasks_max", "many"),
        ] {
            let error = parse(key, text).expect_err(text);
            assert!(error.starts_with(&format!("{key} is")), "{error}");
            assert!(error.contains("expected"), "{error}");
        }
    }

    #[test]
    fn a_stack_overrides_the_defaults_key_by_key() {
        let mut defaults = Resources::default();
        defaults.set("memory_max", "4G").unwrap();
        defaults.set("cpu_weight", "100").unwrap();
        let mut stack = Resources::default();
        stack.set("memory_max", "8G").unwrap();
        let merged = stack.or(&defaults);
        assert_eq!(
            merged.directives(),
            vec![("MemoryMax", "8G".into()), ("CPUWeight", "100".into())]
        );
        assert!(Resources::default().is_empty());
    }

    #[test]
    fn memory_high_above_memory_max_is_a_conflict() {
        let mut r = Resources::default();
        r.set("memory_max", "1G").unwrap();
        r.set("memory_high", "2048M").unwrap();
        assert!(
            r.conflict()
                .expect("a conflict")
                .contains("above memory_max")
        );
        r.set("memory_high", "512M").unwrap();
        assert_eq!(r.conflict(), None);
    }
}
