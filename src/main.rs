fn main() -> std::process::ExitCode {
    composectl::run(std::env::args_os())
}
