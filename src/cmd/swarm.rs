//! swarm render, deploy, update, status, rm: the root on Docker Swarm, through the engine that
//! DOCKER_HOST names (a swarm manager).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::anyhow;
use serde::Serialize;

use crate::context::{Context, block_on};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{self, Engine, NetworkCheck, Scope, StackObject};
use crate::error::{Error, Result, exit};
use crate::model::{self, Root, StackName};
use crate::output::{Report, Text, report};
use crate::swarm;
use crate::swarm::deploy::{
    self as swarm_deploy, LayerResult, Outcome, Removed, ServiceState, Snapshot,
};
use crate::swarm::translate::Change;

#[derive(Serialize)]
struct Rendered {
    stack: String,
    layer: usize,
    file: PathBuf,
    /// The services in the order composectl deploys them (`depends_on`).
    waves: Vec<Vec<String>>,
    /// The file `docker stack deploy` reads.
    compose: String,
    changes: Vec<Change>,
}

pub fn render(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    let (root, selection) = ctx.select(names)?;
    let translations = swarm::translations(&root, &selection);
    // Warnings are rows of the table; what makes the root undeployable is an error.
    let mut refusals = swarm::network_problems(&root, &selection);
    for (_, translation) in &translations {
        refusals.extend(translation.diagnostics());
    }
    let refusals: Diagnostics = refusals
        .into_vec()
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    if refusals.has_errors() {
        return Err(refusals.sorted().into());
    }
    let rendered: Vec<Rendered> = translations
        .into_iter()
        .map(|(layer, t)| Rendered {
            compose: t.yaml(None, &std::collections::BTreeMap::new()),
            stack: t.stack,
            layer,
            file: t.file,
            waves: t.waves,
            changes: t.changes,
        })
        .collect();
    Ok(Box::new(report(rendered, |rendered, out| {
        for (index, r) in rendered.iter().enumerate() {
            if index > 0 {
                out.data("---\n")?;
            }
            out.data(&header(r))?;
            out.data(&r.compose)?;
        }
        Ok(())
    })))
}

/// The comment above a rendered file: where it comes from, and the table of changes.
fn header(r: &Rendered) -> String {
    let mut text = format!(
        "# stack {} (layer {}) from {}\n# deploy: docker stack deploy --compose-file - {}\n",
        r.stack,
        r.layer,
        r.file.display(),
        r.stack
    );
    if r.waves.len() > 1 {
        let waves: Vec<String> = r.waves.iter().map(|w| w.join(", ")).collect();
        text.push_str(&format!(
            "# services in order of readiness: {}\n",
            waves.join(" -> ")
        ));
    }
    if r.changes.is_empty() {
        text.push_str("# nothing to translate\n");
        return text;
    }
    let key_width = r
        .changes
        .iter()
        .map(|c| c.key.len())
        .max()
        .unwrap_or(3)
        .max(3);
    text.push_str(&format!(
        "#\n# {:>5}  {:<key_width$}  {:<10}  NOTE\n",
        "LINE", "KEY", "ACTION"
    ));
    for c in &r.changes {
        text.push_str(&format!(
            "# {:>5}  {:<key_width$}  {:<10}  {}\n",
            c.line,
            c.key,
            c.action.word(),
            c.note
        ));
    }
    text
}

/// The engine, once it answers and is a swarm manager.
async fn manager() -> anyhow::Result<Engine> {
    let engine = Engine::connect()?;
    engine.version().await?;
    engine.swarm_manager().await?;
    Ok(engine)
}

#[derive(Serialize)]
struct Deployed {
    networks: Vec<NetworkCheck>,
    layers: Vec<LayerResult>,
    seconds: f64,
}

/// deploy, and update (`update`: every service gets new tasks).
pub fn deploy(ctx: &Context, names: &[StackName], update: bool) -> Result<Box<dyn Report>> {
    let (mut root, selection) = ctx.select(names)?;
    // As `enable` does: declared secrets are generated before the stacks see their env layers.
    // Into env files: the swarm reads its secrets from there, not from this host's credentials.
    if crate::secrets::generate(&root, &selection, crate::secrets::Store::EnvFile)?
        .iter()
        .any(|s| s.generated)
    {
        root = crate::model::select(&ctx.root_dir, names)?.root;
    }
    let (layers, warnings) = swarm::plan(&root, &selection)?;
    ctx.out.diagnostics(&warnings);
    let specs: Vec<_> = used_networks(&root, &selection);
    let out = ctx.out;
    let started = std::time::Instant::now();
    let (networks, layers) = block_on(async {
        let engine = manager().await?;
        let checks = engine.ensure_networks(&specs, Scope::Swarm).await?;
        engine::drift_error(&checks)?;
        let progress = |line: &str| {
            let _ = out.progress(line);
        };
        let layers = swarm_deploy::deploy(&engine, &layers, update, &progress).await?;
        Ok((checks, layers))
    })?;
    let deployed = Deployed {
        networks,
        layers,
        seconds: started.elapsed().as_secs_f64(),
    };
    let stacks = || deployed.layers.iter().flat_map(|l| &l.stacks);
    let failed: Vec<String> = stacks()
        .filter(|s| s.outcome == Outcome::Failed)
        .map(|s| {
            format!(
                "stack {} failed: {}",
                s.stack,
                s.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    if !failed.is_empty() {
        let listed = |outcome: Outcome| -> Vec<String> {
            stacks()
                .filter(|s| s.outcome == outcome)
                .map(|s| match outcome {
                    Outcome::Ready => format!("{} ({:.1}s)", s.stack, s.seconds),
                    _ => s.stack.clone(),
                })
                .collect()
        };
        let mut message = failed.join("\n");
        for (outcome, what) in [
            (Outcome::Ready, "ready"),
            (
                Outcome::Skipped,
                "not deployed (they require a failed stack)",
            ),
        ] {
            let names = listed(outcome);
            if !names.is_empty() {
                message.push_str(&format!("\n  {what}: {}", names.join(", ")));
            }
        }
        message.push_str("\n  `composectl swarm status` shows every service; `docker service ps --no-trunc STACK_SERVICE` each task");
        return Err(Error::Failed(anyhow!(message)));
    }
    Ok(Box::new(report(deployed, |d, out| {
        let networks: Vec<String> = d
            .networks
            .iter()
            .map(|n| format!("{} {}", n.name, n.state.word()))
            .collect();
        if !networks.is_empty() {
            out.line(format!("networks: {}", networks.join(", ")))?;
        }
        for layer in &d.layers {
            let stacks: Vec<String> = layer
                .stacks
                .iter()
                .map(|s| {
                    let n = s.services.len();
                    format!("{} ({n} service{})", s.stack, if n == 1 { "" } else { "s" })
                })
                .collect();
            out.line(format!(
                "layer {}: {} ready in {:.1}s",
                layer.layer,
                stacks.join(", "),
                layer.seconds
            ))?;
        }
        out.line(format!("deployed in {:.1}s", d.seconds))
    })))
}

/// The networks of networks.toml the selected stacks join.
fn used_networks<'r>(
    root: &'r Root,
    selection: &BTreeSet<String>,
) -> Vec<&'r crate::config::networks::NetworkSpec> {
    let names: BTreeSet<&str> = selection
        .iter()
        .filter_map(|s| root.stacks.get(s))
        .flat_map(|s| s.external_networks())
        .collect();
    names
        .into_iter()
        .filter_map(|n| root.networks.get(n))
        .collect()
}

#[derive(Serialize)]
struct StackStatus {
    stack: String,
    in_root: bool,
    deployed: bool,
    ready: bool,
    services: Vec<ServiceState>,
}

struct Status(Vec<StackStatus>);

impl Report for Status {
    fn text(&self, out: &mut Text<'_>) -> std::io::Result<()> {
        out.line(format!(
            "{:<16} {:<16} {:<14} {:>6}  {:<8} {:<24} PROBLEM",
            "STACK", "SERVICE", "MODE", "TASKS", "HEALTH", "NODES"
        ))?;
        for stack in &self.0 {
            if !stack.deployed {
                out.line(format!("{:<16} not deployed", stack.stack))?;
                continue;
            }
            for s in &stack.services {
                let health = match (s.healthcheck, s.ready) {
                    (false, _) => "-",
                    (true, true) => "healthy",
                    (true, false) => "waiting",
                };
                out.line(format!(
                    "{:<16} {:<16} {:<14} {:>6}  {:<8} {:<24} {}",
                    stack.stack,
                    s.service,
                    s.mode,
                    format!("{}/{}", s.running, s.desired),
                    health,
                    s.nodes.join(","),
                    s.problem.as_deref().unwrap_or("")
                ))?;
            }
        }
        Ok(())
    }

    fn json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.0).ok()
    }

    fn exit_code(&self) -> u8 {
        if !self.0.is_empty() && self.0.iter().all(|s| s.ready) {
            exit::OK
        } else {
            exit::NOT_ACTIVE
        }
    }
}

/// The named stacks, or every stack of the root and every stack deployed on the swarm.
pub fn status(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    let (root, diags) = model::load_partial(&ctx.root_dir);
    if names.is_empty() {
        ctx.out.diagnostics(&diags);
    }
    let in_root: BTreeSet<String> = root
        .map(|r| r.stacks.into_keys().collect())
        .unwrap_or_default();
    let stacks = block_on(async {
        let engine = manager().await?;
        let deployed = engine.stacks().await?;
        let wanted: BTreeSet<String> = if names.is_empty() {
            in_root.union(&deployed).cloned().collect()
        } else {
            names.iter().map(ToString::to_string).collect()
        };
        let nodes = engine.node_names().await?;
        let mut stacks = Vec::new();
        for stack in wanted {
            let snapshot = Snapshot::read(&engine, &stack, &nodes).await?;
            let services: Vec<ServiceState> =
                snapshot.services().map(|s| snapshot.state(s)).collect();
            stacks.push(StackStatus {
                in_root: in_root.contains(&stack),
                deployed: !services.is_empty(),
                ready: !services.is_empty() && services.iter().all(|s| s.ready),
                services,
                stack,
            });
        }
        Ok(stacks)
    })?;
    Ok(Box::new(Status(stacks)))
}

#[derive(Serialize)]
struct RemovedAll {
    stacks: Vec<Removed>,
    /// The overlay networks of networks.toml (when every stack was removed).
    networks: Vec<String>,
}

/// The named stacks and the deployed stacks of the root that require them, dependents first;
/// with no names, every stack of the root and then its overlay networks.
pub fn rm(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    let (root, diags) = model::load_partial(&ctx.root_dir);
    ctx.out.diagnostics(&diags);
    let Some(root) = root else {
        return Err(diags.into());
    };
    if names.is_empty() && diags.has_errors() {
        // Which stacks and networks "all" means depends on a root that loads.
        return Err(diags.into());
    }
    let limit = root.settings.stop_timeout;
    let removed = block_on(async {
        let engine = manager().await?;
        let deployed = engine.stacks().await?;
        let order = removal_order(&root, names, &deployed);
        let mut removed = Vec::new();
        for stack in order {
            let gone = swarm_deploy::remove(&engine, &stack, limit).await?;
            if !gone.services.is_empty() || !gone.objects.is_empty() {
                removed.push(gone);
            }
        }
        let mut networks = Vec::new();
        if names.is_empty() {
            let deadline = tokio::time::Instant::now() + limit;
            let mut objects = Vec::new();
            for spec in root.networks.values() {
                // Only the swarm's: a bridge of the same name belongs to the single-host path.
                if engine
                    .network(&spec.name)
                    .await?
                    .is_some_and(|n| n.driver.as_deref() == Some("overlay"))
                {
                    objects.push(StackObject::network(&spec.name));
                    networks.push(spec.name.clone());
                }
            }
            swarm_deploy::remove_objects(&engine, &objects, deadline, limit).await?;
        }
        Ok(RemovedAll {
            stacks: removed,
            networks,
        })
    })?;
    Ok(Box::new(report(removed, |r, out| {
        if r.stacks.is_empty() && r.networks.is_empty() {
            return out.line("nothing to remove");
        }
        for stack in &r.stacks {
            let objects: Vec<String> = stack
                .objects
                .iter()
                .map(|o| format!("{} {}", o.kind.word(), o.name))
                .collect();
            out.line(format!(
                "removed {}: services: {}; {}",
                stack.stack,
                if stack.services.is_empty() {
                    "none".to_string()
                } else {
                    stack.services.join(", ")
                },
                if objects.is_empty() {
                    "nothing else".to_string()
                } else {
                    objects.join(", ")
                }
            ))?;
        }
        if !r.networks.is_empty() {
            out.line(format!("removed networks: {}", r.networks.join(", ")))?;
        }
        Ok(())
    })))
}

/// Which stacks `rm` removes, dependents before what they require.
fn removal_order(root: &Root, names: &[StackName], deployed: &BTreeSet<String>) -> Vec<String> {
    let remove: BTreeSet<String> = if names.is_empty() {
        root.stacks
            .keys()
            .cloned()
            .chain(
                deployed
                    .iter()
                    .filter(|d| root.stacks.contains_key(*d))
                    .cloned(),
            )
            .collect()
    } else {
        names.iter().map(ToString::to_string).collect()
    };
    let graph = root.graph();
    let remove = graph.with_dependents(remove, |stack| deployed.contains(stack));
    let mut order: Vec<String> = graph
        .subgraph(&remove)
        .layers()
        .into_iter()
        .rev()
        .flatten()
        .collect();
    // Stacks the root does not know (no longer in it) have nothing depending on them.
    order.extend(remove.into_iter().filter(|s| !root.stacks.contains_key(s)));
    order
}
