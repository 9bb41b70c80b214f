//! Time spans as systemd writes them (`90s`, `15min`, `1h 30min`, `500ms`; a bare number is
//! seconds), so values in `x-composectl` mean the same as in a unit file.

use std::time::Duration;

const UNITS: [(&[&str], u64); 5] = [
    (&["ms", "msec"], 1),
    (&["s", "sec", "second", "seconds"], 1_000),
    (&["m", "min", "minute", "minutes"], 60_000),
    (&["h", "hr", "hour", "hours"], 3_600_000),
    (&["d", "day", "days"], 86_400_000),
];

pub fn parse(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = if unit.is_empty() {
            1_000
        } else {
            UNITS
                .iter()
                .find(|(names, _)| names.contains(&unit))
                .map(|(_, factor)| *factor)
                .ok_or_else(|| format!("unknown time unit {unit:?} in {text:?}"))?
        };
        total_ms = number
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// The shortest systemd spelling of a duration.
pub fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0 => "0".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// A duration for people, as systemctl shows "1h 2min ago": the two largest whole units.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [
        (days, if days == 1 { " day" } else { " days" }),
        (hours, "h"),
        (minutes, "min"),
        (seconds, "s"),
    ]
    .iter()
    .skip_while(|(value, _)| *value == 0)
    .take(2)
    .filter(|(value, _)| *value > 0)
    .map(|(value, unit)| format!("{value}{unit}"))
    .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_keep_the_two_largest_units() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (3_723, "1h 2min"),
            (3_605, "1h"),
            (125, "2min 5s"),
            (90_061, "1 day 1h"),
            (3 * 86_400 + 59, "3 days"),
        ] {
            assert_eq!(human(Duration::from_secs(secs)), text, "{secs}");
        }
    }

    #[test]
    fn parses_systemd_spans() {
        for (text, secs) in [
            ("90", 90),
            ("5s", 5),
            ("15min", 900),
            ("1h 30min", 5400),
            ("2m", 120),
            ("1d", 86400),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "soon", "5 parsecs", "-1s", "99999999999999999999s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["5s", "15min", "2h", "1500ms", "90s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
