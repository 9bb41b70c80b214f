//! Harness for composectl's end-to-end tests: a real, private `systemd --user`
//! manager with its own D-Bus, plus the machine's journald and dockerd.
//!
//! The machine is prepared by `scripts/provision-e2e.sh` (see
//! shared/TESTING.md): Debian 12, root, systemd not PID 1, a journald and a
//! dockerd started by hand, Compose v2, and the local image [`TEST_IMAGE`].
//!
//! Mark each test that uses it `#[ignore = "end-to-end: ..."]` (a plain `cargo test` counts it
//! as ignored) and start it with `e2e::environment();`, which panics with what is missing.
//!
//! Only `std` and `tempfile` are used, on purpose: the harness must not pull
//! dependencies into the crate, and talking D-Bus here would duplicate (and
//! could mask bugs of) the code under test. Signals are sent with `kill(1)`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The image built by `scripts/provision-e2e.sh` from Debian's busybox-static
/// (nothing can be pulled here). Compose files in tests use it with
/// `pull_policy: never`.
pub const TEST_IMAGE: &str = "composectl-test/busybox:latest";

/// Upper bound for one composectl command: `enable --now` waits for the stacks' start.
const COMPOSECTL_TIMEOUT: Duration = Duration::from_secs(600);

/// Poll interval for everything that waits.
pub const POLL: Duration = Duration::from_millis(20);
/// How long a new manager gets to bind `$XDG_RUNTIME_DIR/bus` and `systemd/private`.
const BUS_TIMEOUT: Duration = Duration::from_secs(10);
/// SIGTERM → SIGKILL grace on drop (`systemctl --user exit` can hang, so we
/// never ask politely over the bus).
const DROP_GRACE: Duration = Duration::from_secs(2);
/// SIGTERM → SIGKILL grace on [`UserManager::restart`]: longer, so units'
/// ExecStop= (e.g. `docker compose stop`) can finish, as on a real shutdown.
const RESTART_GRACE: Duration = Duration::from_secs(15);
/// Upper bound for one systemctl/journalctl/docker call, so a wedged daemon
/// fails a test instead of hanging CI.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const JOURNAL_STDOUT: &str = "/run/systemd/journal/stdout";
/// Prefix of the per-manager cgroup; `composectl-e2e-<test pid>-<id>.slice`.
const SLICE_PREFIX: &str = "composectl-e2e-";
/// Prefix of the per-manager temp dir; `/tmp/composectl-e2e.<id>`.
const TEMP_PREFIX: &str = "composectl-e2e.";
/// Orders test processes that use the host's dockerd and journald (a shared lock, held by
/// [`environment`] for the life of the process) against fault runs that kill them (an exclusive
/// lock, [`host_daemons_exclusive`]), so a run of the fault suite never pulls the engine away
/// from a test running at the same time.
const ENGINE_LOCK: &str = "/run/composectl-e2e-engine.lock";

/// Checks (once per test binary) everything the e2e tests need, and panics with what is missing
/// and how to get it. End-to-end tests are `#[ignore = "..."]`, so this only runs where they
/// were asked for (`--include-ignored`, as the README's test command does). First it takes a
/// shared lock on [`ENGINE_LOCK`], kept until the process exits.
pub fn environment() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECK.get_or_init(check_environment) {
        Ok(()) => {}
        Err(reason) => panic!(
            "the end-to-end environment is not there: {reason} (scripts/provision-e2e.sh sets it up, as root)"
        ),
    }
}

fn check_environment() -> Result<(), String> {
    // Root: the manager is put into its own cgroup (see UserManager::start),
    // and dockerd's socket is root's.
    if !is_root() {
        return Err("not running as root".into());
    }
    // Before anything asks the engine: a fault run may have it down right now.
    engine_lock()?;
    find_systemd().ok_or("no systemd binary (package systemd)")?;
    for tool in ["systemctl", "journalctl", "docker"] {
        if find_in_path(tool).is_none() {
            return Err(format!("`{tool}` not found in PATH"));
        }
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Err("/run/systemd/system is missing (systemd --user refuses to start)".into());
    }
    if cgroup_roots().is_empty() {
        return Err("no writable systemd cgroup hierarchy under /sys/fs/cgroup".into());
    }
    // A socket *file* is not enough: /run may be on disk and keep a stale one.
    if !unix_listening(JOURNAL_SOCKET) || !unix_listening(JOURNAL_STDOUT) {
        return Err(format!("no journald listening on {JOURNAL_SOCKET}"));
    }
    let info = try_run(
        Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]),
        Duration::from_secs(20),
    )?;
    if !info.status.success() {
        return Err(format!(
            "docker engine not answering: {}",
            stderr_of(&info).trim()
        ));
    }
    let compose = try_run(
        Command::new("docker").args(["compose", "version", "--short"]),
        Duration::from_secs(20),
    )?;
    let compose_version = stdout_of(&compose)
        .trim()
        .trim_start_matches('v')
        .to_string();
    if !compose.status.success() || !compose_version.starts_with("2.") {
        return Err(format!(
            "`docker compose` is not Compose v2 (got {:?}: {})",
            compose_version,
            stderr_of(&compose).trim()
        ));
    }
    let image = try_run(
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", TEST_IMAGE]),
        Duration::from_secs(20),
    )?;
    if !image.status.success() {
        return Err(format!("test image {TEST_IMAGE} is missing"));
    }
    Ok(())
}

/// This process's handle on [`ENGINE_LOCK`], locked shared on first use.
#[allow(clippy::print_stderr)] // the only sign that a test waits, and for what
fn engine_lock() -> Result<&'static fs::File, String> {
    static LOCK: OnceLock<Result<fs::File, String>> = OnceLock::new();
    LOCK.get_or_init(|| {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ENGINE_LOCK)
            .map_err(|e| format!("cannot open {ENGINE_LOCK}: {e}"))?;
        if file.try_lock_shared().is_err() {
            eprintln!(
                "waiting for {ENGINE_LOCK}: a fault run has the host's engine or journald down"
            );
            file.lock_shared()
                .map_err(|e| format!("cannot lock {ENGINE_LOCK}: {e}"))?;
        }
        Ok(file)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// While held, no other test process that called [`environment`] runs: they
/// hold [`ENGINE_LOCK`] shared, so this waits until they are done, and new ones
/// wait until it is dropped. For faults that take down the host's dockerd or
/// journald. Call [`environment`] first.
pub struct HostDaemonsExclusive(&'static fs::File);

/// Takes [`HostDaemonsExclusive`], converting this process's shared lock.
#[allow(clippy::print_stderr)] // the only sign that the fault suite waits, and for what
pub fn host_daemons_exclusive() -> HostDaemonsExclusive {
    let file = engine_lock().expect("environment() first");
    if file.try_lock().is_err() {
        eprintln!("waiting for other e2e test processes to finish ({ENGINE_LOCK})");
        file.lock().expect("lock the engine exclusively");
    }
    HostDaemonsExclusive(file)
}

impl Drop for HostDaemonsExclusive {
    fn drop(&mut self) {
        let _ = self.0.lock_shared();
    }
}

/// A private `systemd --user` manager (the one composectl drives over D-Bus),
/// hermetic per test: temp dir `T` with `run/` (XDG_RUNTIME_DIR, 0700),
/// `home/`, `config/` (XDG_CONFIG_HOME), and `manager.log` (its stdout/stderr).
///
/// The manager runs in its own cgroup `/composectl-e2e-<pid>-<id>.slice`.
/// Why: a manager whose cgroup is the root one moves *every* process of the
/// root cgroup (PID 1, dockerd, other test runs) into `/init.scope`, and all
/// such managers would share `/app.slice/<unit>` cgroups, so two tests using
/// the same unit name would kill each other's processes. With its own slice
/// each manager's units live in `/<slice>/app.slice/...`; journald still sets
/// `_SYSTEMD_UNIT=<unit>` (it skips leading `*.slice` components) and
/// `_SYSTEMD_CGROUP` tells managers apart (see [`UserManager::journal_lines`]).
///
/// Drop: SIGTERM, up to 2 s, SIGKILL, reap; then SIGKILL by pid whatever is
/// left in its cgroup (unit processes outlive a SIGKILLed manager) and remove
/// the cgroup. Docker containers belong to dockerd and are not touched.
pub struct UserManager {
    dir: tempfile::TempDir,
    systemd: PathBuf,
    slice: String,
    child: Option<Child>,
}

impl UserManager {
    /// Starts a manager and waits (every 20 ms, up to 10 s) until its bus and
    /// private socket listen. Panics on failure (with the manager's log).
    /// Call [`environment`] first: this does not check prerequisites.
    pub fn start() -> UserManager {
        sweep_orphaned_slices();
        let systemd = find_systemd().expect("no systemd binary");
        // In /tmp, not $TMPDIR: unix socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in("/tmp")
            .expect("create temp dir for the user manager");
        // tempfile's random suffix is alphanumeric, so it is usable in a unit
        // name and lets the orphan sweep find the directory again.
        let name = dir
            .path()
            .file_name()
            .expect("temp dir name")
            .to_string_lossy();
        let id = name[TEMP_PREFIX.len()..].to_string();
        let slice = format!("{SLICE_PREFIX}{}-{}.slice", std::process::id(), id);
        fs::create_dir_all(dir.path().join("home")).expect("create T/home");
        fs::create_dir_all(dir.path().join("config/systemd/user")).expect("create unit dir");
        let mut manager = UserManager {
            dir,
            systemd,
            slice,
            child: None,
        };
        manager.spawn();
        manager
    }

    /// XDG_RUNTIME_DIR of the manager (`T/run`): bus socket, `systemd/private`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    /// XDG_CONFIG_HOME (`T/config`).
    pub fn config_home(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    /// HOME (`T/home`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    /// Where user unit files go: `T/config/systemd/user` (created).
    pub fn unit_dir(&self) -> PathBuf {
        let d = self.config_home().join("systemd/user");
        fs::create_dir_all(&d).expect("create unit dir");
        d
    }
    /// `unix:path=T/run/bus`, the manager's D-Bus (socket-activated dbus-daemon).
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.runtime_dir().join("bus").display())
    }
    /// The temp dir `T` itself.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    /// What the manager itself logged to the journal ("Started ...", "Failed
    /// with result ...", "Failed to connect to system bus" is normal here), for
    /// one unit (journald field `USER_UNIT=`) or all. These entries are not
    /// found by `journalctl -u`.
    pub fn manager_messages(&self, unit: Option<&str>) -> Vec<String> {
        let mut cmd = Command::new("journalctl");
        cmd.args(["--no-pager", "-q", "-o", "cat"])
            .arg(format!("_SYSTEMD_CGROUP=/{}/init.scope", self.slice));
        if let Some(unit) = unit {
            cmd.arg(format!("USER_UNIT={unit}"));
        }
        let out = run_with_timeout(&mut cmd, CMD_TIMEOUT);
        stdout_of(&out).lines().map(str::to_string).collect()
    }

    /// What the manager printed on stdout/stderr (usually nothing: it logs
    /// to the journal, see [`manager_messages`](Self::manager_messages)).
    pub fn manager_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The environment a child process (e.g. the composectl binary under test)
    /// needs to talk to this manager and to find the same config/home.
    pub fn envs(&self) -> Vec<(String, OsString)> {
        vec![
            (
                "XDG_RUNTIME_DIR".into(),
                self.runtime_dir().into_os_string(),
            ),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address().into()),
            (
                "XDG_CONFIG_HOME".into(),
                self.config_home().into_os_string(),
            ),
            ("HOME".into(), self.home().into_os_string()),
        ]
    }

    /// A `Command` for `program` with [`envs`](Self::envs) applied.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.envs());
        cmd
    }

    /// `composectl --user --root ROOT ARGS` against this manager, with the units it writes
    /// running the binary under test ([`crate::bin`]).
    pub fn composectl(&self, root: &Path, args: &[&str]) -> Output {
        self.composectl_at(Path::new(crate::bin()), root, args)
    }

    /// [`composectl`](Self::composectl) with the binary at `bin`: the units it writes run the
    /// `composectl-supervisor` beside it.
    pub fn composectl_at(&self, bin: &Path, root: &Path, args: &[&str]) -> Output {
        run_with_timeout(
            self.command(bin)
                .arg("--user")
                .arg("--root")
                .arg(root)
                .args(args)
                .env("COMPOSECTL_EXEC", bin)
                .env("NO_COLOR", "1"),
            COMPOSECTL_TIMEOUT,
        )
    }

    /// Runs `systemctl --user ARGS` against this manager (bounded by
    /// [`CMD_TIMEOUT`]); check `status` yourself.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("systemctl");
        cmd.arg("--user")
            .args(args)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus_address());
        run_with_timeout(&mut cmd, CMD_TIMEOUT)
    }

    /// `systemctl --user show -P PROPERTY UNIT`, trimmed (e.g. `ActiveState`,
    /// `SubState`, `Result`, `NRestarts`, `StatusText`, `MainPID`).
    pub fn property(&self, unit: &str, property: &str) -> String {
        show_property(|args| self.systemctl(args), unit, property)
    }

    /// Journal messages of `unit` from *this* manager only: like
    /// [`journal_lines`] but keeps entries whose `_SYSTEMD_CGROUP` is below
    /// this manager's cgroup, so concurrent tests (or earlier runs on the
    /// machine) using the same unit name do not mix in. One item per entry
    /// (a multi-line MESSAGE stays one item), oldest first.
    pub fn journal_lines(&self, unit: &str, extra_matches: &[&str]) -> Vec<String> {
        self.journal_entries(unit, extra_matches)
            .into_iter()
            .filter_map(|mut e| e.remove("MESSAGE"))
            .collect()
    }

    /// Full journal entries (all fields) of `unit` from this manager.
    pub fn journal_entries(
        &self,
        unit: &str,
        extra_matches: &[&str],
    ) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("/{}/", self.slice);
        journal_entries(unit, extra_matches)
            .into_iter()
            .filter(|e| {
                e.get("_SYSTEMD_CGROUP")
                    .is_some_and(|cg| cg.starts_with(&prefix))
            })
            .collect()
    }

    /// What a reboot does to the user session: stop the manager (SIGTERM:
    /// units are stopped and their ExecStop= run; SIGKILL after 15 s), kill
    /// what is left in its cgroup, empty XDG_RUNTIME_DIR (a tmpfs on a real
    /// host), then start a new manager on the same config/home and wait for
    /// its bus. Enabled units start again; see [`wait_startup_finished`](Self::wait_startup_finished).
    pub fn restart(&mut self) {
        self.stop(RESTART_GRACE);
        self.spawn();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("manager.log")
    }

    fn spawn(&mut self) {
        let run = self.runtime_dir();
        if run.exists() {
            fs::remove_dir_all(&run).expect("clear XDG_RUNTIME_DIR");
        }
        fs::create_dir(&run).expect("create XDG_RUNTIME_DIR");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 XDG_RUNTIME_DIR");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open manager.log");
        let roots = cgroup_roots();
        assert!(
            !roots.is_empty(),
            "no cgroup hierarchy to put the manager in"
        );
        // The shell moves itself into the slice in each systemd-relevant
        // hierarchy, then execs the manager (same pid), so the manager starts
        // there. Doing this in pre_exec would not be async-signal-safe.
        // --log-target=journal: by default a manager that is neither PID 1
        // nor started with its stderr on the journal logs to /dev/console
        // (the VM's serial console), not to its stderr.
        let script = r#"slice=$1; systemd=$2; shift 2
for root in "$@"; do
    mkdir -p "$root/$slice" && echo $$ >"$root/$slice/cgroup.procs" ||
        { echo "composectl-e2e: cannot enter cgroup $root/$slice" >&2; exit 97; }
done
exec "$systemd" --user --log-target=journal"#;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg("composectl-e2e-manager")
            .arg(&self.slice)
            .arg(&self.systemd)
            .args(&roots)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", self.config_home())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup manager.log"))
            .stderr(log)
            // Own process group: a Ctrl-C meant for the test runner does
            // not reach the manager before Drop can stop it in order.
            .process_group(0);
        let child = cmd.spawn().expect("spawn systemd --user");
        self.child = Some(child);

        let deadline = Instant::now() + BUS_TIMEOUT;
        let bus = run.join("bus");
        let private = run.join("systemd/private");
        loop {
            if unix_listening(&bus) && unix_listening(&private) {
                return;
            }
            let child = self.child.as_mut().expect("manager child");
            if let Some(status) = child.try_wait().expect("wait for systemd --user") {
                self.child = None;
                panic!(
                    "systemd --user exited ({status}) before its bus came up; output:\n{}\njournal:\n{}",
                    self.manager_log(),
                    self.manager_messages(None).join("\n")
                );
            }
            if Instant::now() >= deadline {
                let log = format!(
                    "{}\n{}",
                    self.manager_log(),
                    self.manager_messages(None).join("\n")
                );
                self.stop(DROP_GRACE);
                panic!(
                    "systemd --user: no {} after {BUS_TIMEOUT:?}; log:\n{log}",
                    bus.display()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, wait up to `grace`, SIGKILL, reap; then SIGKILL leftovers in
    /// the manager's cgroup (by pid) and wait for them to be gone.
    fn stop(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                send_signal(child.id(), "TERM");
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    thread::sleep(POLL);
                }
                if let Ok(None) = child.try_wait() {
                    let _ = child.kill(); // SIGKILL to this pid
                }
            }
            let _ = child.wait();
        }
        kill_slice(&self.slice);
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        self.stop(DROP_GRACE);
        remove_slice(&self.slice);
    }
}

/// `systemctl show -P PROPERTY UNIT` run by `systemctl` (given the arguments after
/// `systemctl`), trimmed; panics when it fails.
pub fn show_property(
    systemctl: impl FnOnce(&[&str]) -> Output,
    unit: &str,
    property: &str,
) -> String {
    let out = systemctl(&["show", "-P", property, unit]);
    assert!(
        out.status.success(),
        "systemctl show {unit}: {}",
        stderr_of(&out)
    );
    stdout_of(&out).trim().to_string()
}

/// All fields of `unit`'s journal entries (`journalctl -o export`), oldest first.
pub fn journal_entries(unit: &str, extra_matches: &[&str]) -> Vec<BTreeMap<String, String>> {
    let out = run_with_timeout(
        Command::new("journalctl")
            .args(["-u", unit, "--no-pager", "-q", "-o", "export"])
            .args(extra_matches),
        CMD_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "journalctl -u {unit}: {}",
        stderr_of(&out)
    );
    parse_journal_export(&out.stdout)
}

/// Parses journalctl's export format: `KEY=value` lines, or for binary-safe
/// fields `KEY\n<u64 LE length><data>\n`; entries end with an empty line.
pub fn parse_journal_export(mut data: &[u8]) -> Vec<BTreeMap<String, String>> {
    let mut entries = Vec::new();
    let mut entry = BTreeMap::new();
    while !data.is_empty() {
        let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let line = &data[..line_end];
        if line.is_empty() {
            if !entry.is_empty() {
                entries.push(std::mem::take(&mut entry));
            }
            data = &data[(line_end + 1).min(data.len())..];
            continue;
        }
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            let value = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            entry.insert(key, value);
            data = &data[(line_end + 1).min(data.len())..];
        } else {
            // Binary field: name line, 8-byte little-endian size, data, '\n'.
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[(line_end + 1).min(data.len())..];
            if rest.len() < 8 {
                break;
            }
            let mut size = [0u8; 8];
            size.copy_from_slice(&rest[..8]);
            let len = usize::try_from(u64::from_le_bytes(size)).unwrap_or(usize::MAX);
            let end = len.saturating_add(8).min(rest.len());
            entry.insert(key, String::from_utf8_lossy(&rest[8..end]).into_owned());
            data = &rest[(end + 1).min(rest.len())..];
        }
    }
    if !entry.is_empty() {
        entries.push(entry);
    }
    entries
}

/// Polls `cond` every 20 ms until it is true or `timeout` passes; returns
/// whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Runs `cmd` (stdin null, output captured) and panics if it takes longer than
/// `timeout` (the child is SIGKILLed first). Note: output is read until every
/// holder of the pipes closes them, so a command that leaves a daemon with
/// its stdout open keeps this waiting.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    try_run(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// `docker ARGS` against the host's engine, bounded by [`CMD_TIMEOUT`].
pub fn docker(args: &[&str]) -> Output {
    run_with_timeout(Command::new("docker").args(args), CMD_TIMEOUT)
}

/// `sh -c SCRIPT` on the host, bounded by [`CMD_TIMEOUT`].
pub fn sh(script: &str) -> Output {
    run_with_timeout(Command::new("sh").args(["-c", script]), CMD_TIMEOUT)
}

/// Like [`run_with_timeout`], but a command that cannot run or times out is an `Err`.
pub fn try_run(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    try_run_with_input(cmd, None, timeout)
}

/// [`try_run`] with `input` on the command's stdin (closed once written).
pub fn try_run_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("{cmd:?}: no pipes"));
    };
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} timed out after {timeout:?}"));
            }
            Ok(None) => thread::sleep(POLL),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Lossy stdout of an `Output`.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
/// Lossy stderr of an `Output`.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// True if some socket is bound to `path` (from /proc/net/unix). Unlike a
/// file-exists check this ignores stale socket files.
pub fn unix_listening(path: impl AsRef<Path>) -> bool {
    let path = path.as_ref().to_string_lossy();
    fs::read_to_string("/proc/net/unix")
        .map(|t| {
            t.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(7) == Some(path.as_ref()))
        })
        .unwrap_or(false)
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn is_root() -> bool {
    // Effective uid is the second number of the "Uid:" line.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn find_systemd() -> Option<PathBuf> {
    find_in_path("systemd").or_else(|| {
        let p = PathBuf::from("/lib/systemd/systemd");
        p.exists().then_some(p)
    })
}

/// Mounted cgroup hierarchies that systemd tracks units in: the v1
/// `name=systemd` one and the unified (v2) one on a hybrid host like these
/// VMs, or just /sys/fs/cgroup on a pure v2 host.
fn cgroup_roots() -> Vec<PathBuf> {
    [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.join("cgroup.procs").exists())
    .collect()
}

/// Pids in `root/slice` and all its sub-cgroups.
pub fn slice_pids(root: &Path, slice: &str) -> Vec<u32> {
    fn walk(dir: &Path, pids: &mut Vec<u32>) {
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), pids);
                }
            }
        }
    }
    let mut pids = Vec::new();
    walk(&root.join(slice), &mut pids);
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILL every process left in the slice (by pid), wait up to 2 s for them to go.
fn kill_slice(slice: &str) {
    let roots = cgroup_roots();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids: Vec<u32> = roots.iter().flat_map(|r| slice_pids(r, slice)).collect();
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            send_signal(pid, "KILL");
        }
        thread::sleep(POLL);
    }
}

/// rmdir the slice's cgroups, deepest first, in every hierarchy.
fn remove_slice(slice: &str) {
    fn rmdir_tree(dir: &Path) {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path());
                }
            }
        }
        let _ = fs::remove_dir(dir);
    }
    for root in cgroup_roots() {
        let dir = root.join(slice);
        if dir.exists() {
            rmdir_tree(&dir);
        }
    }
}

/// Cleans up after test binaries that died without running Drop (SIGKILL,
/// abort): for each slice `composectl-e2e-<pid>-<id>.slice` whose <pid> no
/// longer exists, SIGKILL its processes by pid (manager, dbus-daemon, units),
/// remove its cgroups and `/tmp/composectl-e2e.<id>`. Live runs are left alone.
fn sweep_orphaned_slices() {
    for root in cgroup_roots() {
        let Ok(rd) = fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(SLICE_PREFIX) else {
                continue;
            };
            let Some((owner, id)) = rest.strip_suffix(".slice").and_then(|r| r.split_once('-'))
            else {
                continue;
            };
            let Ok(owner) = owner.parse::<u32>() else {
                continue;
            };
            if Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            kill_slice(&name);
            remove_slice(&name);
            if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
                let _ = fs::remove_dir_all(format!("/tmp/{TEMP_PREFIX}{id}"));
            }
        }
    }
}

/// Subnets handed out in this run, so concurrent tests never pick the same one.
static TAKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn engine_subnets() -> Vec<String> {
    let output = Command::new("sh")
        .arg("-c")
        .arg("docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'")
        .output()
        .expect("docker network inspect");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A /24 of 10.217.0.0/16 that no network on the engine and no other test of this process uses.
pub fn free_subnet() -> String {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let used = engine_subnets();
    let subnet = (0..=255)
        .map(|octet| format!("10.217.{octet}.0/24"))
        .find(|s| !used.contains(s) && !taken.contains(s))
        .expect("a free /24 in 10.217.0.0/16");
    taken.push(subnet.clone());
    subnet
}

/// Networks of earlier test runs whose process is gone (a run that was killed cannot clean up):
/// those named `e<pid>x...`, the prefix every e2e test names its engine objects with.
pub fn remove_leftover_networks() {
    let output = Command::new("docker")
        .args(["network", "ls", "--format", "{{.Name}}"])
        .output()
        .expect("docker network ls");
    for name in String::from_utf8_lossy(&output.stdout).lines() {
        let owner = name
            .strip_prefix('e')
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("docker")
                .args(["network", "rm", name])
                .output();
        }
    }
}
