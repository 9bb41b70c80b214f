//! The commands. Each file holds one family and imports the context and the layers below it,
//! never another command's file; each command returns a report that `output` prints, or an
//! error that `lib::run` turns into the exit code.

mod backup;
mod doctor;
mod inspect;
mod install;
mod jobs;
mod logs;
mod networks;
mod notify;
mod passthrough;
mod run;
mod secrets;
mod status;
mod swarm;
mod update;

use crate::cli::{Cli, Command, GlobalArgs, SecretsCommand, SwarmCommand};
use crate::context::Context;
use crate::error::Result;
use crate::model::StackName;
use crate::output::{Output, Report};
use crate::systemd::JobKind;

/// `run STACK` as `composectl-supervisor` parses it.
pub fn supervise(global: &GlobalArgs, out: Output, stack: &StackName) -> Result<Box<dyn Report>> {
    run::run(&Context::new(global, out)?, stack)
}

pub fn execute(cli: Cli, out: Output) -> Result<Box<dyn Report>> {
    let ctx = Context::new(&cli.global, out)?;
    match cli.command {
        Command::Check(stacks) => inspect::check(&ctx, &stacks.names),
        Command::Render { stacks, out } => inspect::render(&ctx, &stacks.names, out.as_deref()),
        Command::Diff { stacks, unit_dir } => inspect::diff(&ctx, &stacks.names, unit_dir),
        Command::Graph { stacks, format } => inspect::graph(&ctx, &stacks.names, format),
        Command::Enable { stacks, now } => install::enable(&ctx, &stacks.names, now),
        Command::Disable { stacks, now } => install::disable(&ctx, &stacks.names, now),
        Command::Start(stacks) => jobs::run(&ctx, &stacks.names, JobKind::Start),
        Command::Stop(stacks) => jobs::run(&ctx, &stacks.names, JobKind::Stop),
        Command::Restart(stacks) => jobs::run(&ctx, &stacks.names, JobKind::Restart),
        Command::Reload(stacks) => jobs::run(&ctx, &stacks.names, JobKind::Reload),
        Command::Update { names, all, check } => {
            if check {
                update::check(&ctx, &names, all)
            } else {
                update::update(&ctx, &names, all)
            }
        }
        Command::Status(stacks) => status::status(&ctx, &stacks.names),
        Command::List => status::list(&ctx),
        Command::Networks { wait } => networks::networks(&ctx, wait),
        Command::Secrets {
            action: None,
            stacks,
            reveal,
        } => secrets::secrets(&ctx, &stacks.names, reveal),
        Command::Secrets {
            action: Some(SecretsCommand::Set { stack, name, value }),
            ..
        } => secrets::set(&ctx, &stack, &name, value.is_some()),
        Command::Secrets {
            action: Some(SecretsCommand::Encrypt(stacks)),
            ..
        } => secrets::encrypt(&ctx, &stacks.names),
        Command::Backup { stack, to, keep } => {
            backup::backup(&ctx, &stack, to, keep.map(|k| k as usize))
        }
        Command::Restore {
            stack,
            archive,
            stop,
        } => backup::restore(&ctx, &stack, &archive, stop),
        Command::Doctor => doctor::doctor(&ctx),
        Command::Notify { stack, test } => notify::notify(&ctx, &stack, test),
        Command::Swarm { command } => match command {
            SwarmCommand::Render(stacks) => swarm::render(&ctx, &stacks.names),
            SwarmCommand::Deploy(stacks) => swarm::deploy(&ctx, &stacks.names, false),
            SwarmCommand::Update(stacks) => swarm::deploy(&ctx, &stacks.names, true),
            SwarmCommand::Status(stacks) => swarm::status(&ctx, &stacks.names),
            SwarmCommand::Rm(stacks) => swarm::rm(&ctx, &stacks.names),
        },
        Command::Run { stack, reload } => {
            if reload {
                run::reload(&ctx, &stack)
            } else {
                run::run(&ctx, &stack)
            }
        }
        Command::Compose { stack, args } => passthrough::compose(&ctx, &stack, &args),
        Command::Logs {
            stack,
            service,
            follow,
            lines,
            since,
        } => logs::logs(
            &ctx,
            &logs::Query {
                stack: &stack,
                service: service.as_deref(),
                follow,
                lines,
                since: since.as_deref(),
            },
        ),
    }
}
