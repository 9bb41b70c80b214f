//! `networks.toml`: the networks every stack may join, with the settings `docker network create`
//! takes. Unknown keys are refused so a typo never silently becomes a default.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::reference::{self, NETWORKS_TOML};
use crate::diag::{Diagnostic, Diagnostics, line_of};

pub const FILE: &str = "networks.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub internal: bool,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworksFile {
    #[serde(default)]
    networks: BTreeMap<Spanned<String>, Spanned<NetworkEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEntry {
    subnet: Spanned<String>,
    gateway: Option<Spanned<String>>,
    #[serde(default)]
    internal: bool,
    driver: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Docker accepts `[a-zA-Z0-9][a-zA-Z0-9_.-]*` as a network name.
pub fn is_valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses and validates networks.toml; every problem is reported, valid networks are returned.
pub fn parse(path: &Path, text: &str, diags: &mut Diagnostics) -> BTreeMap<String, NetworkSpec> {
    if !reference::check_toml(&NETWORKS_TOML, path, text, diags) {
        return BTreeMap::new();
    }
    let file: NetworksFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            diags.push(reference::toml_error(&NETWORKS_TOML, path, text, &e));
            return BTreeMap::new();
        }
    };
    let mut specs: BTreeMap<String, NetworkSpec> = BTreeMap::new();
    // In file order, so an overlap is reported at the later of the two networks.
    let mut entries: Vec<_> = file.networks.into_iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    for (name, entry) in entries {
        let name_at = name.span().start;
        let line = line_of(text, name_at);
        let name = name.into_inner();
        let entry = entry.into_inner();
        let error = |message: String, at: usize| {
            Diagnostic::error(path.to_path_buf(), message).at_offset(text, at)
        };
        if !is_valid_network_name(&name) {
            diags.push(
                error(format!("invalid network name {name:?}"), name_at)
                    .hint("use letters, digits, '_', '.', '-', starting with a letter or digit"),
            );
            continue;
        }
        let subnet_at = entry.subnet.span().start;
        let subnet_text = entry.subnet.into_inner();
        let subnet: IpNet = match subnet_text.parse() {
            Ok(net) => net,
            Err(_) => {
                diags.push(
                    error(
                        format!("network {name}: subnet {subnet_text:?} is not a CIDR block"),
                        subnet_at,
                    )
                    .hint("write it as ADDRESS/PREFIX, e.g. \"172.20.0.0/24\""),
                );
                continue;
            }
        };
        if subnet.trunc() != subnet {
            diags.push(
                error(
                    format!("network {name}: subnet {subnet} has host bits set"),
                    subnet_at,
                )
                .hint(format!("did you mean \"{}\"?", subnet.trunc())),
            );
            continue;
        }
        let gateway = match entry.gateway {
            None => match subnet.hosts().next() {
                Some(first) => first,
                None => {
                    diags.push(
                        error(
                            format!("network {name}: subnet {subnet} has no host addresses"),
                            subnet_at,
                        )
                        .hint("use a prefix of /30 or shorter (IPv4) or /126 (IPv6)"),
                    );
                    continue;
                }
            },
            Some(gateway) => {
                let at = gateway.span().start;
                let text = gateway.into_inner();
                match text.parse::<IpAddr>() {
                    Ok(address)
                        if subnet.contains(&address)
                            && address != subnet.network()
                            && (address != subnet.broadcast() || subnet.addr().is_ipv6()) =>
                    {
                        address
                    }
                    Ok(address) => {
                        diags.push(
                            error(
                                format!(
                                    "network {name}: gateway {address} is not a host address of subnet {subnet}"
                                ),
                                at,
                            )
                            .hint(format!(
                                "pick an address inside {subnet}, or drop gateway to use {}",
                                subnet.hosts().next().map(|h| h.to_string()).unwrap_or_default()
                            )),
                        );
                        continue;
                    }
                    Err(_) => {
                        diags.push(
                            error(
                                format!("network {name}: gateway {text:?} is not an IP address"),
                                at,
                            )
                            .hint("write a plain address such as \"172.20.0.1\""),
                        );
                        continue;
                    }
                }
            }
        };
        for other in specs.values() {
            if other.subnet.contains(&subnet.network()) || subnet.contains(&other.subnet.network())
            {
                diags.push(
                    error(
                        format!(
                            "network {name}: subnet {subnet} overlaps network {} ({})",
                            other.name, other.subnet
                        ),
                        subnet_at,
                    )
                    .hint("give every network its own, non-overlapping subnet"),
                );
            }
        }
        specs.insert(
            name.clone(),
            NetworkSpec {
                name,
                subnet,
                gateway,
                internal: entry.internal,
                driver: entry.driver.unwrap_or_else(|| "bridge".into()),
                labels: entry.labels,
                line,
            },
        );
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (BTreeMap<String, NetworkSpec>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let specs = parse(Path::new(FILE), text, &mut diags);
        (specs, diags)
    }

    #[test]
    fn defaults_gateway_to_first_host_and_driver_to_bridge() {
        let (specs, diags) =
            parse_text("[networks.db]\nsubnet = \"172.22.0.0/24\"\ninternal = true\n");
        assert!(diags.is_empty(), "{diags}");
        let db = &specs["db"];
        assert_eq!(db.gateway.to_string(), "172.22.0.1");
        assert_eq!(db.driver, "bridge");
        assert!(db.internal);
    }

    #[test]
    fn reports_unknown_keys_with_their_line() {
        let (_, diags) = parse_text("[networks.db]\nsubnet = \"172.22.0.0/24\"\ninternl = true\n");
        let error = diags.errors().next().unwrap();
        assert_eq!(error.line, Some(3));
        assert!(error.message.contains("internl"), "{}", error.message);
    }

    #[test]
    fn reports_overlaps_host_bits_and_foreign_gateways() {
        let text = "[networks.a]\nsubnet = \"10.1.0.0/16\"\n[networks.b]\nsubnet = \"10.1.2.0/24\"\n\
                    [networks.c]\nsubnet = \"10.2.0.5/24\"\n[networks.d]\nsubnet = \"10.3.0.0/24\"\ngateway = \"10.4.0.1\"\n";
        let (_, diags) = parse_text(text);
        let messages: Vec<_> = diags
            .errors()
            .map(|d| (d.line, d.message.clone()))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].1.contains("overlaps network a"));
        assert_eq!(messages[0].0, Some(4));
        assert!(messages[1].1.contains("host bits"));
        assert!(messages[2].1.contains("not a host address"));
    }
}
