//! networks: the networks of networks.toml on the engine, created where missing.

use crate::context::{Context, block_on};
use crate::engine::{self, Engine};
use crate::error::Result;
use crate::output::{Report, report};

pub fn networks(ctx: &Context, wait: bool) -> Result<Box<dyn Report>> {
    let root = ctx.load()?;
    let specs: Vec<_> = root.networks.values().collect();
    let checks = block_on(async {
        let engine = if wait {
            let mut said = String::new();
            Engine::wait(root.settings.start_timeout, |text| {
                if text != said {
                    ctx.out.note(text);
                    said = text.to_string();
                }
            })
            .await?
        } else {
            let engine = Engine::connect()?;
            engine.version().await?;
            engine
        };
        Ok(engine.ensure_networks(&specs, engine::Scope::Local).await?)
    })?;
    // A drifted network is a failure, with what differs and how to fix it.
    engine::drift_error(&checks)?;
    Ok(Box::new(report(checks, |checks, out| {
        for check in checks {
            out.line(format!(
                "{}: {} ({})",
                check.name,
                check.state.word(),
                check.subnet
            ))?;
        }
        Ok(())
    })))
}
