//! The reference of every key a user can write in the three formats composectl reads besides
//! compose itself: `x-composectl` in a compose file, `networks.toml` and `composectl.toml`.
//!
//! This table is the source of truth twice over: the parsers look every key up here before they
//! read it (an unknown key is refused with the keys there are and the closest one), and the man
//! pages in section 5 are generated from it (`examples/gen_assets.rs`). So a key cannot be
//! accepted without being documented; a test parses every key's example, so a key cannot be
//! documented without being accepted.

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics};

/// One key: where it sits, what it takes and what it does.
#[derive(Debug)]
pub struct Key {
    /// Dotted path from the top of the format. A component in capitals is a name the user
    /// chooses (`networks.NAME.subnet`); `[]` marks the items of a list (`backup.pre[].run`).
    pub path: &'static str,
    pub kind: &'static str,
    /// Empty when there is none (required, or nothing happens without it).
    pub default: &'static str,
    /// The key written in a file, from the top of the format, as a test parses it.
    pub example: &'static str,
    pub doc: &'static str,
    /// What it becomes in the units or for the supervisor; empty when it only configures
    /// composectl's commands.
    pub renders: &'static str,
}

/// A format a user writes: its page and its keys.
#[derive(Debug)]
pub struct Format {
    /// The man page's name (section 5).
    pub page: &'static str,
    /// One line for the man page's NAME section.
    pub summary: &'static str,
    pub description: &'static str,
    /// A whole file (or block) using the common keys.
    pub example: &'static str,
    pub keys: &'static [Key],
    pub see_also: &'static [&'static str],
}

impl Format {
    /// The key `name` directly under `parent` (a path pattern from this table, "" for the top),
    /// a name the user chooses matching a component in capitals.
    pub fn key(&self, parent: &str, name: &str) -> Option<&'static Key> {
        let under = |key: &Key| {
            if parent.is_empty() {
                Some(key.path)
            } else {
                key.path.strip_prefix(parent)?.strip_prefix('.')
            }
        };
        let keys = self.keys.iter();
        keys.clone()
            .find(|key| under(key) == Some(name))
            .or_else(|| {
                keys.clone()
                    .find(|key| under(key).is_some_and(is_placeholder))
            })
    }

    /// The fixed names of the keys directly under `parent`, in the table's order.
    pub fn children(&self, parent: &str) -> Vec<&'static str> {
        self.keys
            .iter()
            .filter_map(|key| {
                let rest = if parent.is_empty() {
                    key.path
                } else {
                    key.path.strip_prefix(parent)?.strip_prefix('.')?
                };
                (!rest.contains('.') && !is_placeholder(rest)).then_some(rest)
            })
            .collect()
    }

    /// Whether a key holds keys of its own listed here (otherwise its contents are free, like
    /// `labels`).
    pub fn has_children(&self, path: &str) -> bool {
        self.keys.iter().any(|key| {
            key.path
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// A path component standing for a name the user chooses.
fn is_placeholder(component: &str) -> bool {
    !component.is_empty()
        && !component.contains('.')
        && component.chars().all(|c| c.is_ascii_uppercase())
}

// The resource keys mean the same in x-composectl and composectl.toml.
const RESOURCES_DOC: &str = "What the stack may use. Every stack has a slice of its own, \
compose-NAME.slice under compose.slice, holding its supervisor and, in system mode on an engine with \
the systemd cgroup driver (the default on cgroup v2), its containers: these are that slice's settings, \
so they hold for the whole stack, whatever compose does with its containers, and systemd-cgtop and \
composectl status show what the stack uses. A container the kernel kills for memory is reported as \
such, and the stack restarts like after any failure; the other stacks are not touched. Where \
containers cannot be placed in the slice (an engine on the cgroupfs driver, or user mode with a \
rootful engine), composectl enable refuses a stack with resources and says why, rather than leave \
its limits on the supervisor alone.";
const MEMORY_KIND: &str =
    "size (512M, 8G; K, M, G, T are powers of 1024), percentage of the host's memory, or infinity";
const MEMORY_MAX_DOC: &str = "The most memory the stack's processes may use together (page cache \
included); past it the kernel reclaims, then kills a process of this stack (OOM), never one of \
another stack.";
const MEMORY_HIGH_DOC: &str = "Above this the stack's processes are slowed down and their memory \
reclaimed hard, but not killed: set it a little below memory_max. check refuses it above memory_max.";
const WEIGHT_KIND: &str = "integer from 1 to 10000";
const CPU_WEIGHT_DOC: &str = "The stack's share of CPU time when CPUs are contended, against \
every other slice's (100 each by default): 50 gets half of what a default stack gets. It does \
not limit an idle host.";
const CPU_QUOTA_DOC: &str = "A hard ceiling on the stack's CPU time, in percent of one CPU: 200% \
is two CPUs' worth, even on an idle host.";
const IO_WEIGHT_DOC: &str = "The stack's share of block I/O when the disk is contended, like \
cpu_weight (needs an I/O scheduler with weights, such as bfq).";
const TASKS_KIND: &str = "positive integer, percentage of the host's limit, or infinity";
const TASKS_MAX_DOC: &str = "The most processes and threads the stack's containers and \
supervisor may have together: a fork bomb in one stack stops there.";

pub const X_COMPOSECTL: Format = Format {
    page: "x-composectl",
    summary: "a stack's settings for composectl, in its compose file",
    description: "A stack is a directory stacks/NAME/ of the root holding one compose file \
(compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml). What composectl needs to know \
about the stack beyond compose's own keys is written in the same file, in the top-level extension \
block x-composectl, which compose itself ignores. Every key is optional. Values are interpolated with \
the stack's env layers (the root's .env and .env.local, then the stack's), like the rest of the file, \
and every problem is reported with its file and line by composectl check. Durations are systemd time \
spans: 90s, 15min, 1h 30min.",
    example: "x-composectl:
  description: GenAI services
  requires: [database, panel]
  wants: [metrics]
  ready: healthy
  start_timeout: 15min
  restart_sec: 5s
  secrets:
    WEBUI_SECRET_KEY: {length: 48}
  backup:
    pre:
      - {service: postgres, run: pg_dumpall -U app, output: postgres.sql}",
    keys: &[
        Key {
            path: "description",
            kind: "string",
            default: "Compose stack NAME",
            example: "description: GenAI services",
            doc: "What the stack is, for people: systemctl status and composectl status show it.",
            renders: "Description= of compose@NAME.service",
        },
        Key {
            path: "requires",
            kind: "list of stack names, or a mapping of stack name to options",
            default: "",
            example: "requires: [database, panel]",
            doc: "Stacks this one needs. It starts once they are ready (their containers running and \
healthy), stops when they stop, and restarts after them when their containers are recreated. \
systemd's Requires= is not used: on systemd 252 it fails a dependent for good when the required \
unit's first start fails, and restarts it whenever the required unit restarts, even when no container \
changed. Naming a stack in enable or start brings what it requires.",
            renders: "Wants= and After= on compose@STACK.service, and X-Composectl-Requires=, which the supervisor enforces",
        },
        Key {
            path: "requires.STACK",
            kind: "mapping of options, or empty for the defaults",
            default: "",
            example: "requires:\n  database: {restart: false}\n  panel:",
            doc: "A required stack written in the long form, to give it options.",
            renders: "",
        },
        Key {
            path: "requires.STACK.restart",
            kind: "boolean",
            default: "true",
            example: "requires:\n  database: {restart: false}",
            doc: "false keeps this stack running when the required stack's containers are recreated \
(compose's depends_on restart: false). It still waits for the required stack at start and stops with it.",
            renders: "",
        },
        Key {
            path: "wants",
            kind: "list of stack names",
            default: "",
            example: "wants: [metrics]",
            doc: "Stacks to start before this one when they are enabled, without depending on them: \
this stack starts even when they fail.",
            renders: "Wants= and After= on compose@STACK.service",
        },
        Key {
            path: "ready",
            kind: "healthy or running",
            default: "healthy",
            example: "ready: running",
            doc: "When the stack counts as started (its unit becomes active and its dependents start): \
healthy waits until every container runs and, where it has a healthcheck, is healthy; running only \
until every container runs.",
            renders: "when the supervisor sends READY=1",
        },
        Key {
            path: "start_timeout",
            kind: "duration",
            default: "defaults.start_timeout of composectl.toml (5min)",
            example: "start_timeout: 15min",
            doc: "How long a start may take, image pulls and healthchecks' start periods included. \
check warns when a healthcheck may need longer to report healthy.",
            renders: "TimeoutStartSec=",
        },
        Key {
            path: "restart_sec",
            kind: "duration",
            default: "defaults.restart_sec of composectl.toml (10s)",
            example: "restart_sec: 5s",
            doc: "How long systemd waits before it restarts a stack that failed.",
            renders: "RestartSec=",
        },
        Key {
            path: "secrets",
            kind: "list of variable names, or a mapping of variable name to options",
            default: "",
            example: "secrets: [POSTGRES_PASSWORD, API_KEY]",
            doc: "Secrets the stack needs in its env layers. enable and composectl secrets generate \
each one that no env file sets yet into the stack's .env.local (mode 0600), from /dev/urandom, and \
never overwrite one; the supervisor refuses to start the stack while one is unset. A declared secret \
counts as set for check. In system mode, composectl secrets encrypt seals them with systemd-creds into \
/etc/credstore.encrypted/composectl.STACK.NAME and removes them from the env files; from then on new ones \
are sealed too, and the unit loads them.",
            renders: "LoadCredentialEncrypted=composectl.STACK.NAME:/etc/credstore.encrypted/composectl.STACK.NAME, \
once encrypted (system mode)",
        },
        Key {
            path: "secrets.NAME",
            kind: "mapping of options, or empty for the defaults",
            default: "",
            example: "secrets:\n  SESSION_SECRET:",
            doc: "A secret written in the long form, to give it options.",
            renders: "",
        },
        Key {
            path: "secrets.NAME.length",
            kind: "integer from 16 to 256",
            default: "32",
            example: "secrets:\n  API_KEY: {length: 64}",
            doc: "How many characters to generate.",
            renders: "",
        },
        Key {
            path: "secrets.NAME.charset",
            kind: "alphanumeric or hex",
            default: "alphanumeric",
            example: "secrets:\n  API_KEY: {charset: hex}",
            doc: "What to generate from: A-Z, a-z and 0-9, or 0-9 and a-f. Neither needs quoting in env \
files, URLs, YAML or shells.",
            renders: "",
        },
        Key {
            path: "secrets.NAME.shared",
            kind: "boolean",
            default: "false",
            example: "secrets:\n  POSTGRES_PASSWORD: {shared: true}",
            doc: "Generate it into the root's .env.local, where every stack sees it (a database \
password its clients need too); encrypted, it is the credential composectl.NAME, which every stack \
declaring it shared loads.",
            renders: "",
        },
        Key {
            path: "log_rate_limit",
            kind: "mapping",
            default: "",
            example: "log_rate_limit: {interval: 30s, burst: 20000}",
            doc: "How many lines each container may send to the journal per interval; the rest of the \
interval is dropped and counted in one line. journald limits a unit as a whole and one supervisor \
forwards a whole stack: without this, one chatty container would silence the others.",
            renders: "LogRateLimitIntervalSec= and LogRateLimitBurst= (the sum over the containers)",
        },
        Key {
            path: "log_rate_limit.interval",
            kind: "duration",
            default: "defaults.log_rate_limit_interval of composectl.toml (30s)",
            example: "log_rate_limit: {interval: 1min}",
            doc: "The interval the burst counts in.",
            renders: "",
        },
        Key {
            path: "log_rate_limit.burst",
            kind: "positive integer",
            default: "defaults.log_rate_limit_burst of composectl.toml (10000)",
            example: "log_rate_limit: {burst: 20000}",
            doc: "Lines per container and interval.",
            renders: "",
        },
        Key {
            path: "resources",
            kind: "mapping",
            default: "[resources] of composectl.toml, key by key",
            example: "resources: {memory_max: 8G, memory_high: 7G, cpu_weight: 50}",
            doc: RESOURCES_DOC,
            renders: "settings of compose-NAME.slice",
        },
        Key {
            path: "resources.memory_max",
            kind: MEMORY_KIND,
            default: "",
            example: "resources: {memory_max: 8G}",
            doc: MEMORY_MAX_DOC,
            renders: "MemoryMax= of compose-NAME.slice",
        },
        Key {
            path: "resources.memory_high",
            kind: MEMORY_KIND,
            default: "",
            example: "resources: {memory_high: 7G}",
            doc: MEMORY_HIGH_DOC,
            renders: "MemoryHigh= of compose-NAME.slice",
        },
        Key {
            path: "resources.cpu_weight",
            kind: WEIGHT_KIND,
            default: "100",
            example: "resources: {cpu_weight: 50}",
            doc: CPU_WEIGHT_DOC,
            renders: "CPUWeight= of compose-NAME.slice",
        },
        Key {
            path: "resources.cpu_quota",
            kind: "percentage of one CPU",
            default: "",
            example: "resources: {cpu_quota: 200%}",
            doc: CPU_QUOTA_DOC,
            renders: "CPUQuota= of compose-NAME.slice",
        },
        Key {
            path: "resources.io_weight",
            kind: WEIGHT_KIND,
            default: "100",
            example: "resources: {io_weight: 50}",
            doc: IO_WEIGHT_DOC,
            renders: "IOWeight= of compose-NAME.slice",
        },
        Key {
            path: "resources.tasks_max",
            kind: TASKS_KIND,
            default: "systemd's DefaultTasksMax",
            example: "resources: {tasks_max: 4096}",
            doc: TASKS_MAX_DOC,
            renders: "TasksMax= of compose-NAME.slice",
        },
        Key {
            path: "backup",
            kind: "mapping",
            default: "",
            example: "backup: {mode: stopped}",
            doc: "What composectl backup STACK does besides archiving the stack's named volumes.",
            renders: "",
        },
        Key {
            path: "backup.mode",
            kind: "live or stopped",
            default: "live",
            example: "backup: {mode: stopped}",
            doc: "live archives while the stack runs (consistent for what the hooks dump, the raw \
files as they were); stopped stops the stack and the stacks requiring it while its volumes are \
archived, and starts them again.",
            renders: "",
        },
        Key {
            path: "backup.paths",
            kind: "list of paths",
            default: "",
            example: "backup: {paths: [./config]}",
            doc: "Host paths to archive too, relative to the stack's directory or absolute.",
            renders: "",
        },
        Key {
            path: "backup.pre",
            kind: "list of hooks",
            default: "",
            example: "backup:\n  pre:\n    - {service: db, run: pg_dumpall -U app, output: db.sql}",
            doc: "Commands run before the volumes are archived, each in a running container of its \
service through sh -c; a hook that fails or outlives its timeout fails the backup and nothing is written.",
            renders: "",
        },
        Key {
            path: "backup.pre[].service",
            kind: "service name",
            default: "",
            example: "backup:\n  pre:\n    - {service: db, run: pg_dumpall -U app}",
            doc: "The service whose container runs the hook; one that compose up starts. Required.",
            renders: "",
        },
        Key {
            path: "backup.pre[].run",
            kind: "shell command",
            default: "",
            example: "backup:\n  pre:\n    - {service: db, run: pg_dumpall -U app}",
            doc: "What to run. Its standard output is saved in the archive. Required.",
            renders: "",
        },
        Key {
            path: "backup.pre[].output",
            kind: "file name",
            default: "SERVICE.out",
            example: "backup:\n  pre:\n    - {service: db, run: pg_dumpall -U app, output: db.sql}",
            doc: "The name of the hook's output in the archive (hooks/OUTPUT): letters, digits, '.', \
'-' and '_', not starting with '.'; one per hook.",
            renders: "",
        },
        Key {
            path: "backup.pre[].timeout",
            kind: "duration",
            default: "30min",
            example: "backup:\n  pre:\n    - {service: db, run: pg_dumpall -U app, timeout: 1h}",
            doc: "How long the hook may run.",
            renders: "",
        },
        Key {
            path: "update",
            kind: "mapping",
            default: "",
            example: "update: {backup: true}",
            doc: "What composectl update STACK does besides pulling newer images and having the \
stack's supervisor apply them.",
            renders: "",
        },
        Key {
            path: "update.backup",
            kind: "boolean",
            default: "false",
            example: "update: {backup: true}",
            doc: "true takes a backup of the running stack, as composectl backup STACK does (hooks, \
volumes, paths; into the backup directory, keeping [backup] keep archives), before composectl update \
pulls and applies newer images, when update --check would list one; when the backup fails, the \
stack is not updated. A rollback puts the previous images back, never the data, which the new \
images may have migrated on start: update then names the archive and the composectl restore STACK \
ARCHIVE --stop that goes back to it. composectl never restores on its own, since a restore loses \
what was written after the backup.",
            renders: "",
        },
    ],
    see_also: &[
        "composectl(1)",
        "composectl.toml(5)",
        "networks.toml(5)",
        "systemd.service(5)",
    ],
};

pub const NETWORKS_TOML: Format = Format {
    page: "networks.toml",
    summary: "the networks composectl's stacks share",
    description: "networks.toml, at the top of the root, lists the networks stacks share, with the \
settings docker network create takes. Stacks join them as external networks in their compose files \
(networks: {proxy: {external: true}}). Before a stack starts, its supervisor makes sure each network \
it joins exists exactly as written here: it creates a missing one and refuses to start, saying what \
differs, when one has drifted (it never recreates a network in use); composectl networks does the same \
for all of them. Unknown keys are errors, so a typo never silently becomes a default.",
    example: "[networks.proxy]
subnet = \"172.20.0.0/24\"
gateway = \"172.20.0.1\"
labels = { purpose = \"proxy\" }

[networks.database]
subnet = \"172.22.0.0/24\"
internal = true",
    keys: &[
        Key {
            path: "networks",
            kind: "table of networks",
            default: "",
            example: "[networks]",
            doc: "The networks, one table each.",
            renders: "",
        },
        Key {
            path: "networks.NAME",
            kind: "table",
            default: "",
            example: "[networks.proxy]\nsubnet = \"172.20.0.0/24\"",
            doc: "A network named NAME on the engine: letters, digits, '_', '.' and '-', starting with \
a letter or digit.",
            renders: "docker network create NAME",
        },
        Key {
            path: "networks.NAME.subnet",
            kind: "CIDR block",
            default: "",
            example: "[networks.proxy]\nsubnet = \"172.20.0.0/24\"",
            doc: "The network's subnet, without host bits; no two networks may overlap. Required.",
            renders: "--subnet",
        },
        Key {
            path: "networks.NAME.gateway",
            kind: "IP address",
            default: "the subnet's first host address",
            example: "[networks.proxy]\nsubnet = \"172.20.0.0/24\"\ngateway = \"172.20.0.254\"",
            doc: "The gateway, a host address of the subnet.",
            renders: "--gateway",
        },
        Key {
            path: "networks.NAME.internal",
            kind: "boolean",
            default: "false",
            example: "[networks.database]\nsubnet = \"172.22.0.0/24\"\ninternal = true",
            doc: "An internal network has no route out of the host: its containers reach each other \
and nothing else.",
            renders: "--internal",
        },
        Key {
            path: "networks.NAME.driver",
            kind: "string",
            default: "bridge",
            example: "[networks.proxy]\nsubnet = \"172.20.0.0/24\"\ndriver = \"bridge\"",
            doc: "The network driver. On Docker Swarm (composectl swarm) bridge and overlay both mean \
overlay, and other drivers are refused.",
            renders: "--driver",
        },
        Key {
            path: "networks.NAME.labels",
            kind: "table of strings",
            default: "",
            example: "[networks.proxy]\nsubnet = \"172.20.0.0/24\"\nlabels = { purpose = \"proxy\" }",
            doc: "Labels set on the network.",
            renders: "--label KEY=VALUE",
        },
    ],
    see_also: &[
        "composectl(1)",
        "x-composectl(5)",
        "docker-network-create(1)",
    ],
};

pub const COMPOSECTL_TOML: Format = Format {
    page: "composectl.toml",
    summary: "settings of a composectl root",
    description: "composectl.toml, at the top of the root, is optional: every setting has a default. \
It names the compose command and the defaults every stack starts from (x-composectl(5) overrides some \
per stack). Durations are systemd time spans: 90s, 15min, 1h 30min. Unknown keys are errors. Changes \
to what the units hold (timeouts, start limits, log limits) take effect at the next composectl enable.",
    example: "compose = [\"docker\", \"compose\"]

[defaults]
start_timeout = \"5min\"
restart_sec = \"10s\"

[backup]
dir = \"/var/backups/composectl\"
keep = 7",
    keys: &[
        Key {
            path: "compose",
            kind: "array of strings",
            default: "[\"docker\", \"compose\"]",
            example: "compose = [\"docker\", \"compose\"]",
            doc: "The compose command, as its words. The supervisor runs it with the project name, \
the compose file, the project directory and the env layers.",
            renders: "",
        },
        Key {
            path: "defaults",
            kind: "table",
            default: "",
            example: "[defaults]",
            doc: "Defaults for every stack's unit and supervisor.",
            renders: "",
        },
        Key {
            path: "defaults.start_timeout",
            kind: "duration",
            default: "5min",
            example: "[defaults]\nstart_timeout = \"10min\"",
            doc: "How long a stack's start may take (image pulls, healthchecks' start periods); \
x-composectl start_timeout overrides it.",
            renders: "TimeoutStartSec=",
        },
        Key {
            path: "defaults.stop_timeout",
            kind: "duration",
            default: "2min",
            example: "[defaults]\nstop_timeout = \"3min\"",
            doc: "How long a stack's stop (compose down) may take before systemd kills what is left. \
A stack whose containers need longer gets longer: compose gives each its stop_grace_period (10s \
unless set), dependents first, so the longest depends_on chain of grace periods plus 30s, written \
into the stack's drop-in. composectl check warns when an operator's drop-in that takes effect after \
composectl's (systemctl edit's override.conf) sets a shorter TimeoutStopSec= or TimeoutSec=.",
            renders: "TimeoutStopSec=",
        },
        Key {
            path: "defaults.restart_sec",
            kind: "duration",
            default: "10s",
            example: "[defaults]\nrestart_sec = \"5s\"",
            doc: "How long systemd waits before it restarts a failed stack; x-composectl restart_sec \
overrides it.",
            renders: "RestartSec=",
        },
        Key {
            path: "defaults.start_limit_interval",
            kind: "duration",
            default: "10min",
            example: "[defaults]\nstart_limit_interval = \"15min\"",
            doc: "With start_limit_burst: a stack started that many times within this interval stays \
failed (a crash loop ends), until systemctl reset-failed.",
            renders: "StartLimitIntervalSec=",
        },
        Key {
            path: "defaults.start_limit_burst",
            kind: "integer",
            default: "5",
            example: "[defaults]\nstart_limit_burst = 3",
            doc: "How many starts start_limit_interval allows.",
            renders: "StartLimitBurst=",
        },
        Key {
            path: "defaults.failure_grace",
            kind: "duration",
            default: "10s",
            example: "[defaults]\nfailure_grace = \"30s\"",
            doc: "How long a container that died or turned unhealthy may take to come back by its \
restart policy or its healthcheck before the supervisor fails the stack (systemd then restarts it). \
A container the engine will not restart fails it at once.",
            renders: "",
        },
        Key {
            path: "defaults.log_rate_limit_interval",
            kind: "duration",
            default: "30s",
            example: "[defaults]\nlog_rate_limit_interval = \"1min\"",
            doc: "The interval of each container's log budget; x-composectl log_rate_limit overrides it.",
            renders: "LogRateLimitIntervalSec=",
        },
        Key {
            path: "defaults.log_rate_limit_burst",
            kind: "positive integer",
            default: "10000",
            example: "[defaults]\nlog_rate_limit_burst = 20000",
            doc: "Lines each container may log per interval (journald's own default for a unit); the \
rest of the interval is dropped and counted.",
            renders: "LogRateLimitBurst= (the sum over the stack's containers)",
        },
        Key {
            path: "backup",
            kind: "table",
            default: "",
            example: "[backup]",
            doc: "Where composectl backup writes archives, and how many it keeps.",
            renders: "",
        },
        Key {
            path: "backup.dir",
            kind: "absolute path",
            default: "/var/backups/composectl, or ~/.local/state/composectl/backups in user mode",
            example: "[backup]\ndir = \"/srv/backups\"",
            doc: "The directory for archives.",
            renders: "",
        },
        Key {
            path: "backup.keep",
            kind: "positive integer",
            default: "all",
            example: "[backup]\nkeep = 14",
            doc: "After each backup, keep only the newest archives of the stack.",
            renders: "",
        },
        Key {
            path: "resources",
            kind: "table",
            default: "",
            example: "[resources]\nmemory_max = \"4G\"\ncpu_weight = 100",
            doc: "Resources every stack gets unless its x-composectl resources sets the same key. Each \
stack gets these for itself, in its own slice: they are not shared among the stacks.",
            renders: "settings of each compose-NAME.slice",
        },
        Key {
            path: "resources.memory_max",
            kind: MEMORY_KIND,
            default: "",
            example: "[resources]\nmemory_max = \"4G\"",
            doc: MEMORY_MAX_DOC,
            renders: "MemoryMax=",
        },
        Key {
            path: "resources.memory_high",
            kind: MEMORY_KIND,
            default: "",
            example: "[resources]\nmemory_high = \"3G\"",
            doc: MEMORY_HIGH_DOC,
            renders: "MemoryHigh=",
        },
        Key {
            path: "resources.cpu_weight",
            kind: WEIGHT_KIND,
            default: "100",
            example: "[resources]\ncpu_weight = 100",
            doc: CPU_WEIGHT_DOC,
            renders: "CPUWeight=",
        },
        Key {
            path: "resources.cpu_quota",
            kind: "percentage of one CPU",
            default: "",
            example: "[resources]\ncpu_quota = \"100%\"",
            doc: CPU_QUOTA_DOC,
            renders: "CPUQuota=",
        },
        Key {
            path: "resources.io_weight",
            kind: WEIGHT_KIND,
            default: "100",
            example: "[resources]\nio_weight = 100",
            doc: IO_WEIGHT_DOC,
            renders: "IOWeight=",
        },
        Key {
            path: "resources.tasks_max",
            kind: TASKS_KIND,
            default: "systemd's DefaultTasksMax",
            example: "[resources]\ntasks_max = 4096",
            doc: TASKS_MAX_DOC,
            renders: "TasksMax=",
        },
        Key {
            path: "notify",
            kind: "table",
            default: "",
            example: "[notify]\ncommand = \"curl -fsS -m 10 --data-binary @- https://ntfy.sh/my-homelab\"",
            doc: "A command to run when a stack fails for good: its restarts used up (start_limit_burst \
within start_limit_interval), or its start failing. Off until set. A clean stop never notifies.",
            renders: "OnFailure=composectl-notify@NAME.service in each stack's drop-in",
        },
        Key {
            path: "notify.command",
            kind: "shell command line",
            default: "",
            example: "[notify]\ncommand = 'mail -s \"$COMPOSECTL_MESSAGE\" root'",
            doc: "Run with /bin/sh -c by composectl-notify@NAME.service (as root in system mode), \
for at most 60s. Its standard input is the message and the stack's last 20 journal lines; its \
environment has COMPOSECTL_STACK, COMPOSECTL_UNIT, COMPOSECTL_HOST, COMPOSECTL_RESULT (systemd's \
result: exit-code, timeout, start-limit-hit, oom-kill, ...), COMPOSECTL_STATE (failed, or restarting), \
COMPOSECTL_MESSAGE (one line) and COMPOSECTL_LOG (the lines). composectl notify NAME --test runs it \
by hand. Suits curl to ntfy, Gotify or a webhook, mail, or a script.",
            renders: "ExecStart= of composectl-notify@.service",
        },
        Key {
            path: "notify.restarts",
            kind: "boolean",
            default: "false",
            example: "[notify]\ncommand = \"logger -t composectl\"\nrestarts = true",
            doc: "Also notify on each failure systemd restarts the stack after (COMPOSECTL_STATE=restarting), \
not only when it stays failed.",
            renders: "",
        },
        Key {
            path: "update",
            kind: "table",
            default: "",
            example: "[update]",
            doc: "What the optional update timer does.",
            renders: "",
        },
        Key {
            path: "update.timer",
            kind: "update or check",
            default: "update",
            example: "[update]\ntimer = \"check\"",
            doc: "composectl-update.timer (off until enabled) runs composectl update --all, or with \
check only composectl update --check --all (newer images are listed in its journal).",
            renders: "ExecStart= of composectl-update.service",
        },
    ],
    see_also: &["composectl(1)", "x-composectl(5)", "networks.toml(5)"],
};

/// Checks a TOML file's syntax and its keys against `format`: each problem is reported with its
/// line, column and the line itself, an unknown key with the closest known one. Returns whether
/// the file may be deserialized (its values' types are serde's to check).
pub fn check_toml(format: &Format, path: &Path, text: &str, diags: &mut Diagnostics) -> bool {
    let table = match toml::de::DeTable::parse(text) {
        Ok(table) => table,
        Err(e) => {
            diags.push(toml_error(format, path, text, &e));
            return false;
        }
    };
    let before = diags.errors().count();
    check_table(format, ("", ""), table.get_ref(), path, text, diags);
    diags.errors().count() == before
}

/// A TOML error (syntax, or a value serde refused) at its place in the file.
pub fn toml_error(format: &Format, path: &Path, text: &str, error: &toml::de::Error) -> Diagnostic {
    let diag = Diagnostic::error(path.to_path_buf(), error.message().trim().to_string());
    let diag = match error.span() {
        Some(span) => diag.at_offset(text, span.start),
        None => diag,
    };
    diag.hint(format!("see man 5 {}", format.page))
}

/// `parent`: the table's path as a pattern of the reference, and as written.
fn check_table(
    format: &Format,
    parent: (&str, &str),
    table: &toml::de::DeTable<'_>,
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) {
    let (pattern, written) = parent;
    for (name, value) in table {
        let Some(key) = format.key(pattern, name.get_ref()) else {
            let known = format.children(pattern);
            let near = match crate::diag::closest(name.get_ref(), known.iter().copied()) {
                Some(near) => format!("did you mean {near}? "),
                None => String::new(),
            };
            let place = if written.is_empty() {
                "at the top".to_string()
            } else {
                format!("in [{written}]")
            };
            diags.push(
                Diagnostic::error(
                    path.to_path_buf(),
                    format!("unknown key {:?} {place}", name.get_ref()),
                )
                .at_offset(text, name.span().start)
                .hint(format!(
                    "{near}known keys there: {} (man 5 {})",
                    known.join(", "),
                    format.page
                )),
            );
            continue;
        };
        if let toml::de::DeValue::Table(inner) = value.get_ref()
            && format.has_children(key.path)
        {
            let written = if written.is_empty() {
                name.get_ref().to_string()
            } else {
                format!("{written}.{}", name.get_ref())
            };
            check_table(format, (key.path, &written), inner, path, text, diags);
        }
    }
}

/// The format's man page (section 5), in roff: every key with its type, default, what it
/// renders to and an example.
pub fn man_page(format: &Format, version: &str) -> String {
    use roff::{Roff, bold, italic, roman};
    let upper = format.page.to_uppercase();
    let source = format!("composectl {version}");
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            upper.as_str(),
            "5",
            "",
            source.as_str(),
            "composectl manual",
        ],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(format!("{} - {}", format.page, format.summary))]);
    page.control("SH", ["DESCRIPTION"]);
    page.text([roman(format.description)]);
    page.control("SH", ["EXAMPLE"]);
    preformatted(&mut page, format.example, "4");
    page.control("SH", ["KEYS"]);
    for key in format.keys {
        page.control("TP", []);
        page.text([bold(key.path), roman(" ("), italic(key.kind), roman(")")]);
        page.text([roman(key.doc)]);
        if !key.default.is_empty() {
            page.control("br", []);
            page.text([italic("Default:"), roman(format!(" {}", key.default))]);
        }
        if !key.renders.is_empty() {
            page.control("br", []);
            page.text([italic("Renders:"), roman(format!(" {}", key.renders))]);
        }
        page.control("br", []);
        page.text([italic("Example:")]);
        // Under the paragraph's own indent.
        preformatted(&mut page, key.example, "11");
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([roman(format.see_also.join(", "))]);
    page.render()
}

/// Lines kept as written, indented by `indent` ens.
fn preformatted(page: &mut roff::Roff, text: &str, indent: &str) {
    page.control("RS", [indent]);
    page.control("nf", []);
    for line in text.lines() {
        page.text([roff::roman(line)]);
    }
    page.control("fi", []);
    page.control("RE", []);
}

/// Every format, for the man pages and the tests.
pub const FORMATS: [&Format; 3] = [&X_COMPOSECTL, &NETWORKS_TOML, &COMPOSECTL_TOML];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_under_their_parents() {
        assert_eq!(
            X_COMPOSECTL.key("", "requires").map(|k| k.path),
            Some("requires")
        );
        assert_eq!(
            X_COMPOSECTL.key("secrets", "API_KEY").map(|k| k.path),
            Some("secrets.NAME")
        );
        assert_eq!(
            X_COMPOSECTL.key("secrets.NAME", "length").map(|k| k.path),
            Some("secrets.NAME.length")
        );
        assert_eq!(
            X_COMPOSECTL.key("backup.pre[]", "run").map(|k| k.path),
            Some("backup.pre[].run")
        );
        assert!(X_COMPOSECTL.key("", "requirs").is_none());
        assert!(X_COMPOSECTL.key("secrets.NAME", "size").is_none());
        assert_eq!(
            NETWORKS_TOML.key("networks", "proxy").map(|k| k.path),
            Some("networks.NAME")
        );
        assert_eq!(
            X_COMPOSECTL.children("backup"),
            ["mode", "paths", "pre"],
            "children name the fixed keys"
        );
        assert!(NETWORKS_TOML.has_children("networks.NAME"));
        assert!(!NETWORKS_TOML.has_children("networks.NAME.labels"));
    }

    #[test]
    fn the_man_pages_name_every_key() {
        for format in FORMATS {
            let page = man_page(format, "0.0.0");
            assert!(page.contains(&format!(".TH {}", format.page.to_uppercase())));
            for key in format.keys {
                let written = key.path.replace('-', "\\-");
                assert!(
                    page.contains(&written),
                    "{}: {} missing",
                    format.page,
                    key.path
                );
            }
        }
    }

    /// A key in the table that the parser does not read fails here (the parser's arms end in
    /// `unreachable!`), and so does an example the parser refuses.
    #[test]
    fn every_documented_key_is_read() {
        let env = crate::config::env::EnvLayers::default();
        for key in X_COMPOSECTL.keys {
            let indented: String = key.example.lines().map(|l| format!("  {l}\n")).collect();
            let text = format!("x-composectl:\n{indented}services:\n  db:\n    image: postgres\n");
            let mut diags = Diagnostics::default();
            crate::config::compose_file::parse(Path::new("compose.yaml"), &text, &env, &mut diags);
            assert!(!diags.has_errors(), "{}:\n{text}\n{diags}", key.path);
        }
        for key in NETWORKS_TOML.keys {
            let mut diags = Diagnostics::default();
            crate::config::networks::parse(Path::new("networks.toml"), key.example, &mut diags);
            assert!(!diags.has_errors(), "{}: {diags}", key.path);
        }
        for key in COMPOSECTL_TOML.keys {
            let mut diags = Diagnostics::default();
            crate::config::settings::parse(Path::new("composectl.toml"), key.example, &mut diags);
            assert!(!diags.has_errors(), "{}: {diags}", key.path);
        }
    }

    #[test]
    fn every_key_has_its_words_and_an_example_that_names_it() {
        for format in FORMATS {
            for key in format.keys {
                let last = key.path.rsplit('.').next().unwrap_or(key.path);
                let last = last.strip_suffix("[]").unwrap_or(last);
                assert!(!key.kind.is_empty() && !key.doc.is_empty(), "{}", key.path);
                assert!(
                    is_placeholder(last) || key.example.contains(last),
                    "{}: its example does not write it",
                    key.path
                );
            }
        }
    }
}
