//! The command line, defined once: `main.rs` parses it, the man page and shell completions are
//! generated from it. `composectl-supervisor` reads its subset (`run STACK` and the global
//! options units pass) by hand, in `supervisor_args`, so that its binary does not link clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::model::StackName;

#[derive(Debug, Parser)]
#[command(
    name = "composectl",
    version,
    about = "systemd as the orchestrator of layered Docker Compose stacks",
    long_about = "composectl reads a root of compose stacks (stacks/NAME/compose.yaml) and networks.toml, \
writes one systemd unit per stack (compose@NAME.service) ordered by the stacks' requires/wants, and \
drives systemd over D-Bus. A stack is active only once its containers are healthy.",
    after_help = "Exit codes: 0 ok, 1 operation failed, 2 usage or configuration error, 3 not active (status), \
4 newer images (update --check). \
With -o json every command prints one JSON document (logs: one journal entry a line), failures an \
object {\"error\": {\"kind\", \"exit_code\", \"message\", \"diagnostics\"}}."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Default, Args)]
pub struct GlobalArgs {
    /// The root holding networks.toml and stacks/ [default: /etc/composectl, or
    /// ~/.config/composectl with --user]
    #[arg(long, global = true, env = "COMPOSECTL_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Manage the user's systemd instance (default when not root)
    #[arg(long, global = true, conflicts_with = "system")]
    pub user: bool,
    /// Manage the system's systemd instance (default as root)
    #[arg(long, global = true)]
    pub system: bool,
    /// Output format
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Never colour output (also: NO_COLOR=1)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the root: networks.toml, every compose file, the dependency graph
    Check(StackArgs),
    /// Print the unit files enable would write (or write them into a directory)
    Render {
        #[command(flatten)]
        stacks: StackArgs,
        /// Write the files into DIR instead of printing them
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Show what enable would change in the unit directory
    Diff {
        #[command(flatten)]
        stacks: StackArgs,
        /// Compare against DIR instead of the mode's unit directory
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Print the dependency graph between stacks
    Graph {
        #[command(flatten)]
        stacks: StackArgs,
        /// Graph notation
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Install the stacks' units (with what they require or want), reload, enable
    Enable {
        #[command(flatten)]
        stacks: RequiredStacks,
        /// Also start them and wait until they are ready
        #[arg(long)]
        now: bool,
    },
    /// Disable stacks and remove their units
    Disable {
        #[command(flatten)]
        stacks: RequiredStacks,
        /// Also stop them first
        #[arg(long)]
        now: bool,
    },
    /// Start stacks and wait until they are ready
    Start(RequiredStacks),
    /// Stop stacks
    Stop(RequiredStacks),
    /// Restart stacks and wait until they are ready
    Restart(RequiredStacks),
    /// Show the units' state; exit code 3 when not all are active
    Status(StackArgs),
    /// List every stack in the root, and installed units whose stack is gone
    List,
    /// Check the networks of networks.toml on the engine and create the missing ones
    Networks {
        /// Wait for the engine to answer (up to the start timeout) instead of failing at once
        #[arg(long)]
        wait: bool,
    },
    /// Apply changed compose files and env layers to running stacks: recreate what changed,
    /// keep the units active, wait until they are ready again (systemctl reload)
    Reload(RequiredStacks),
    /// Pull newer images and apply them, health-gated: a stack that does not become ready again
    /// goes back to the images it ran before (exit 1). --check: only say which are newer
    /// (exit 4 when some are, 1 when some could not be checked)
    Update {
        /// Stacks to update, in dependency order
        #[arg(
            value_name = "STACK",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        names: Vec<StackName>,
        /// Every enabled stack
        #[arg(long)]
        all: bool,
        /// Only report which images have a newer version, locally or in their registry
        #[arg(long)]
        check: bool,
    },
    /// Generate the secrets stacks declare that no env file sets yet (into .env.local, mode 0600)
    Secrets {
        #[command(flatten)]
        stacks: StackArgs,
        /// Print the secrets' values too
        #[arg(long)]
        show: bool,
    },
    /// Archive a stack's named volumes (and the paths it marks) after its backup hooks, into
    /// one file of mode 0600
    Backup {
        /// The stack
        stack: StackName,
        /// Directory for the archive [default: [backup] dir in composectl.toml, else
        /// /var/backups/composectl, or ~/.local/state/composectl/backups with --user]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Then keep only the newest N archives of the stack there [default: [backup] keep]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
    /// Put a stack's volumes (and marked paths) back from an archive of `backup`
    Restore {
        /// The stack
        stack: StackName,
        /// The archive
        archive: PathBuf,
        /// Stop the stack (and what requires it) for the restore and start them again after;
        /// without it a running stack is refused
        #[arg(long)]
        stop: bool,
    },
    /// What this host lacks for composectl, and how to fix it
    Doctor,
    /// The supervisor: the main process of compose@STACK.service (not for interactive use)
    Run {
        /// The stack to run
        stack: StackName,
        /// Ask the running supervisor to apply changed files and wait until the stack is ready
        /// again (the unit's ExecReload=)
        #[arg(long)]
        reload: bool,
    },
    /// Deploy the root to Docker Swarm, layer by layer, health-gated
    ///
    /// Beyond one host: the stacks go to the swarm whose manager DOCKER_HOST names (`composectl
    /// doctor` says how to get one), each compose file translated for `docker stack deploy`.
    Swarm {
        #[command(subcommand)]
        command: SwarmCommand,
    },
    /// Show a stack's logs from the journal (-o json: journald's JSON, one entry a line)
    Logs {
        /// The stack
        stack: StackName,
        /// Only this compose service's lines
        service: Option<String>,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// How many lines to show
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<u32>,
        /// Only lines since this time (journalctl syntax: "1h ago", "2026-11-22 10:00", "today")
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Print each stack's compose file as `docker stack deploy` gets it, under a table of what
    /// was translated, dropped, warned about or refused (exit 2 when anything is refused)
    Render(StackArgs),
    /// Create the networks of networks.toml as overlay networks, then deploy the stacks layer by
    /// layer, each once every service of the stacks it requires is running and healthy
    Deploy(StackArgs),
    /// Deploy again, giving every service new tasks (the nodes pull its image again), layer by
    /// layer
    Update(StackArgs),
    /// Show the stacks' services: tasks running of desired, health, nodes; exit code 3 unless
    /// all are ready
    Status(StackArgs),
    /// Remove stacks from the swarm, with the deployed stacks that require them
    Rm(RemovedStacks),
}

#[derive(Debug, Args)]
pub struct RemovedStacks {
    /// Stacks to remove, with the deployed stacks that require them [default: every stack of
    /// the root, and then its overlay networks]
    #[arg(value_name = "STACK")]
    pub names: Vec<StackName>,
}

#[derive(Debug, Args)]
pub struct RequiredStacks {
    /// Stacks to act on
    #[arg(value_name = "STACK", required = true)]
    pub names: Vec<StackName>,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Stacks to act on, with the stacks they require or want [default: all]
    #[arg(value_name = "STACK")]
    pub names: Vec<StackName>,
}

/// Whether a command line asks for JSON output, read before (or without) a successful parse, so
/// that usage errors can be JSON too.
pub fn wants_json(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.windows(2)
        .any(|pair| matches!(pair[0], "-o" | "--output") && pair[1] == "json")
        || args
            .iter()
            .any(|a| matches!(*a, "-ojson" | "--output=json"))
}

/// How `composectl-supervisor` is called: its usage errors and its man page say it.
pub const SUPERVISOR_SYNOPSIS: &str =
    "composectl-supervisor [--user | --system] [--root DIR] run STACK";

/// `composectl-supervisor`'s command line: `composectl run STACK` with the global options a unit
/// passes, read without clap so the supervisor binary does not link it.
pub fn supervisor_args(
    args: impl IntoIterator<Item = OsString>,
) -> Result<(GlobalArgs, StackName), Error> {
    let usage = |problem: String| {
        Error::usage(format!(
            "{problem}; usage: {SUPERVISOR_SYNOPSIS} (units run it; see composectl run)"
        ))
    };
    let mut global = GlobalArgs {
        root: std::env::var_os("COMPOSECTL_ROOT")
            .filter(|root| !root.is_empty())
            .map(PathBuf::from),
        ..GlobalArgs::default()
    };
    let mut words = Vec::new();
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--user") => global.user = true,
            Some("--system") => global.system = true,
            Some("--root") => {
                let dir = args
                    .next()
                    .ok_or_else(|| usage("--root needs a directory".into()))?;
                global.root = Some(dir.into());
            }
            Some(option) if option.starts_with('-') => match option.strip_prefix("--root=") {
                Some(dir) => global.root = Some(dir.into()),
                None => return Err(usage(format!("unknown option {option}"))),
            },
            _ => words.push(arg),
        }
    }
    if global.user && global.system {
        return Err(usage("--user and --system exclude each other".into()));
    }
    match words.as_slice() {
        [command, stack] if command == "run" => {
            let stack = stack
                .to_str()
                .ok_or_else(|| usage(format!("invalid stack name {stack:?}")))?;
            Ok((global, stack.parse().map_err(usage)?))
        }
        _ => Err(usage("expected run STACK".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(GlobalArgs, StackName), Error> {
        supervisor_args(
            std::iter::once("composectl-supervisor")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn problem(args: &[&str]) -> String {
        match parse(args) {
            Ok(parsed) => panic!("{args:?} parsed as {parsed:?}"),
            Err(error) => {
                assert_eq!(error.code(), crate::error::exit::USAGE, "{error}");
                error.to_string()
            }
        }
    }

    #[test]
    fn the_supervisor_reads_what_units_pass() {
        let (global, stack) = parse(&["--user", "--root", "/srv/my root", "run", "web"])
            .expect("the unit's command line");
        assert!(global.user && !global.system);
        assert_eq!(global.root, Some(PathBuf::from("/srv/my root")));
        assert_eq!(&*stack, "web");

        let (global, stack) = parse(&["run", "db-1", "--system", "--root=/etc/x"]).expect("parsed");
        assert!(global.system && !global.user);
        assert_eq!(global.root, Some(PathBuf::from("/etc/x")));
        assert_eq!(&*stack, "db-1");
    }

    #[test]
    fn the_supervisor_refuses_anything_else_as_a_usage_error() {
        assert!(problem(&["run"]).contains("expected run STACK"));
        assert!(problem(&["start", "web"]).contains("expected run STACK"));
        assert!(problem(&["run", "web", "db"]).contains("expected run STACK"));
        assert!(problem(&["--reload", "run", "web"]).contains("unknown option --reload"));
        assert!(problem(&["--root"]).contains("--root needs a directory"));
        assert!(problem(&["--user", "--system", "run", "web"]).contains("exclude each other"));
        assert!(problem(&["run", "Web"]).contains("invalid stack name"));
        assert!(problem(&["run", "../etc"]).contains("invalid stack name"));
    }
}
