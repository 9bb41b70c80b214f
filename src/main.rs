use clap::Parser;

fn main() -> std::process::ExitCode {
    composectl::run(composectl::cli::Cli::parse())
}
