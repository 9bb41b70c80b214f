//! Beyond one host: the root deployed to Docker Swarm. Each stack's compose file is translated
//! for `docker stack deploy` (`translate`, written out by `document`), the networks of
//! networks.toml become overlay networks with the same settings, and `deploy` deploys the stacks
//! layer by layer, each once the stacks it requires are ready, then reads (`status`) or removes
//! them through the engine API. Only `stack_cli` runs the docker CLI.

pub mod deploy;
pub mod document;
pub mod stack_cli;
pub mod translate;

use std::collections::BTreeSet;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::Root;
use deploy::Planned;
use translate::Translation;

/// The drivers of networks.toml a swarm can honour: `bridge` (the single-host default) and
/// `overlay` both become overlay networks, which is what a network shared by nodes is.
const OVERLAY_DRIVERS: [&str; 2] = ["bridge", "overlay"];

/// The selected stacks translated and in layers, and the warnings on the way; or every reason
/// the selection cannot be deployed (refused keys, networks a swarm cannot have), at once.
pub fn plan(
    root: &Root,
    selection: &BTreeSet<String>,
) -> Result<(Vec<Vec<Planned>>, Diagnostics), Diagnostics> {
    let mut diags = network_problems(root, selection);
    let mut layers: Vec<Vec<Planned>> = Vec::new();
    for (layer, translation) in translations(root, selection) {
        diags.extend(translation.diagnostics());
        let Some(stack) = root.stacks.get(&translation.stack) else {
            continue;
        };
        if layers.len() < layer {
            layers.resize_with(layer, Vec::new);
        }
        layers[layer - 1].push(Planned {
            requires: stack.requires.clone(),
            timeout: stack.start_timeout,
            translation,
        });
    }
    let diags = diags.sorted();
    if diags.has_errors() {
        return Err(diags);
    }
    Ok((layers, diags))
}

/// The translations of the selected stacks with their layers (from 1), in layer order,
/// refusals included: what `swarm render` shows.
pub fn translations(root: &Root, selection: &BTreeSet<String>) -> Vec<(usize, Translation)> {
    let mut translations = Vec::new();
    for (index, layer) in root
        .graph()
        .subgraph(selection)
        .layers()
        .into_iter()
        .enumerate()
    {
        for name in layer {
            if let Some(stack) = root.stacks.get(&name) {
                translations.push((index + 1, translate::translate(stack)));
            }
        }
    }
    translations
}

/// The networks of networks.toml the selection joins that a swarm cannot have.
pub fn network_problems(root: &Root, selection: &BTreeSet<String>) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let used: BTreeSet<&str> = selection
        .iter()
        .filter_map(|s| root.stacks.get(s))
        .flat_map(|s| s.external_networks())
        .collect();
    let networks_file = root.dir.join(crate::config::networks::FILE);
    for name in used {
        if let Some(spec) = root.networks.get(name)
            && !OVERLAY_DRIVERS.contains(&spec.driver.as_str())
        {
            diags.push(
                Diagnostic::error(
                    networks_file.clone(),
                    format!(
                        "network {name}: a swarm shares networks between nodes as overlay networks, not {}",
                        spec.driver
                    ),
                )
                .at_line(Some(spec.line))
                .hint("drop driver (bridge on one host, overlay on a swarm) or write driver = \"overlay\""),
            );
        }
    }
    diags
}
