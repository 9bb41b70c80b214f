//! secrets: the secrets stacks declare, generated where no env file sets them yet.

use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::model::StackName;
use crate::output::{Report, report};
use crate::secrets::{self, Secret};

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    secret: Secret,
    /// Only with --show.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

pub fn secrets(ctx: &Context, names: &[StackName], show: bool) -> Result<Box<dyn Report>> {
    let (root, stacks) = ctx.select(names)?;
    let listed: Vec<Listed> = secrets::generate(&root, &stacks)?
        .into_iter()
        .map(|secret| Listed {
            value: show.then(|| secret.value.clone()),
            secret,
        })
        .collect();
    Ok(Box::new(report(listed, |listed, out| {
        if listed.is_empty() {
            return out.line("no stack declares secrets (x-composectl.secrets)");
        }
        for l in listed {
            let s = &l.secret;
            let state = if s.generated { "generated" } else { "set" };
            let value = l
                .value
                .as_ref()
                .map(|v| format!(" = {v}"))
                .unwrap_or_default();
            out.line(format!(
                "{}: {}{value} ({state} in {})",
                s.stack,
                s.variable,
                s.file.display()
            ))?;
        }
        Ok(())
    })))
}
