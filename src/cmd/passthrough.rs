//! compose: runs compose for one stack as its supervisor runs it (project, files, directory,
//! pinned images, env layers), for the verbs that look at a running stack.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use anyhow::anyhow;

use crate::compose_cli::Compose;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::StackName;
use crate::output::Report;
use crate::state::StackState;

/// compose's global options that take a value, so the verb is found after them.
const OPTIONS_WITH_VALUES: [&str; 4] = ["--ansi", "--parallel", "--profile", "--progress"];

/// Global options composectl sets itself: the supervisor's project and files.
const OPTIONS_SET_HERE: [&str; 6] = [
    "-p",
    "--project-name",
    "-f",
    "--file",
    "--project-directory",
    "--env-file",
];

/// What to do instead of a verb that changes the stack's containers behind its supervisor,
/// which would fail the stack (a container it did not start, gone) or be undone at its next
/// start.
fn instead(verb: &str, stack: &str) -> Option<String> {
    let unit = format!("compose@{stack}.service");
    Some(match verb {
        "up" | "start" => {
            format!("start the stack with: composectl start {stack} (or systemctl start {unit})")
        }
        "down" | "stop" => {
            format!("stop the stack with: composectl stop {stack} (or systemctl stop {unit})")
        }
        "restart" => format!(
            "restart the stack with: composectl restart {stack}; to apply changed files without a restart: composectl reload {stack}"
        ),
        "rm" | "kill" | "pause" | "unpause" | "create" | "scale" | "watch" => format!(
            "the supervisor of {unit} owns the stack's containers: use composectl stop, start, restart or reload {stack}"
        ),
        "run" => format!(
            "a one-off container would count as one of the stack's: run a command in a running container with composectl compose {stack} -- exec SERVICE COMMAND"
        ),
        _ => return None,
    })
}

/// The compose verb of `args`: the first word that is neither a global option nor its value.
fn verb(args: &[OsString]) -> Result<Option<String>> {
    let mut words = args.iter().map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        let option = word.split('=').next().unwrap_or_default();
        if OPTIONS_SET_HERE.contains(&option) {
            return Err(Error::usage(format!(
                "{option} is composectl's to set: it runs compose with the stack's project, files and env layers"
            )));
        }
        if OPTIONS_WITH_VALUES.contains(&option) && !word.contains('=') {
            words.next();
        } else if !word.starts_with('-') {
            return Ok(Some(word.into_owned()));
        }
    }
    Ok(None)
}

pub fn compose(ctx: &Context, name: &StackName, args: &[OsString]) -> Result<Box<dyn Report>> {
    if let Some(verb) = verb(args)?
        && let Some(instead) = instead(&verb, name)
    {
        return Err(Error::usage(format!(
            "composectl compose does not run `{verb}`: {instead}"
        )));
    }
    // The shared files and the stack's own, as its supervisor loads them.
    let root = ctx.load_one(name)?;
    let stack = root.stack(name)?;
    let pins = StackState::new(ctx.mode, name).pinned();
    let mut command = Compose::new(&root, stack)
        .pinned(pins)
        .placed(crate::runtime::placement(ctx.mode, name))
        .with_file();
    command.args(args);
    // Interpolation sees the env layers only, as in the unit, not this shell's variables;
    // what reaches the engine and the terminal is kept.
    command.env_clear();
    for (key, value) in std::env::vars_os() {
        let keep = key.to_str().is_some_and(|key| {
            matches!(
                key,
                "PATH"
                    | "HOME"
                    | "USER"
                    | "TERM"
                    | "LANG"
                    | "COLUMNS"
                    | "LINES"
                    | "NO_COLOR"
                    | "XDG_RUNTIME_DIR"
            ) || key.starts_with("LC_")
                || key.starts_with("DOCKER_")
        });
        if keep {
            command.env(key, value);
        }
    }
    // Replaces composectl: compose gets the terminal and the signals (exec -it, logs -f).
    let error = command.exec();
    Err(anyhow!(
        "cannot run {}: {error}; install Compose v2 (docker compose) or set compose = [...] in composectl.toml",
        root.settings.compose.join(" ")
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb_of(args: &[&str]) -> Option<String> {
        verb(&args.iter().map(OsString::from).collect::<Vec<_>>()).expect("no option set here")
    }

    #[test]
    fn the_verb_is_found_after_global_options() {
        assert_eq!(verb_of(&["ps", "-a"]).as_deref(), Some("ps"));
        assert_eq!(verb_of(&["--profile", "gpu", "ps"]).as_deref(), Some("ps"));
        assert_eq!(verb_of(&["--profile=gpu", "up"]).as_deref(), Some("up"));
        assert_eq!(
            verb_of(&["--dry-run", "logs", "-f"]).as_deref(),
            Some("logs")
        );
        assert_eq!(verb_of(&["--version"]), None);
        let set_here = verb(&[
            OsString::from("-p"),
            OsString::from("x"),
            OsString::from("ps"),
        ]);
        assert!(set_here.is_err());
    }

    #[test]
    fn verbs_that_fight_the_supervisor_say_what_to_use() {
        for verb in [
            "up", "down", "start", "stop", "restart", "rm", "kill", "run", "scale",
        ] {
            let instead = instead(verb, "genai").expect(verb);
            assert!(instead.contains("genai"), "{instead}");
        }
        assert!(instead("down", "genai").is_some_and(|s| s.contains("composectl stop genai")));
        for verb in [
            "ps", "exec", "logs", "config", "top", "images", "pull", "cp",
        ] {
            assert!(instead(verb, "genai").is_none(), "{verb}");
        }
    }
}
