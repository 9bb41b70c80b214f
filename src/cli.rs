//! The command line, defined once: `main.rs` parses it, the man page and shell completions are
//! generated from it. `composectl-supervisor` reads its subset (`run STACK` and the global
//! options units pass) by hand, in `supervisor_args`, so that its binary does not link clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// goes back to the images it ran before (exit 1), and one with x-composectl update.backup
    /// is backed up first when an image is newer. --check: only say which are newer (exit 4
    /// when some are, 1 when some could not be checked)
    Update {
        /// Stacks to update, in dependency order
        #[arg(
            value_name = "STACK",
            add = stack_names(),
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
    /// List the secrets stacks declare and where each is stored, generating those not set yet
    /// (encrypted where `secrets encrypt` was run, else into .env.local, mode 0600)
    #[command(args_conflicts_with_subcommands = true)]
    Secrets {
        #[command(subcommand)]
        action: Option<SecretsCommand>,
        #[command(flatten)]
        stacks: StackArgs,
        /// Print the secrets' values too (encrypted ones as root only)
        #[arg(long, alias = "show")]
        reveal: bool,
    },
    /// Archive a stack's named volumes (and the paths it marks) after its backup hooks, into
    /// one file of mode 0600
    Backup {
        /// The stack
        #[arg(add = stack_names())]
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
        #[arg(add = stack_names())]
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
    /// Run the [notify] command of composectl.toml about a failed stack (what a failing stack's
    /// composectl-notify@STACK.service runs)
    Notify {
        /// The stack
        #[arg(add = stack_names())]
        stack: StackName,
        /// Send a test notification, whatever the stack's state: try the command out
        #[arg(long)]
        test: bool,
    },
    /// The supervisor: the main process of compose@STACK.service (not for interactive use)
    Run {
        /// The stack to run
        #[arg(add = stack_names())]
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
    /// Run a compose command on a stack with the project, files and env layers its supervisor
    /// uses
    ///
    /// `docker compose --project-name STACK --file ... --project-directory ... --env-file ...
    /// ARGS`, exactly as the stack's supervisor runs compose (the root's and the stack's env
    /// layers in order, the images a rolled-back update pinned), so `ps`, `exec`, `logs -f`,
    /// `config`, `top` and `images` see the stack as it runs. Verbs that would change the stack's
    /// containers behind its supervisor (up, down, start, stop, restart, rm, kill, pause,
    /// unpause, create, run, scale, watch) are refused, with the command to use instead.
    Compose {
        /// The stack
        #[arg(add = stack_names())]
        stack: StackName,
        /// compose's verb and its arguments (after `--` when they start with a dash)
        #[arg(
            value_name = "ARGS",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<OsString>,
    },
    /// Show a stack's logs from the journal (-o json: journald's JSON, one entry a line)
    Logs {
        /// The stack
        #[arg(add = stack_names())]
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
pub enum SecretsCommand {
    /// Set a declared secret's value, read from stdin (or typed at a prompt), never from the
    /// command line: stored encrypted where the stack's secrets are, else in .env.local
    Set {
        /// The stack that declares it
        #[arg(add = stack_names())]
        stack: StackName,
        /// The secret's variable, as x-composectl.secrets declares it
        name: String,
        /// Refused: a value on the command line lands in shell history and `ps`
        #[arg(hide = true)]
        value: Option<String>,
    },
    /// Move the stacks' secrets from .env.local into systemd's encrypted credentials
    /// (/etc/credstore.encrypted; system mode, root), removing them from the env files
    Encrypt(StackArgs),
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
    #[arg(value_name = "STACK", add = stack_names())]
    pub names: Vec<StackName>,
}

#[derive(Debug, Args)]
pub struct RequiredStacks {
    /// Stacks to act on
    #[arg(value_name = "STACK", required = true, add = stack_names())]
    pub names: Vec<StackName>,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Stacks to act on, with the stacks they require or want [default: all]
    #[arg(value_name = "STACK", add = stack_names())]
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

/// The environment variable that asks composectl for shell completions instead of running
/// (the completion scripts set it: `COMPOSECTL_COMPLETE=bash composectl -- WORDS`).
pub const COMPLETE_VAR: &str = "COMPOSECTL_COMPLETE";

/// Examples, by subcommand ("" is composectl itself, "swarm deploy" a nested one): shown under
/// `--help` and as the man pages' EXAMPLES. Each is a command line and what it does.
pub const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "",
        &[
            (
                "composectl check",
                "validate the whole root (/etc/composectl as root, ~/.config/composectl otherwise)",
            ),
            (
                "sudo composectl enable --now panel database genai",
                "install, enable and start three stacks in dependency order, waiting until they are ready",
            ),
            (
                "composectl status",
                "one line per stack: state, restarts, containers running and healthy",
            ),
            (
                "composectl logs genai ollama -f",
                "follow one service's lines in the journal",
            ),
            (
                "composectl --root . render genai",
                "the units enable would write for genai, from a root in this directory",
            ),
        ],
    ),
    (
        "check",
        &[
            ("composectl check", "every stack of the root"),
            (
                "composectl check genai",
                "genai and the stacks it requires or wants",
            ),
            (
                "composectl check -o json",
                "the verdict as JSON (warnings included)",
            ),
        ],
    ),
    (
        "render",
        &[
            (
                "composectl render genai",
                "print the units enable would write for genai and what it requires or wants",
            ),
            (
                "composectl render --out /tmp/units",
                "write every unit into a directory instead",
            ),
        ],
    ),
    (
        "diff",
        &[(
            "composectl diff genai",
            "what enable would change in the unit directory, and what a reload of the running stack would recreate",
        )],
    ),
    (
        "graph",
        &[
            ("composectl graph", "the stacks in start layers"),
            (
                "composectl graph --format dot | dot -Tsvg > stacks.svg",
                "a picture of the dependencies",
            ),
        ],
    ),
    (
        "enable",
        &[
            (
                "sudo composectl enable genai",
                "install and enable genai's unit and those of the stacks it requires or wants; start at boot",
            ),
            (
                "sudo composectl enable --now genai",
                "the same, and start them now, waiting until they are ready",
            ),
        ],
    ),
    (
        "disable",
        &[(
            "sudo composectl disable --now genai",
            "stop genai, disable it and remove its units",
        )],
    ),
    (
        "start",
        &[(
            "sudo composectl start genai",
            "start genai (after what it requires) and wait until it is ready",
        )],
    ),
    (
        "stop",
        &[(
            "sudo composectl stop database",
            "stop database and the stacks that require it",
        )],
    ),
    (
        "restart",
        &[(
            "sudo composectl restart genai",
            "restart genai and wait until it is ready",
        )],
    ),
    (
        "status",
        &[
            (
                "composectl status",
                "every enabled stack; exit 3 unless all are active",
            ),
            (
                "composectl status genai",
                "one stack in detail: unit, containers, health, pinned images",
            ),
        ],
    ),
    (
        "list",
        &[(
            "composectl list",
            "every stack of the root, installed or not, and units whose stack is gone",
        )],
    ),
    (
        "networks",
        &[(
            "sudo composectl networks",
            "create the networks of networks.toml that are missing; report drift",
        )],
    ),
    (
        "reload",
        &[(
            "sudo composectl reload genai",
            "apply changed compose files and env files, recreating only what changed (systemctl reload compose@genai does the same)",
        )],
    ),
    (
        "update",
        &[
            (
                "composectl update --check --all",
                "which images have a newer version (exit 4 when some do)",
            ),
            (
                "sudo composectl update database genai",
                "pull and apply newer images, health-gated, rolled back when not ready",
            ),
        ],
    ),
    (
        "secrets",
        &[
            (
                "composectl secrets database",
                "generate database's declared secrets that no env file sets yet",
            ),
            ("composectl secrets --reveal database", "print them"),
        ],
    ),
    (
        "secrets set",
        &[
            (
                "systemd-ask-password -n | sudo composectl secrets set database POSTGRES_PASSWORD",
                "set one without it touching the command line",
            ),
            (
                "sudo composectl secrets set database POSTGRES_PASSWORD",
                "type it at a prompt that does not echo it",
            ),
        ],
    ),
    (
        "secrets encrypt",
        &[
            (
                "sudo composectl secrets encrypt",
                "move every stack's secrets into encrypted credentials",
            ),
            (
                "sudo composectl secrets encrypt database",
                "only database's",
            ),
        ],
    ),
    (
        "backup",
        &[
            (
                "sudo composectl backup database",
                "run database's backup hooks, then archive its volumes",
            ),
            (
                "sudo composectl backup database --to /mnt/nas --keep 14",
                "elsewhere, keeping the newest 14",
            ),
        ],
    ),
    (
        "restore",
        &[(
            "sudo composectl restore database /var/backups/composectl/database-20261127T174400Z.tar --stop",
            "stop database and what requires it, put its volumes back, start them again",
        )],
    ),
    (
        "doctor",
        &[(
            "composectl doctor",
            "what this host lacks for composectl, and how to fix each",
        )],
    ),
    (
        "notify",
        &[(
            "sudo composectl notify genai --test",
            "run composectl.toml's [notify] command about genai, to try it",
        )],
    ),
    (
        "logs",
        &[
            (
                "composectl logs genai",
                "genai's journal: its supervisor and every container",
            ),
            (
                "composectl logs genai open-webui -n 50",
                "the last 50 lines of one service",
            ),
            (
                "composectl logs genai -f --since '10 min ago'",
                "follow, from ten minutes ago",
            ),
        ],
    ),
    (
        "compose",
        &[
            (
                "composectl compose genai -- ps",
                "genai's containers, as compose lists them",
            ),
            (
                "composectl compose genai -- exec ollama ollama list",
                "run a command in a running container",
            ),
            (
                "composectl compose genai -- config",
                "the compose file as compose reads it with the stack's env layers",
            ),
        ],
    ),
    (
        "run",
        &[
            (
                "systemctl start compose@genai",
                "what starts genai's supervisor (composectl-supervisor run genai): not for interactive use",
            ),
            (
                "composectl --user run genai",
                "the supervisor in the foreground, outside systemd, logging to the terminal",
            ),
        ],
    ),
    (
        "swarm",
        &[
            (
                "composectl swarm deploy",
                "every stack of the root onto the swarm DOCKER_HOST manages",
            ),
            (
                "composectl swarm status",
                "their services: tasks running of desired, health, nodes",
            ),
        ],
    ),
    (
        "swarm render",
        &[(
            "composectl swarm render genai",
            "the file docker stack deploy would get for genai, under a table of what was translated, dropped or refused",
        )],
    ),
    (
        "swarm deploy",
        &[(
            "DOCKER_HOST=unix:///run/manager.sock composectl swarm deploy genai",
            "deploy genai and what it requires to a swarm, layer by layer",
        )],
    ),
    (
        "swarm update",
        &[(
            "composectl swarm update database",
            "new tasks for every service of database (its images pulled again), layer by layer",
        )],
    ),
    (
        "swarm status",
        &[(
            "composectl swarm status genai",
            "genai's services; exit 3 unless all are ready",
        )],
    ),
    (
        "swarm rm",
        &[
            (
                "composectl swarm rm genai",
                "remove genai and the deployed stacks that require it",
            ),
            (
                "composectl swarm rm",
                "every stack of the root, then its overlay networks",
            ),
        ],
    ),
];

/// Files, by subcommand, for the man pages' FILES.
pub const FILES: &[(&str, &[(&str, &str)])] = &[
    (
        "",
        &[
            (
                "/etc/composectl, ~/.config/composectl",
                "the root in system and user mode: networks.toml (see networks.toml(5)), composectl.toml (composectl.toml(5)), .env and .env.local, stacks/NAME/compose.yaml (x-composectl(5))",
            ),
            (
                "/etc/systemd/system, ~/.config/systemd/user",
                "where enable writes the units: compose@NAME.service.d/ drop-ins, composectl.target, composectl-networks.service",
            ),
            (
                "/usr/lib/systemd/system/compose@.service, /usr/lib/systemd/user/compose@.service",
                "the template every stack runs as, shipped by the package",
            ),
            (
                "/var/lib/composectl, ~/.local/state/composectl",
                "state: images pinned by a rolled-back update",
            ),
            (
                "/run/composectl/NAME, $XDG_RUNTIME_DIR/composectl/NAME",
                "a running supervisor's control socket and what it applied",
            ),
            (
                "/var/backups/composectl, ~/.local/state/composectl/backups",
                "backup archives",
            ),
        ],
    ),
    (
        "enable",
        &[(
            "/etc/systemd/system/compose@NAME.service.d/20-composectl.conf",
            "the stack's drop-in: description, ordering, mounts, log limits (~/.config/systemd/user in user mode)",
        )],
    ),
    (
        "backup",
        &[(
            "/var/backups/composectl/NAME-TIMESTAMP.tar",
            "the archives, mode 0600 (~/.local/state/composectl/backups in user mode)",
        )],
    ),
    (
        "secrets",
        &[
            (
                "stacks/NAME/.env.local, .env.local",
                "where generated secrets go, mode 0600 (the root's for shared: true)",
            ),
            (
                "/etc/credstore.encrypted/composectl.NAME.VARIABLE",
                "encrypted secrets (composectl.VARIABLE for shared: true), bound to this host's key",
            ),
        ],
    ),
];

/// The entries of `table` for a subcommand path.
pub fn section_for(
    table: &'static [(&str, &[(&str, &str)])],
    path: &str,
) -> &'static [(&'static str, &'static str)] {
    table
        .iter()
        .find(|(command, _)| *command == path)
        .map_or(&[], |(_, entries)| *entries)
}

/// The command line definition with the examples under `--help`, which the derive cannot say.
/// `run`, the man pages and the completions use it.
pub fn command() -> clap::Command {
    fn with_extras(command: clap::Command, path: &str) -> clap::Command {
        let examples = section_for(EXAMPLES, path);
        let command = if examples.is_empty() {
            command
        } else {
            let mut text = String::from("Examples:\n");
            for (line, what) in examples {
                text.push_str(&format!("  {line}\n      {what}\n"));
            }
            if let Some(after) = command.get_after_help() {
                text.push_str(&format!("\n{after}"));
            }
            command.after_long_help(text)
        };
        let names: Vec<String> = command
            .get_subcommands()
            .map(|sub| sub.get_name().to_string())
            .collect();
        names.iter().fold(command, |command, name| {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path} {name}")
            };
            command.mut_subcommand(name, |sub| with_extras(sub, &sub_path))
        })
    }
    with_extras(Cli::command(), "")
}

/// The stacks of the root the command line being completed names (`--root`, `--user`,
/// `--system`, COMPOSECTL_ROOT, else the mode's default): the directories under stacks/ with
/// valid names. No file is parsed, so completion stays instant on a large or broken root.
fn stack_names() -> clap_complete::ArgValueCandidates {
    clap_complete::ArgValueCandidates::new(stack_candidates)
}

fn stack_candidates() -> Vec<clap_complete::CompletionCandidate> {
    // The shell passes the words being completed after `--`.
    let words: Vec<String> = std::env::args()
        .skip_while(|word| word != "--")
        .skip(1)
        .collect();
    let mut root = std::env::var_os("COMPOSECTL_ROOT")
        .filter(|root| !root.is_empty())
        .map(PathBuf::from);
    let mut mode = crate::mode::Mode::from_euid();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--root" => root = words.next().map(PathBuf::from),
            "--user" => mode = crate::mode::Mode::User,
            "--system" => mode = crate::mode::Mode::System,
            other => {
                if let Some(dir) = other.strip_prefix("--root=") {
                    root = Some(PathBuf::from(dir));
                }
            }
        }
    }
    let stacks = root
        .unwrap_or_else(|| mode.default_root())
        .join(crate::model::STACKS_DIR);
    let mut names: Vec<String> = std::fs::read_dir(stacks)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.parse::<StackName>().is_ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(clap_complete::CompletionCandidate::new)
        .collect()
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
    fn every_command_has_examples_and_the_examples_parse() {
        fn visit(command: &clap::Command, path: &str, paths: &mut Vec<String>) {
            paths.push(path.to_string());
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                let sub_path = if path.is_empty() {
                    sub.get_name().to_string()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                visit(sub, &sub_path, paths);
            }
        }
        let mut paths = Vec::new();
        visit(&command(), "", &mut paths);
        for path in &paths {
            assert!(
                !section_for(EXAMPLES, path).is_empty(),
                "no examples for {path:?}"
            );
        }
        for (path, examples) in EXAMPLES {
            assert!(
                paths.contains(&path.to_string()),
                "examples for no command: {path}"
            );
            for (line, _) in *examples {
                // The composectl command line of the example, without sudo, a prefix of
                // variables or a pipe after it.
                let Some(start) = line.find("composectl ") else {
                    continue;
                };
                let command_line = line[start..].split(" | ").next().unwrap_or_default();
                // Words as a shell splits them, single quotes kept together.
                let words: Vec<String> = command_line
                    .split('\'')
                    .enumerate()
                    .flat_map(|(index, part)| {
                        if index % 2 == 1 {
                            vec![part.to_string()]
                        } else {
                            part.split_whitespace().map(str::to_string).collect()
                        }
                    })
                    .collect();
                if let Err(e) = command().try_get_matches_from(&words) {
                    panic!("example {line:?} does not parse: {e}");
                }
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
