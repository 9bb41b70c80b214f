//! Harness for system mode under systemd as PID 1: the Debian 12 guest that `scripts/guest.sh`
//! boots with systemd-nspawn, or the virtual machine of `scripts/vm.sh` (its own kernel: cgroup
//! v2 with every controller, for slices' limits and OOM kills), each with its own docker.service
//! and the composectl .deb installed (`scripts/test.sh` does both). composectl runs there as root,
//! in system mode, on the root /etc/composectl, exactly as a user's `sudo composectl enable --now
//! ...` does.
//!
//! Mark each test that uses it
//! `#[ignore = "end-to-end, system mode: ..."]` (a plain `cargo test` lists it as ignored, as the
//! other end-to-end tests) and start it with `let guest = guest::guest();`, which panics with
//! what is missing. `COMPOSECTL_GUEST_DIR` says where the guest lives (scripts/guest.sh's default
//! otherwise).
//!
//! There is one guest and one VM, so a [`Guest`] holds a process-wide lock for its machine:
//! tests using one run one at a time. Acquiring one and dropping it leave the machine clean: no
//! stacks, no composectl units, no containers, volumes or networks, docker.service running.
//!
//! std and tempfile only, like the harness; commands go in through `scripts/guest.sh exec` or
//! `scripts/vm.sh exec`, and files of the VM (a disk image) through the commands' stdin.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::e2e::{
    CMD_TIMEOUT, TEST_IMAGE, is_root, parse_journal_export, run_with_timeout, show_property,
    stderr_of, stdout_of, try_run, try_run_with_input,
};
use crate::layered::{Layered, write_file};

/// composectl's root in system mode.
pub const ROOT: &str = "/etc/composectl";
/// The network the layered stacks join in the guest; its engine is the tests' alone, so the
/// subnet is fixed.
pub const NETWORK: &str = "layers";
const SUBNET: &str = "172.30.0.0/24";
/// A unit of the harness that appends the guest engine's container events to [`EVENTS_LOG`]
/// from its boot on, so tests can see what happened while they could not ask (during a boot,
/// after the engine's short event buffer rolled over). Not named `compose*`: the reset removes
/// those.
const EVENTS_UNIT: &str = "e2e-engine-events.service";
const EVENTS_LOG: &str = "/var/log/e2e-engine-events.log";
/// A reboot: a clean poweroff (stacks stopped, up to TimeoutStopSec each) and a boot.
const REBOOT_TIMEOUT: Duration = Duration::from_secs(900);
/// What a reset may take: supervisors are killed first, so nothing waits for a stop timeout.
const RESET_TIMEOUT: Duration = Duration::from_secs(300);

/// (action, compose project, time in ns since the epoch) of one container event.
pub type Event = (String, String, i64);

/// The guest or the VM, for one test at a time. See the module documentation.
pub struct Guest {
    _turn: MutexGuard<'static, ()>,
    machine: Machine,
    /// The guest's journal cursor when the handle was taken: journal queries start after it.
    cursor: String,
}

const GUEST_SCRIPT: &str = "scripts/guest.sh";
const VM_SCRIPT: &str = "scripts/vm.sh";

/// Which machine a [`Guest`] drives.
#[derive(Debug, Clone)]
enum Machine {
    /// The nspawn guest: its rootfs is a directory of the host.
    Nspawn { rootfs: PathBuf },
    /// The VM: its files are on its own disk.
    Vm,
}

impl Machine {
    fn script(&self) -> PathBuf {
        crate::repo().join(match self {
            Machine::Nspawn { .. } => GUEST_SCRIPT,
            Machine::Vm => VM_SCRIPT,
        })
    }
}

/// Waits for the guest, checks (once per process) that it runs with composectl and the test
/// image installed, and cleans it; panics with what is missing.
pub fn guest() -> Guest {
    static TURN: Mutex<()> = Mutex::new(());
    static CHECK: OnceLock<Result<Machine, String>> = OnceLock::new();
    take(&TURN, &CHECK, GUEST_SCRIPT, || {
        let rootfs = check_machine(&crate::repo().join(GUEST_SCRIPT))?;
        Ok(Machine::Nspawn {
            rootfs: PathBuf::from(rootfs.ok_or("guest.sh status names no rootfs")?),
        })
    })
}

/// [`guest`] for the VM of scripts/vm.sh.
pub fn vm() -> Guest {
    static TURN: Mutex<()> = Mutex::new(());
    static CHECK: OnceLock<Result<Machine, String>> = OnceLock::new();
    take(&TURN, &CHECK, VM_SCRIPT, || {
        check_machine(&Machine::Vm.script()).map(|_| Machine::Vm)
    })
}

fn take(
    turn: &'static Mutex<()>,
    check: &'static OnceLock<Result<Machine, String>>,
    script: &str,
    checked: fn() -> Result<Machine, String>,
) -> Guest {
    // A test that failed while holding the machine poisons the lock; the next one resets anyway.
    let turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
    let machine = match check.get_or_init(checked) {
        Ok(machine) => machine.clone(),
        Err(reason) => panic!(
            "the system-mode machine is not there: {reason} (scripts/test.sh boots it and \
             installs the .deb; by hand: {script} start, {script} install dist/composectl_*.deb)"
        ),
    };
    let mut guest = Guest {
        _turn: turn,
        machine,
        cursor: String::new(),
    };
    if let Err(e) = guest.reset() {
        panic!("cannot clean the guest: {e}");
    }
    guest.record_events();
    guest.cursor = guest.journal_cursor();
    guest
}

/// Checks that the machine of `script` runs with composectl and the test image; returns the
/// rootfs its status names, if it names one.
fn check_machine(script: &std::path::Path) -> Result<Option<String>, String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    let status = try_run(Command::new(script).arg("status"), CMD_TIMEOUT)?;
    let text = stdout_of(&status);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    if field("state").as_deref() != Some("running") {
        return Err(format!(
            "{} does not run ({})",
            script.display(),
            text.trim().replace('\n', ", ")
        ));
    }
    let run = |args: &[&str]| try_run(Command::new(script).arg("exec").args(args), CMD_TIMEOUT);
    if !run(&["test", "-x", "/usr/bin/composectl"])?
        .status
        .success()
    {
        return Err("composectl is not installed in the guest".into());
    }
    if !run(&["docker", "image", "inspect", TEST_IMAGE])?
        .status
        .success()
    {
        return Err(format!("the machine's engine has no {TEST_IMAGE}"));
    }
    Ok(field("rootfs"))
}

/// Now, in ns since the epoch, on the clock the guest and its engine share with the host.
pub fn now_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_nanos()).expect("ns fit in i64")
}

impl Guest {
    /// Runs `args` in the guest (as root, all its namespaces, a minimal environment), bounded by
    /// `timeout`; panics when it cannot run or takes longer.
    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        run_with_timeout(
            Command::new(self.machine.script()).arg("exec").args(args),
            timeout,
        )
    }

    /// [`exec_timeout`](Self::exec_timeout) bounded by the harness's `CMD_TIMEOUT`.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_timeout(args, CMD_TIMEOUT)
    }

    /// `sh -c SCRIPT` in the guest.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script])
    }

    /// The host path of `path` in the nspawn guest (its rootfs is a directory of the host);
    /// the VM's files are not on the host.
    pub fn path(&self, path: &str) -> PathBuf {
        match &self.machine {
            Machine::Nspawn { rootfs } => rootfs.join(path.trim_start_matches('/')),
            Machine::Vm => panic!("the VM's {path} is on its own disk: read it with exec"),
        }
    }

    /// Writes a file in the guest, creating its directories.
    pub fn write(&self, path: &str, contents: &str) {
        if let Machine::Nspawn { .. } = self.machine {
            return write_file(&self.path(path), contents);
        }
        let out = try_run_with_input(
            Command::new(self.machine.script()).args([
                "exec",
                "sh",
                "-c",
                "mkdir -p \"$(dirname \"$0\")\" && cat > \"$0\"",
                path,
            ]),
            Some(contents.as_bytes()),
            CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "writing {path}: {}", stderr_of(&out));
    }

    /// Writes the layered stacks (crate::layered) and their networks.toml into the root.
    pub fn write_layered(&self) -> Layered {
        let stacks = Layered::new("");
        self.write_stacks(&stacks);
        stacks
    }

    /// Writes `stacks` (unprefixed) with networks.toml into the guest's root.
    pub fn write_stacks(&self, stacks: &Layered) {
        let local = tempfile::tempdir().expect("a temporary directory");
        stacks.write(local.path(), NETWORK, SUBNET);
        self.upload(local.path(), ROOT);
    }

    /// Copies the files under the host directory `dir` into `to` in the guest.
    fn upload(&self, dir: &std::path::Path, to: &str) {
        for entry in fs::read_dir(dir).expect("read the directory") {
            let path = entry.expect("an entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                self.upload(&path, &format!("{to}/{name}"));
            } else {
                let contents = fs::read_to_string(&path).expect("a text file");
                self.write(&format!("{to}/{name}"), &contents);
            }
        }
    }

    /// The installed `/usr/bin/composectl ARGS`: system mode (root), root /etc/composectl.
    pub fn composectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["env", "NO_COLOR=1", "/usr/bin/composectl"];
        all.extend_from_slice(args);
        // enable --now waits for the stacks' start: longer than one plain command.
        self.exec_timeout(&all, Duration::from_secs(600))
    }

    /// `systemctl ARGS` of the guest's PID 1.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["systemctl"];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// `systemctl show -P PROPERTY UNIT`, trimmed.
    pub fn property(&self, unit: &str, property: &str) -> String {
        show_property(|args| self.systemctl(args), unit, property)
    }

    /// `docker ARGS` against the guest's engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut all = vec!["docker"];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// Messages of `unit`'s journal entries logged since this handle was taken (across reboots),
    /// oldest first; `matches` are `FIELD=value`, e.g. `COMPOSE_SERVICE=app`.
    pub fn journal(&self, unit: &str, matches: &[&str]) -> Vec<String> {
        self.journal_entries(&["-u", unit], matches)
            .into_iter()
            .filter_map(|mut e| e.remove("MESSAGE"))
            .collect()
    }

    /// What PID 1 itself logged since this handle was taken (e.g. its warnings on a reload).
    pub fn manager_journal(&self) -> Vec<String> {
        self.journal_entries(&["_PID=1"], &[])
            .into_iter()
            .filter_map(|mut e| e.remove("MESSAGE"))
            .collect()
    }

    fn journal_entries(
        &self,
        selector: &[&str],
        matches: &[&str],
    ) -> Vec<std::collections::BTreeMap<String, String>> {
        // --cursor, and the entry at the cursor dropped here: with field matches, journalctl 252's
        // --after-cursor also skips the first entry after the cursor that matches them.
        let from = format!("--cursor={}", self.cursor);
        let mut args = vec!["journalctl", "--no-pager", "-q", "-o", "export", &from];
        args.extend_from_slice(selector);
        args.extend_from_slice(matches);
        let out = self.exec(&args);
        assert!(out.status.success(), "journalctl: {}", stderr_of(&out));
        parse_journal_export(&out.stdout)
            .into_iter()
            .filter(|e| e.get("__CURSOR") != Some(&self.cursor))
            .collect()
    }

    /// Container events of the guest's engine at or after `since_ns` (see [`now_ns`]), oldest
    /// first: create, start, die and health_status.
    pub fn events(&self, since_ns: i64) -> Vec<Event> {
        let text = stdout_of(&self.exec(&["cat", EVENTS_LOG]));
        let mut events: Vec<Event> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let time = parts.next()?.parse::<i64>().ok()?;
                let project = parts.next()?.to_string();
                let action = parts.next()?.to_string();
                Some((action, project, time))
            })
            .filter(|(_, _, time)| *time >= since_ns)
            .collect();
        // The recorder replays the engine's buffer whenever it reconnects.
        events.sort_by_key(|(_, _, time)| *time);
        events.dedup();
        events
    }

    /// What a failure message needs about `units`: their state and their journal.
    pub fn diagnostics(&self, units: &[&str]) -> String {
        let mut text = String::new();
        for unit in units {
            let status = self.systemctl(&["status", "--no-pager", "-n", "0", unit]);
            text.push_str(&format!(
                "--- {unit}\n{}--- journal of {unit}\n{}\n",
                stdout_of(&status),
                self.journal(unit, &[]).join("\n")
            ));
        }
        text
    }

    /// Powers the guest off cleanly and boots it again (`scripts/guest.sh reboot`), which returns
    /// once the boot settled (its start jobs, enabled stacks included, are done or failed).
    pub fn reboot(&self) {
        self.guest_sh(&["reboot"]);
    }

    /// [`reboot`](Self::reboot), returning as soon as the guest's PID 1 answers: its start jobs
    /// may still run (or wait, e.g. for an engine that is not there yet).
    pub fn reboot_without_settling(&self) {
        self.guest_sh(&["reboot", "--no-settle"]);
    }

    fn guest_sh(&self, args: &[&str]) {
        let out = run_with_timeout(
            Command::new(self.machine.script()).args(args),
            REBOOT_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "guest.sh {args:?}: {}",
            stderr_of(&out)
        );
    }

    /// The guest as a test expects to find it: docker.service running (a fault may have masked
    /// or stopped it), no stack (supervisors are SIGKILLed rather than stopped, so nothing waits
    /// on an engine a test broke), no composectl unit, no container, volume or user network, an
    /// empty root.
    fn reset(&self) -> Result<(), String> {
        // The stacks go first: a docker.service restart job may be waiting for them to stop.
        let script = r#"
units=$(systemctl list-units --all --plain --no-legend 'compose@*' 'composectl*' | awk '{print $1}')
if [ -n "$units" ]; then
    systemctl kill -s KILL $units 2>/dev/null
    systemctl stop $units
fi
systemctl unmask docker.service docker.socket >/dev/null 2>&1
systemctl start docker.service
stacks=$(ls /etc/composectl/stacks 2>/dev/null)
[ -z "$stacks" ] || composectl -q disable $stacks
rm -rf /etc/systemd/system/compose@* /etc/systemd/system/composectl* \
    /etc/systemd/system/.composectl /etc/systemd/system/*.wants/compose*
systemctl daemon-reload
systemctl reset-failed
ids=$(docker ps -aq)
[ -z "$ids" ] || docker rm -f $ids >/dev/null
docker volume prune -af >/dev/null
docker network prune -f >/dev/null
rm -rf /etc/composectl/stacks/* /etc/composectl/composectl.toml /etc/composectl/.env* \
    /etc/credstore.encrypted/composectl.*
docker info >/dev/null
"#;
        let out = try_run(
            Command::new(self.machine.script())
                .args(["exec", "sh", "-c"])
                .arg(script),
            RESET_TIMEOUT,
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}{}", stdout_of(&out), stderr_of(&out)))
        }
    }

    /// Installs and starts the [`EVENTS_UNIT`] recorder, unless it runs.
    fn record_events(&self) {
        if self.property(EVENTS_UNIT, "ActiveState") == "active" {
            return;
        }
        // Wants=, not Requires=: a dead engine makes it retry every second (no start limit)
        // instead of stopping it for good. --since 0 replays what the engine still buffers,
        // so the first events of a boot are not lost to the race with the stacks.
        self.write(
            &format!("/etc/systemd/system/{EVENTS_UNIT}"),
            &format!(
                r#"[Unit]
Description=composectl e2e: the engine's container events
Wants=docker.service
After=docker.service
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/docker events --since 0 --filter type=container --filter event=create --filter event=start --filter event=die --filter event=health_status --format '{{{{.TimeNano}}}} {{{{index .Actor.Attributes "com.docker.compose.project"}}}} {{{{.Action}}}}'
StandardOutput=append:{EVENTS_LOG}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"#
            ),
        );
        let out = self.systemctl(&["daemon-reload"]);
        assert!(out.status.success(), "daemon-reload: {}", stderr_of(&out));
        let out = self.systemctl(&["enable", "--now", EVENTS_UNIT]);
        assert!(
            out.status.success(),
            "enable {EVENTS_UNIT}: {}",
            stderr_of(&out)
        );
    }

    fn journal_cursor(&self) -> String {
        let out = self.exec(&["journalctl", "-n", "0", "--show-cursor"]);
        stdout_of(&out)
            .lines()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no journal cursor: {}", stderr_of(&out)))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds. The next guest() resets
        // again, and fails with the reason if it still cannot.
        let _ = self.reset();
    }
}
