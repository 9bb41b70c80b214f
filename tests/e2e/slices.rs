//! Stacks as slices where the kernel enforces them: the VM of scripts/vm.sh boots its own kernel,
//! with cgroup v2 and every controller (the nspawn guest has none on these hosts). The layered
//! stacks of testkit/src/layered.rs, genai given `memory_max: 64M` and a service that outgrows
//! it on request.

use std::time::{Duration, Instant};

use composectl_testkit::e2e::{stdout_of, wait_until};
use composectl_testkit::guest::{Guest, NETWORK, ROOT, vm};
use composectl_testkit::layered::{compose_file, ready_after};
use composectl_testkit::stacks::text;

/// Everything in the VM runs several times slower than on the host (qemu emulates), and slower
/// still beside CI's fault suite: its row took 281 s there, 46 s on an idle host.
const START_TIMEOUT: Duration = Duration::from_secs(600);

fn unit(stack: &str) -> String {
    format!("compose@{stack}.service")
}

fn slice(stack: &str) -> String {
    format!("compose-{}.slice", stack.replace('-', "\\x2d"))
}

fn container(vm: &Guest, stack: &str) -> String {
    stdout_of(&vm.docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={stack}"),
    ]))
    .trim()
    .to_string()
}

fn all_active(vm: &Guest, stacks: &[String]) -> bool {
    stacks
        .iter()
        .all(|s| vm.property(&unit(s), "ActiveState") == "active")
}

#[test]
#[allow(clippy::print_stdout)] // the fault table's row, as the operations tests print theirs
#[ignore = "end-to-end, VM: needs root and the VM of scripts/vm.sh with the .deb installed (scripts/test.sh boots it)"]
fn a_stack_past_its_memory_max_is_oom_killed_in_its_slice_and_comes_back_alone() {
    let vm = vm();
    let stacks = vm.write_layered();
    let (panel, database, genai) = (stacks.panel(), stacks.database(), stacks.genai());
    // Ready, then waits for /tmp/hog and becomes a dd with a 300 MiB buffer: the service's main
    // process outgrows the slice at once.
    let hog = ready_after(&genai, "1", "").replace(
        "exec sleep 100000",
        &format!(
            "while [ ! -e /tmp/hog ]; do sleep 0.2; done; echo {genai} eats memory; exec dd if=/dev/zero of=/dev/null bs=300M count=1"
        ),
    );
    // Long enough for status to see the failure before systemd restarts the stack: each call
    // takes seconds under emulation, tens of seconds beside CI's fault suite, where 30 s was
    // once missed.
    vm.write(
        &format!("{ROOT}/composectl.toml"),
        "[defaults]\nrestart_sec = \"120s\"\n",
    );
    let meta = format!(
        "x-composectl:\n  requires: [{panel}, {database}]\n  resources: {{memory_max: 64M, memory_high: 56M}}\n"
    );
    vm.write(
        &format!("{ROOT}/stacks/{genai}/compose.yaml"),
        &compose_file(&meta, &hog, NETWORK, ""),
    );

    let enabled = vm.composectl(&["enable", "--now", &genai]);
    assert!(
        enabled.status.success(),
        "{}\n{}",
        text(&enabled),
        vm.diagnostics(&[&unit(&genai)])
    );
    let all = stacks.all().to_vec();
    assert!(
        wait_until(START_TIMEOUT, || all_active(&vm, &all)),
        "{}",
        vm.diagnostics(&[&unit(&panel), &unit(&database), &unit(&genai)])
    );

    // The stack's containers are in its slice, which systemd accounts for and limits.
    let hog_id = container(&vm, &genai);
    let pid = stdout_of(&vm.docker(&["inspect", "-f", "{{.State.Pid}}", &hog_id]));
    let cgroup = stdout_of(&vm.exec(&["cat", &format!("/proc/{}/cgroup", pid.trim())]));
    assert!(
        cgroup.contains(&format!("0::/compose.slice/{}/docker-", slice(&genai))),
        "{cgroup}"
    );
    assert_eq!(vm.property(&slice(&genai), "MemoryMax"), "67108864");
    let memory: u64 = vm
        .property(&slice(&genai), "MemoryCurrent")
        .parse()
        .unwrap_or(0);
    assert!(memory > 0, "MemoryCurrent of {} is not set", slice(&genai));
    let status = text(&vm.composectl(&["status", &genai]));
    let memory_line = status
        .lines()
        .find(|l| l.trim_start().starts_with("memory:"))
        .unwrap_or_default();
    assert!(
        memory_line.ends_with('K') || memory_line.ends_with('M'),
        "{status}"
    );

    let others = [&panel, &database];
    let before: Vec<(String, String)> = others
        .iter()
        .map(|s| (container(&vm, s), vm.property(&unit(s), "MainPID")))
        .collect();

    let began = Instant::now();
    let told = vm.docker(&["exec", &hog_id, "touch", "/tmp/hog"]);
    assert!(told.status.success(), "{}", text(&told));
    // Said while systemd waits to restart it: status, then the journal.
    let mut said = String::new();
    assert!(
        wait_until(START_TIMEOUT, || {
            said = text(&vm.composectl(&["status", &genai]));
            said.contains("lack of memory (OOM)")
        }),
        "status never said the stack's container was OOM-killed:\n{said}\n{}",
        vm.diagnostics(&[&unit(&genai)])
    );
    assert!(
        vm.journal(&unit(&genai), &[])
            .iter()
            .any(|l| l.contains("lack of memory (OOM)")),
        "{}",
        vm.diagnostics(&[&unit(&genai)])
    );
    let kernel = stdout_of(&vm.exec(&["journalctl", "-k", "-q", "--no-pager", "-g", "oom-kill"]));
    assert!(
        kernel.contains(&format!("oom_memcg=/compose.slice/{}", slice(&genai))),
        "the kernel's OOM kill was not inside {}:\n{kernel}",
        slice(&genai)
    );

    // Back by itself (Restart=on-failure), with a new container; the other layers untouched.
    assert!(
        wait_until(START_TIMEOUT, || {
            // Restarted with a new container, not still active while its supervisor brings
            // the old one down.
            let now = container(&vm, &genai);
            vm.property(&unit(&genai), "NRestarts") != "0"
                && vm.property(&unit(&genai), "ActiveState") == "active"
                && !now.is_empty()
                && now != hog_id
        }),
        "{} did not come back\n{}",
        unit(&genai),
        vm.diagnostics(&[&unit(&genai)])
    );
    let back = began.elapsed();
    let after: Vec<(String, String)> = others
        .iter()
        .map(|s| (container(&vm, s), vm.property(&unit(s), "MainPID")))
        .collect();
    assert_eq!(
        before, after,
        "panel's or database's container or supervisor changed"
    );
    // The fault table's row (docs/faults.md), measured here.
    println!(
        "| vm | genai's container past its slice's memory_max (64M) | yes | {:.1} | panel, database: containers no, unit no | yes | OOM-killed by the kernel in {}; genai restarted by its unit |",
        back.as_secs_f64(),
        slice(&genai)
    );
}
