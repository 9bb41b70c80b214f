// Every command parses the whole root, one string and one node per YAML value: mimalloc took
// about a sixth off a render of 200 stacks against glibc's allocator. The supervisor keeps
// glibc's, shared with the rest of the host.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    composectl::run(std::env::args_os())
}
