//! The supervisor of one stack, as units start it (`ExecStart=`): see `composectl::supervise`.

fn main() -> std::process::ExitCode {
    composectl::supervise(std::env::args_os())
}
