//! The command line, defined once: `main.rs` parses it, the man page and shell completions are
//! generated from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "composectl",
    version,
    about = "systemd as the orchestrator of layered Docker Compose stacks",
    long_about = "composectl reads a root of compose stacks (stacks/NAME/compose.yaml) and networks.toml, \
writes one systemd unit per stack (compose@NAME.service) ordered by the stacks' requires/wants, and \
drives systemd over D-Bus. A stack is active only once its containers are healthy.",
    after_help = "Exit codes: 0 ok, 1 operation failed, 2 usage or configuration error, 3 not active (status)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
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
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Stacks to act on, with the stacks they require or want [default: all]
    #[arg(value_name = "STACK")]
    pub names: Vec<String>,
}
