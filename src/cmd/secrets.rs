//! secrets: the secrets stacks declare, where each is stored (an env file or an encrypted
//! credential), generated where nothing sets them yet, set from stdin, moved into encrypted
//! credentials.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};

use anyhow::anyhow;
use serde::Serialize;

use crate::context::{Context, block_on};
use crate::credentials;
use crate::diag::Diagnostic;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::model::StackName;
use crate::output::{Report, report};
use crate::secrets::{self, Moved, Secret, Store};
use crate::systemd::Systemd;
use crate::units;

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    secret: Secret,
    /// Only with --reveal.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

pub fn secrets(ctx: &Context, names: &[StackName], reveal: bool) -> Result<Box<dyn Report>> {
    let (root, stacks) = ctx.select(names)?;
    let store = secrets::store(ctx.mode, &root);
    let listed = secrets::generate(&root, &stacks, store)?;
    let mut revealed = Vec::new();
    for secret in listed {
        let value = match (&secret.value, reveal) {
            (_, false) => None,
            (Some(value), true) => Some(value.clone()),
            (None, true) => {
                if !nix::unistd::geteuid().is_root() {
                    return Err(Error::usage(
                        "encrypted secrets are revealed to root only: run with sudo",
                    ));
                }
                let id = credentials::id(
                    &secret.stack,
                    root.stacks[&secret.stack]
                        .secrets
                        .iter()
                        .find(|s| s.name == secret.variable)
                        .ok_or_else(|| anyhow!("{} is not declared", secret.variable))?,
                );
                Some(credentials::decrypt(&id)?)
            }
        };
        revealed.push(Listed { secret, value });
    }
    let plaintext_why = match (store, ctx.mode) {
        (Store::Encrypted, _) => None,
        (Store::EnvFile, Mode::User) => Some(
            "user mode: a user manager of systemd before 256 cannot decrypt credentials, so they stay in .env.local (mode 0600)",
        ),
        (Store::EnvFile, Mode::System) => {
            Some("sudo composectl secrets encrypt seals them with this host's key")
        }
    };
    Ok(Box::new(report(revealed, move |listed, out| {
        if listed.is_empty() {
            return out.line("no stack declares secrets (x-composectl.secrets)");
        }
        for l in listed {
            let s = &l.secret;
            let state = match (s.generated, s.encrypted) {
                (true, true) => "generated, encrypted in",
                (true, false) => "generated, plaintext in",
                (false, true) => "encrypted in",
                (false, false) => "plaintext in",
            };
            let value = l
                .value
                .as_ref()
                .map(|v| format!(" = {v}"))
                .unwrap_or_default();
            out.line(format!(
                "{}: {}{value} ({state} {})",
                s.stack,
                s.variable,
                s.file.display()
            ))?;
        }
        if let Some(why) = plaintext_why
            && listed.iter().any(|l| !l.secret.encrypted)
        {
            out.line(format!("plaintext secrets: {why}"))?;
        }
        Ok(())
    })))
}

/// `secrets set STACK NAME`: the value comes from stdin, or a prompt that does not echo it.
pub fn set(
    ctx: &Context,
    stack: &StackName,
    name: &str,
    value_on_command_line: bool,
) -> Result<Box<dyn Report>> {
    if value_on_command_line {
        return Err(Error::usage(format!(
            "secret values are not taken from the command line, where shell history and ps would keep them: pipe it in (systemd-ask-password -n | composectl secrets set {} {name}) or type it at the prompt",
            stack
        )));
    }
    let root = ctx.load_one(stack)?;
    let stack = &root.stacks[&**stack];
    let Some(spec) = stack.secrets.iter().find(|s| s.name == name) else {
        let near = crate::diag::closest(name, stack.secrets.iter().map(|s| s.name.as_str()))
            .map(|near| format!("did you mean {near}? "))
            .unwrap_or_default();
        return Err(Error::Invalid(
            Diagnostic::error(
                stack.compose_file.clone(),
                format!("stack {} declares no secret {name}", stack.name),
            )
            .hint(format!(
                "{near}declare it under x-composectl: secrets: (man 5 x-composectl)"
            ))
            .into(),
        ));
    };
    let value = read_value(name)?;
    if value.is_empty() {
        return Err(Error::usage(format!("the value for {name} is empty")));
    }
    let secret = secrets::set(&root, stack, spec, &value, secrets::store(ctx.mode, &root))?;
    Ok(Box::new(report(secret, |s, out| {
        out.line(format!(
            "set {} of {} ({} {}); a running stack gets it when it restarts",
            s.variable,
            s.stack,
            if s.encrypted {
                "encrypted in"
            } else {
                "plaintext in"
            },
            s.file.display()
        ))
    })))
}

/// The value from stdin (one trailing line break dropped), or typed at a prompt without echo.
fn read_value(name: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut value = String::new();
        stdin
            .lock()
            .read_to_string(&mut value)
            .map_err(|e| anyhow!("cannot read the value from stdin: {e}"))?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        return Ok(value.strip_suffix('\r').unwrap_or(value).to_string());
    }
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    // The prompt goes to the terminal's stderr, so stdout stays the report.
    let mut prompt = std::io::stderr();
    let _ = write!(prompt, "{name}: ").and_then(|()| prompt.flush());
    let saved = tcgetattr(&stdin).map_err(|e| anyhow!("cannot read the terminal's mode: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
        .map_err(|e| anyhow!("cannot turn the terminal's echo off: {e}"))?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    let _ = writeln!(prompt);
    read.map_err(|e| anyhow!("cannot read the value: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[derive(Serialize)]
struct Encrypted {
    moved: Vec<Moved>,
    /// Installed drop-ins rewritten so the units load the credentials.
    wrote: Vec<std::path::PathBuf>,
}

/// `secrets encrypt`: seals the stacks' secrets, then rewrites the installed units of those
/// stacks so they load them, before any of them could start without their secrets.
pub fn encrypt(ctx: &Context, names: &[StackName]) -> Result<Box<dyn Report>> {
    if ctx.mode == Mode::User {
        return Err(Error::usage(
            "encrypted credentials are for system mode: a user manager of systemd before 256 cannot decrypt them; user-mode secrets stay in .env.local (mode 0600)",
        ));
    }
    ctx.require_privileges()?;
    credentials::usable().map_err(|e| anyhow!("{e:#}; composectl doctor checks the host key"))?;
    let (root, stacks) = ctx.select(names)?;
    let moved = secrets::encrypt(&root, &stacks)?;
    // The root as it is now, with the credentials in it, for the drop-ins of installed stacks.
    let (root, _) = ctx.select(names)?;
    let unit_dir = ctx.unit_dir();
    let installed: BTreeSet<String> = unit_dir
        .installed_dropins()
        .keys()
        .filter_map(|path| units::stack_of_dropin(path).map(str::to_string))
        .filter(|stack| stacks.contains(stack))
        .collect();
    let wrote = if installed.is_empty() {
        Vec::new()
    } else {
        let files = ctx.render(&root, &installed)?;
        block_on(async {
            let systemd = Systemd::connect(ctx.mode).await?;
            let lock = unit_dir.lock()?;
            let mut dropins = unit_dir.installed_dropins();
            for file in files.iter().filter(|f| f.is_dropin()) {
                dropins.insert(file.path.clone(), file.contents.clone());
            }
            let shared: Vec<_> = files.iter().filter(|f| !f.is_dropin()).cloned().collect();
            let changed = unit_dir.apply(&lock, &shared, &dropins)?;
            systemd.reload().await?;
            Ok(changed)
        })?
        .iter()
        .map(|p| unit_dir.path().join(p))
        .collect()
    };
    Ok(Box::new(report(Encrypted { moved, wrote }, |e, out| {
        for m in &e.moved {
            let from = match (&m.from, &m.left_in) {
                (_, Some(left)) => format!(
                    " (a copy stays in {}, which other stacks read)",
                    left.display()
                ),
                (Some(from), None) => format!(", removed from {}", from.display()),
                (None, None) => String::new(),
            };
            out.line(format!(
                "{}: {} encrypted in {}{from}",
                m.stack,
                m.variable,
                m.credential.display()
            ))?;
        }
        for path in &e.wrote {
            out.line(format!("wrote {}", path.display()))?;
        }
        if !e.wrote.is_empty() {
            out.line("running stacks load their credentials when they restart")?;
        }
        out.line(
            "the credentials are bound to this host's key: to move the root, run composectl secrets --reveal before, and secrets set on the new host",
        )
    })))
}
