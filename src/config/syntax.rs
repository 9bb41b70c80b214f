//! The small value grammars compose parses inside strings, with the same rules and refusals:
//! port specs (`[IP:]HOST:CONTAINER[/PROTO]`, as docker's go-connections reads them), volume
//! specs (`SOURCE:TARGET[:OPTIONS]`, as compose-go reads them) and the casts compose applies to
//! strings in typed fields after interpolation.

use std::net::IpAddr;
use std::time::Duration;

/// A published port as `ports:` declares it, host side included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Empty: every address.
    pub host_ip: String,
    /// The host port range, `None` when the engine picks one.
    pub host: Option<(u16, u16)>,
    pub container: (u16, u16),
    pub protocol: String,
}

impl PortSpec {
    /// The host ports this mapping holds for itself: a host range beside a single container
    /// port is only a pool the engine picks one port from, so it claims none in particular.
    pub fn fixed_host_ports(&self) -> Option<(u16, u16)> {
        let (start, end) = self.host?;
        (end - start == self.container.1 - self.container.0).then_some((start, end))
    }
}

fn port_range(text: &str) -> Result<(u16, u16), ()> {
    let (start, end) = match text.split_once('-') {
        None => {
            let port = text.parse().map_err(|_| ())?;
            (port, port)
        }
        Some((start, end)) => (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?),
    };
    if end < start {
        return Err(());
    }
    Ok((start, end))
}

pub fn valid_protocol(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_lowercase().as_str(),
        "tcp" | "udp" | "sctp"
    )
}

/// Parses a short-syntax port the way `docker compose` does, with its error messages.
pub fn parse_port(raw: &str) -> Result<PortSpec, String> {
    // The last two colon-separated parts are the ports, anything before them the address.
    let mut parts = raw.rsplitn(3, ':');
    let container = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let ip = parts.next().unwrap_or_default();
    let (port, protocol) = match container.split_once('/') {
        _ if container.is_empty() || container.starts_with('/') => ("", ""),
        None | Some((_, "")) => (container.trim_end_matches('/'), "tcp"),
        Some((port, rest)) => (port, rest.split('/').next().unwrap_or_default()),
    };
    let container = port;
    let ip = ip
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(ip);
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let container =
        port_range(container).map_err(|()| format!("invalid containerPort: {container}"))?;
    let host = if host.is_empty() {
        None
    } else {
        Some(port_range(host).map_err(|()| format!("invalid hostPort: {host}"))?)
    };
    if let Some((start, end)) = host
        && end - start != container.1 - container.0
        && container.0 != container.1
    {
        return Err(format!(
            "invalid ranges specified for container and host ports: {}-{} and {start}-{end}",
            container.0, container.1
        ));
    }
    if !valid_protocol(protocol) {
        return Err(format!("invalid proto: {protocol}"));
    }
    Ok(PortSpec {
        host_ip: ip.to_string(),
        host,
        container,
        protocol: protocol.to_ascii_lowercase(),
    })
}

/// A short-syntax volume: where it comes from (empty: an anonymous volume) and what kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub source: String,
    pub target: String,
}

impl VolumeSpec {
    /// A host path compose bind-mounts (`.`, `/` or `~`); any other source is a named volume,
    /// which the file must declare.
    pub fn is_bind(&self) -> bool {
        is_file_path(&self.source)
    }
}

fn is_file_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~'])
        || source.starts_with("\\\\")
        || is_windows_drive(source.chars().next(), source.chars().nth(1))
}

fn is_windows_drive(first: Option<char>, next: Option<char>) -> bool {
    first.is_some_and(char::is_alphabetic) && next == Some(':')
}

/// Parses a short-syntax volume the way compose-go does, with its error messages.
pub fn parse_volume(spec: &str) -> Result<VolumeSpec, String> {
    let mut volume = VolumeSpec {
        source: String::new(),
        target: String::new(),
    };
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            volume.target = spec.to_string();
            return Ok(volume);
        }
        _ => {}
    }
    let mut buffer = String::new();
    let chars: Vec<char> = spec.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let end = i + 1 == chars.len();
        if c == ':'
            && buffer.chars().count() == 1
            && is_windows_drive(buffer.chars().next(), Some(c))
        {
            buffer.push(c);
        } else if c == ':' {
            take_field(spec, &mut buffer, false, &mut volume)?;
        } else {
            buffer.push(c);
        }
        if end {
            take_field(spec, &mut buffer, true, &mut volume)?;
        }
    }
    Ok(volume)
}

fn take_field(
    spec: &str,
    buffer: &mut String,
    at_end: bool,
    volume: &mut VolumeSpec,
) -> Result<(), String> {
    let field = std::mem::take(buffer);
    let problem = if field.is_empty() {
        "empty section between colons"
    } else if volume.source.is_empty() && at_end {
        volume.target = field;
        return Ok(());
    } else if volume.source.is_empty() {
        volume.source = field;
        return Ok(());
    } else if volume.target.is_empty() {
        volume.target = field;
        return Ok(());
    } else if !at_end {
        "too many colons"
    } else {
        return Ok(()); // options (ro, z, rshared, ...) compose ignores when unknown
    };
    Err(format!("invalid spec: {spec}: {problem}"))
}

/// A duration as Go's `time.ParseDuration` reads it, compose's format for healthcheck and
/// timeout fields (`1m30s`, `500ms`, `1.5h`, `0`); None when Go would refuse it or it is negative.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, f64); 7] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = UNITS.iter().find(|(u, _)| *u == &rest[..unit_len])?.1;
        seconds += number * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// The type compose casts a string to in a typed field (after interpolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    Int,
    Float,
    Bool,
}

impl Cast {
    /// `Err` says why compose would refuse the value.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            Cast::Int => value.parse::<i64>().is_ok(),
            Cast::Float => value.parse::<f64>().is_ok(),
            Cast::Bool => super::yaml::parse_bool(value).is_some(),
        };
        if ok {
            return Ok(());
        }
        let what = match self {
            Cast::Int => "an integer",
            Cast::Float => "a number",
            Cast::Bool => "a boolean (true or false)",
        };
        Err(format!("{value:?} is not {what}"))
    }
}

/// The fields compose casts, as paths below a service (`*`: any key or list item).
pub const SERVICE_CASTS: &[(&[&str], Cast)] = &[
    (&["cpu_count"], Cast::Int),
    (&["cpu_percent"], Cast::Float),
    (&["cpu_period"], Cast::Int),
    (&["cpu_quota"], Cast::Int),
    (&["cpu_rt_period"], Cast::Int),
    (&["cpu_rt_runtime"], Cast::Int),
    (&["cpus"], Cast::Float),
    (&["cpu_shares"], Cast::Int),
    (&["init"], Cast::Bool),
    (&["depends_on", "*", "required"], Cast::Bool),
    (&["depends_on", "*", "restart"], Cast::Bool),
    (&["deploy", "replicas"], Cast::Int),
    (&["deploy", "update_config", "parallelism"], Cast::Int),
    (
        &["deploy", "update_config", "max_failure_ratio"],
        Cast::Float,
    ),
    (&["deploy", "rollback_config", "parallelism"], Cast::Int),
    (
        &["deploy", "rollback_config", "max_failure_ratio"],
        Cast::Float,
    ),
    (&["deploy", "restart_policy", "max_attempts"], Cast::Int),
    (&["deploy", "placement", "max_replicas_per_node"], Cast::Int),
    (&["healthcheck", "retries"], Cast::Int),
    (&["healthcheck", "disable"], Cast::Bool),
    (&["oom_kill_disable"], Cast::Bool),
    (&["oom_score_adj"], Cast::Int),
    (&["pids_limit"], Cast::Int),
    (&["ports", "*", "target"], Cast::Int),
    (&["privileged"], Cast::Bool),
    (&["read_only"], Cast::Bool),
    (&["scale"], Cast::Int),
    (&["stdin_open"], Cast::Bool),
    (&["tty"], Cast::Bool),
    (&["ulimits", "*"], Cast::Int),
    (&["ulimits", "*", "hard"], Cast::Int),
    (&["ulimits", "*", "soft"], Cast::Int),
    (&["volumes", "*", "read_only"], Cast::Bool),
    (&["volumes", "*", "volume", "nocopy"], Cast::Bool),
];

/// The same for the top-level resources (`networks.*.external`, ...).
pub const TOP_LEVEL_CASTS: &[(&[&str], Cast)] = &[
    (&["networks", "*", "external"], Cast::Bool),
    (&["networks", "*", "internal"], Cast::Bool),
    (&["networks", "*", "attachable"], Cast::Bool),
    (&["networks", "*", "enable_ipv4"], Cast::Bool),
    (&["networks", "*", "enable_ipv6"], Cast::Bool),
    (&["volumes", "*", "external"], Cast::Bool),
    (&["secrets", "*", "external"], Cast::Bool),
    (&["configs", "*", "external"], Cast::Bool),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_docker_parses_them() {
        let p = parse_port("127.0.0.1:8000-8001:80-81/udp").unwrap();
        assert_eq!(p.host_ip, "127.0.0.1");
        assert_eq!((p.host, p.container), (Some((8000, 8001)), (80, 81)));
        assert_eq!(p.protocol, "udp");
        assert_eq!(parse_port("[::1]:80:80").unwrap().host_ip, "::1");
        assert_eq!(parse_port("9000").unwrap().host, None);
        assert_eq!(parse_port("1.2.3.4::80").unwrap().host, None);
        assert_eq!(parse_port("8000-8010:80").unwrap().fixed_host_ports(), None);
        for (bad, message) in [
            (":/udp", "no port specified: :/udp<empty>"),
            ("", "no port specified"),
            ("80:x", "invalid containerPort: x"),
            ("y:80", "invalid hostPort: y"),
            ("80:80/xyz", "invalid proto: xyz"),
            ("a.b:80:80", "invalid IP address: a.b"),
            ("80-81:90-99", "invalid ranges"),
            ("70000", "invalid containerPort"),
        ] {
            let err = parse_port(bad).unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn volumes_parse_as_compose_parses_them() {
        let v = parse_volume("data:/var/lib/data:ro").unwrap();
        assert_eq!(
            (v.source.as_str(), v.target.as_str()),
            ("data", "/var/lib/data")
        );
        assert!(!v.is_bind());
        assert!(parse_volume("./x:/x:z").unwrap().is_bind());
        assert!(parse_volume("~/x:/x").unwrap().is_bind());
        assert!(parse_volume("C:\\x:/x").unwrap().is_bind());
        assert_eq!(parse_volume("/anonymous").unwrap().source, "");
        // A one-letter source is a Windows drive to compose, on every platform.
        assert_eq!(parse_volume("a:/b:ro:extra").unwrap().source, "a:/b");
        for (bad, message) in [
            (":/home/app:z", "empty section between colons"),
            ("data:/b:ro:extra", "too many colons"),
            ("data::/b", "empty section"),
            ("", "invalid empty volume spec"),
        ] {
            let err = parse_volume(bad).unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        for (text, millis) in [
            ("0", 0),
            ("30s", 30_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            ("2h0m0s", 7_200_000),
        ] {
            assert_eq!(
                parse_go_duration(text),
                Some(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in ["", "10", "1x", "s", "-1s", "1m30"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn casts_accept_what_compose_accepts() {
        assert!(Cast::Int.check("5").is_ok());
        assert!(Cast::Int.check("").is_err());
        assert!(Cast::Bool.check("Yes").is_ok());
        assert!(Cast::Bool.check("").is_err());
        assert!(Cast::Float.check("0.5").is_ok());
    }
}
