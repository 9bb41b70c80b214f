//! `x-composectl`: the stack's own settings, a top-level extension of its compose file that
//! compose ignores (description, dependencies, readiness, timeouts, generated secrets, log rate
//! limits, backups, updates). Read by the compose file's parser, so every value is interpolated
//! and every problem reported with its line like the rest of the file.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::env::is_var_name;
use super::parser::{Located, Parser};
use super::reference::X_COMPOSECTL;
use super::resources::Resources;
use super::yaml::{self, Entry, Node};

pub const META_KEY: &str = "x-composectl";

/// When a stack counts as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// Every container running, and healthy where it has a healthcheck.
    Healthy,
    /// Every container running; healthchecks are not waited for.
    Running,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub description: Option<String>,
    pub requires: Vec<Located>,
    /// Required stacks written with `restart: false`: this stack keeps running when their
    /// containers are recreated (compose's `depends_on: {x: {restart: false}}`).
    pub keeps_running_with: Vec<String>,
    pub wants: Vec<Located>,
    pub ready: Option<Ready>,
    /// With the line it is written on, for the warning about healthchecks that need longer.
    pub start_timeout: Option<(Duration, usize)>,
    pub restart_sec: Option<Duration>,
    pub secrets: Vec<SecretSpec>,
    pub log_rate_limit: LogRateLimit,
    pub backup: Backup,
    pub update: Update,
    /// With the line of the block, for a conflict between its keys.
    pub resources: (Resources, usize),
}

/// A secret the stack needs, generated once into its `.env.local` (the root's when `shared`)
/// when no env layer sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretSpec {
    pub name: String,
    pub length: usize,
    pub charset: Charset,
    /// Generated into the root's `.env.local`, where every stack sees it (a database password
    /// its clients need too).
    pub shared: bool,
    #[serde(skip)]
    pub line: usize,
}

/// What generated secrets are made of: characters that need no quoting in env files, URLs,
/// YAML or shells, so a secret works wherever the stack interpolates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    /// A-Z, a-z, 0-9: 5.95 bits a character.
    Alphanumeric,
    /// 0-9, a-f: for what wants hex keys (4 bits a character).
    Hex,
}

impl Charset {
    pub fn alphabet(self) -> &'static [u8] {
        match self {
            Charset::Alphanumeric => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            }
            Charset::Hex => b"0123456789abcdef",
        }
    }
}

/// The default length of a generated secret: 190 bits alphanumeric.
pub const SECRET_LENGTH: usize = 32;
const SECRET_LENGTHS: std::ops::RangeInclusive<usize> = 16..=256;

/// `log_rate_limit`: overrides of composectl.toml's defaults, per stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRateLimit {
    pub interval: Option<Duration>,
    /// Lines per container and interval.
    pub burst: Option<u32>,
}

/// `backup`: what `composectl backup` archives besides the named volumes, what it runs first,
/// and whether the stack is stopped meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub mode: BackupMode,
    /// Host paths (bind mounts) archived too, relative to the stack's directory or absolute.
    pub paths: Vec<Located>,
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// Archived while the stack runs: consistent for what the hooks dump.
    #[default]
    Live,
    /// The stack (and the stacks that require it) stopped while its volumes are archived.
    Stopped,
}

/// A command run in a service's container before the volumes are archived; its standard output
/// is saved in the archive as `output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub service: String,
    pub run: String,
    pub output: String,
    pub timeout: Duration,
    #[serde(skip)]
    pub line: usize,
}

/// `update`: what `composectl update` does besides applying newer images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Update {
    /// A backup first, as `composectl backup` takes it: a rollback puts the old images back,
    /// not the data the new ones may have migrated.
    pub backup: bool,
}

/// How long a hook may run unless it says otherwise.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The names of the secrets a compose file declares, read before anything else: interpolation
/// counts them as set, since `enable` generates them before the stack runs.
pub fn declared_secrets(doc: &Node) -> Vec<String> {
    let Some(secrets) = yaml::get(doc, META_KEY).and_then(|m| yaml::get(m.value, "secrets")) else {
        return Vec::new();
    };
    match yaml::as_sequence(secrets.value) {
        Some(items) => items
            .iter()
            .filter_map(|item| yaml::scalar_text(item).map(|t| t.into_owned()))
            .collect(),
        None => yaml::entries(secrets.value)
            .into_iter()
            .map(|e| e.key.into_owned())
            .collect(),
    }
}

impl Parser<'_> {
    pub(super) fn meta(&mut self, node: &Node) -> Meta {
        let mut meta = Meta::default();
        if yaml::is_null(node) {
            return meta;
        }
        if !yaml::is_mapping(node) {
            self.error(
                Some(yaml::line(node)),
                format!("{META_KEY} is {}, expected a mapping", yaml::kind(node)),
                &format!(
                    "write x-composectl as a mapping of {} (man 5 x-composectl)",
                    X_COMPOSECTL.children("").join(", ")
                ),
            );
            return meta;
        }
        for entry in yaml::entries(node) {
            let what = format!("{META_KEY}.{}", entry.key);
            let Some(key) = self.known_key("", META_KEY, &entry) else {
                continue;
            };
            match key {
                "description" => meta.description = self.string(entry.value, &what),
                "requires" => {
                    (meta.requires, meta.keeps_running_with) = self.requirements(entry.value, &what)
                }
                "wants" => meta.wants = self.string_list(entry.value, &what),
                "ready" => {
                    meta.ready = match self.string(entry.value, &what).as_deref() {
                        Some("healthy") => Some(Ready::Healthy),
                        Some("running") => Some(Ready::Running),
                        Some(other) => {
                            self.error(
                                Some(entry.line),
                                format!("{what} is {other:?}"),
                                "use ready: healthy (wait for healthchecks) or ready: running",
                            );
                            None
                        }
                        None => None,
                    }
                }
                "start_timeout" => {
                    meta.start_timeout = self
                        .duration(entry.value, &what)
                        .map(|timeout| (timeout, entry.line))
                }
                "restart_sec" => meta.restart_sec = self.duration(entry.value, &what),
                "secrets" => meta.secrets = self.secrets(entry.value, &what),
                "log_rate_limit" => meta.log_rate_limit = self.log_rate_limit(entry.value, &what),
                "backup" => meta.backup = self.backup(entry.value, &what),
                "update" => meta.update = self.update(entry.value, &what),
                "resources" => meta.resources = (self.resources(entry.value, &what), entry.line),
                other => unread(other),
            }
        }
        meta
    }

    /// The key of `entry`, one of the reference's keys under `parent` (a path of
    /// `reference::X_COMPOSECTL`; `section` is where it is in the file), or None once an unknown
    /// key is reported with the closest one.
    fn known_key(&mut self, parent: &str, section: &str, entry: &Entry) -> Option<&'static str> {
        if let Some(key) = X_COMPOSECTL.key(parent, &entry.key) {
            return Some(key.path.rsplit('.').next().unwrap_or(key.path));
        }
        let known = X_COMPOSECTL.children(parent);
        let near = match crate::diag::closest(&entry.key, known.iter().copied()) {
            Some(near) => format!("did you mean {near}? "),
            None => String::new(),
        };
        self.error(
            Some(entry.line),
            format!("unknown key {:?} in {section}", entry.key),
            &format!(
                "{near}{section} takes {} (man 5 x-composectl)",
                known.join(", ")
            ),
        );
        None
    }

    /// `requires` as a list of stack names, or as a mapping of stack name to options (only
    /// `restart`), in the spirit of compose's long `depends_on` syntax. Returns the stacks and
    /// those written with `restart: false`.
    fn requirements(&mut self, node: &Node, what: &str) -> (Vec<Located>, Vec<String>) {
        if !yaml::is_mapping(node) {
            return (self.string_list(node, what), Vec::new());
        }
        let mut requires = Vec::new();
        let mut keeps_running = Vec::new();
        for entry in yaml::entries(node) {
            let stack = entry.key.to_string();
            if !self.options(
                entry.value,
                &format!("{what}.{stack}"),
                "write requires: {database: {restart: false}}, or a list of stack names",
            ) {
                continue;
            }
            for option in yaml::entries(entry.value) {
                let Some(key) =
                    self.known_key("requires.STACK", &format!("{what}.{stack}"), &option)
                else {
                    continue;
                };
                match (key, yaml::as_bool(option.value)) {
                    ("restart", Some(restart)) => {
                        if !restart {
                            keeps_running.push(stack.clone());
                        }
                    }
                    ("restart", None) => self.error(
                        Some(option.line),
                        format!("{what}.{stack}.restart is {}, expected true or false", yaml::kind(option.value)),
                        "restart: false keeps this stack running when the required stack's containers are recreated",
                    ),
                    (other, _) => unread(other),
                }
            }
            requires.push(Located {
                value: stack,
                line: entry.line,
            });
        }
        (requires, keeps_running)
    }

    /// Whether `node` can hold options (a mapping, or empty for the defaults); reports it if not.
    fn options(&mut self, node: &Node, what: &str, hint: &str) -> bool {
        if yaml::is_null(node) || yaml::is_mapping(node) {
            return true;
        }
        self.error(
            Some(yaml::line(node)),
            format!("{what} is {}, expected a mapping", yaml::kind(node)),
            hint,
        );
        false
    }

    /// `secrets`: a list of variable names, or a mapping of name to `{length, charset}`.
    fn secrets(&mut self, node: &Node, what: &str) -> Vec<SecretSpec> {
        const HINT: &str =
            "write secrets: {POSTGRES_PASSWORD: {length: 32}}, or a list of variable names";
        // A list of names takes every default.
        let mut specs: Vec<SecretSpec> = Vec::new();
        let declared: Vec<(Located, Option<&Node>)> = if yaml::is_mapping(node) {
            yaml::entries(node)
                .into_iter()
                .map(|e| {
                    let name = Located {
                        value: e.key.into_owned(),
                        line: e.line,
                    };
                    (name, Some(e.value))
                })
                .collect()
        } else {
            self.string_list(node, what)
                .into_iter()
                .map(|name| (name, None))
                .collect()
        };
        for (name, options) in declared {
            let mut spec = SecretSpec {
                name: name.value,
                length: SECRET_LENGTH,
                charset: Charset::Alphanumeric,
                shared: false,
                line: name.line,
            };
            let here = format!("{what}.{}", spec.name);
            if !is_var_name(&spec.name) {
                self.error(
                    Some(spec.line),
                    format!("{here}: {:?} is not a variable name", spec.name),
                    "names are letters, digits and _, not starting with a digit",
                );
                continue;
            }
            if specs.iter().any(|s| s.name == spec.name) {
                self.error(
                    Some(spec.line),
                    format!("{here} is declared twice"),
                    "declare each secret once",
                );
                continue;
            }
            if let Some(options) = options
                && self.options(options, &here, HINT)
            {
                for option in yaml::entries(options) {
                    let Some(key) = self.known_key("secrets.NAME", &here, &option) else {
                        continue;
                    };
                    let value = self.value(option.value);
                    match key {
                        "length" => match value.as_deref().map(str::parse::<usize>) {
                            Some(Ok(length)) if SECRET_LENGTHS.contains(&length) => {
                                spec.length = length
                            }
                            _ => self.error(
                                Some(option.line),
                                format!(
                                    "{here}.length is {}, expected a number from {} to {}",
                                    describe(value.as_deref(), option.value),
                                    SECRET_LENGTHS.start(),
                                    SECRET_LENGTHS.end()
                                ),
                                "32 alphanumeric characters (the default) hold 190 bits",
                            ),
                        },
                        "charset" => match value.as_deref() {
                            Some("alphanumeric") => spec.charset = Charset::Alphanumeric,
                            Some("hex") => spec.charset = Charset::Hex,
                            _ => self.error(
                                Some(option.line),
                                format!(
                                    "{here}.charset is {}",
                                    describe(value.as_deref(), option.value)
                                ),
                                "use charset: alphanumeric (the default) or charset: hex",
                            ),
                        },
                        "shared" => {
                            if let Some(shared) = self.boolean(
                                &option,
                                &format!("{here}.shared"),
                                "shared: true generates it into the root's .env.local, for every stack",
                            ) {
                                spec.shared = shared
                            }
                        }
                        other => unread(other),
                    }
                }
            }
            specs.push(spec);
        }
        specs
    }

    /// `log_rate_limit: {interval: 30s, burst: 10000}`: how many lines each container may log
    /// per interval before the supervisor drops the rest of that interval.
    fn log_rate_limit(&mut self, node: &Node, what: &str) -> LogRateLimit {
        let mut limit = LogRateLimit::default();
        if !self.options(
            node,
            what,
            "write log_rate_limit: {interval: 30s, burst: 10000}",
        ) {
            return limit;
        }
        for option in yaml::entries(node) {
            let here = format!("{what}.{}", option.key);
            let Some(key) = self.known_key("log_rate_limit", what, &option) else {
                continue;
            };
            match key {
                "interval" => limit.interval = self.duration(option.value, &here),
                "burst" => {
                    let value = self.value(option.value);
                    match value.as_deref().map(str::parse::<u32>) {
                        Some(Ok(burst)) if burst > 0 => limit.burst = Some(burst),
                        _ => self.error(
                            Some(option.line),
                            format!(
                                "{here} is {}, expected a positive number of lines",
                                describe(value.as_deref(), option.value)
                            ),
                            "burst counts lines per container and interval, e.g. burst: 10000",
                        ),
                    }
                }
                other => unread(other),
            }
        }
        limit
    }

    /// `resources: {memory_max: 8G, cpu_weight: 50, ...}`: the stack's slice settings.
    fn resources(&mut self, node: &Node, what: &str) -> Resources {
        let mut resources = Resources::default();
        if !self.options(
            node,
            what,
            "write resources: {memory_max: 8G, memory_high: 7G, cpu_weight: 50}",
        ) {
            return resources;
        }
        let mut high_line = None;
        for option in yaml::entries(node) {
            let Some(key) = self.known_key("resources", what, &option) else {
                continue;
            };
            if key == "memory_high" {
                high_line = Some(option.line);
            }
            if yaml::scalar_text(option.value).is_none() {
                self.error(
                    Some(option.line),
                    format!(
                        "{what}.{key} is {}, expected a value",
                        yaml::kind(option.value)
                    ),
                    "write one value, e.g. memory_max: 8G (man 5 x-composectl)",
                );
                continue;
            }
            // An interpolation error is reported once for the whole file.
            let Some(text) = self.value(option.value) else {
                continue;
            };
            if let Err(message) = resources.set(key, &text) {
                self.error(
                    Some(option.line),
                    format!("{what}.{message}"),
                    "see man 5 x-composectl for what each resource takes",
                );
            }
        }
        if let Some(conflict) = resources.conflict() {
            self.error(
                high_line.or(Some(yaml::line(node))),
                format!("{what}: {conflict}"),
                "set memory_high below memory_max (where the kernel starts reclaiming), or leave one out",
            );
        }
        resources
    }

    /// `backup: {mode, paths, pre}`.
    fn backup(&mut self, node: &Node, what: &str) -> Backup {
        let mut backup = Backup::default();
        if !self.options(
            node,
            what,
            "write backup: {mode: live, paths: [./config], pre: [{service: db, run: pg_dumpall}]}",
        ) {
            return backup;
        }
        for option in yaml::entries(node) {
            let here = format!("{what}.{}", option.key);
            let Some(key) = self.known_key("backup", what, &option) else {
                continue;
            };
            match key {
                "mode" => match self.value(option.value).as_deref() {
                    Some("live") => backup.mode = BackupMode::Live,
                    Some("stopped") => backup.mode = BackupMode::Stopped,
                    other => self.error(
                        Some(option.line),
                        format!("{here} is {}", describe(other, option.value)),
                        "use mode: live (archive while it runs; the default) or mode: stopped",
                    ),
                },
                "paths" => backup.paths = self.string_list(option.value, &here),
                "pre" => backup.hooks = self.hooks(option.value, &here),
                other => unread(other),
            }
        }
        backup
    }

    /// `update: {backup: true}`.
    fn update(&mut self, node: &Node, what: &str) -> Update {
        let mut update = Update::default();
        if !self.options(node, what, "write update: {backup: true}") {
            return update;
        }
        for option in yaml::entries(node) {
            let Some(key) = self.known_key("update", what, &option) else {
                continue;
            };
            match key {
                "backup" => {
                    if let Some(backup) = self.boolean(
                        &option,
                        &format!("{what}.backup"),
                        "backup: true takes a backup of the stack before update applies newer images",
                    ) {
                        update.backup = backup
                    }
                }
                other => unread(other),
            }
        }
        update
    }

    /// An option's value as true or false (interpolated, YAML's spellings); None once reported.
    fn boolean(&mut self, option: &Entry, what: &str, hint: &str) -> Option<bool> {
        let value = self.value(option.value);
        let parsed = value.as_deref().and_then(yaml::parse_bool);
        if parsed.is_none() {
            self.error(
                Some(option.line),
                format!(
                    "{what} is {}, expected true or false",
                    describe(value.as_deref(), option.value)
                ),
                hint,
            );
        }
        parsed
    }

    /// Hooks run in a container of their service, which must be one `compose up` starts.
    pub(super) fn hook_services(&mut self, backup: &Backup, running: &BTreeSet<String>) {
        for hook in &backup.hooks {
            if !running.contains(&hook.service) {
                let services: Vec<&str> = running.iter().map(String::as_str).collect();
                self.error(
                    Some(hook.line),
                    format!(
                        "{META_KEY}.backup.pre: service {:?} does not run in this stack",
                        hook.service
                    ),
                    &format!("name a service compose starts: {}", services.join(", ")),
                );
            }
        }
    }

    fn hooks(&mut self, node: &Node, what: &str) -> Vec<Hook> {
        const HINT: &str = "write pre: [{service: db, run: \"pg_dumpall -U app\", output: db.sql}]";
        let Some(items) = yaml::as_sequence(node) else {
            self.error(
                Some(yaml::line(node)),
                format!("{what} is {}, expected a list", yaml::kind(node)),
                HINT,
            );
            return Vec::new();
        };
        let mut hooks: Vec<Hook> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let here = format!("{what}.{index}");
            if !yaml::is_mapping(item) {
                self.error(
                    Some(yaml::line(item)),
                    format!("{here} is {}, expected a mapping", yaml::kind(item)),
                    HINT,
                );
                continue;
            }
            let (mut service, mut run, mut output) = (None, None, None);
            let mut timeout = HOOK_TIMEOUT;
            let mut known = BTreeSet::new();
            for option in yaml::entries(item) {
                known.insert(option.key.to_string());
                let Some(name) = self.known_key("backup.pre[]", &here, &option) else {
                    continue;
                };
                let key = format!("{here}.{}", option.key);
                match name {
                    "service" => service = self.string(option.value, &key),
                    "run" => run = self.string(option.value, &key),
                    "output" => {
                        output = self.string(option.value, &key).filter(|name| {
                            let ok = is_file_name(name);
                            if !ok {
                                self.error(Some(option.line), format!("{key} {name:?} is not a plain file name"), "name a file such as db.sql: letters, digits, '.', '-' and '_', not starting with '.'");
                            }
                            ok
                        })
                    }
                    "timeout" => {
                        timeout = self.duration(option.value, &key).unwrap_or(HOOK_TIMEOUT)
                    }
                    other => unread(other),
                }
            }
            for required in ["service", "run"] {
                if !known.contains(required) {
                    self.error(
                        Some(yaml::line(item)),
                        format!("{here} has no {required}"),
                        HINT,
                    );
                }
            }
            let (Some(service), Some(run)) = (service, run) else {
                continue;
            };
            let output = output.unwrap_or_else(|| format!("{service}.out"));
            if hooks.iter().any(|h| h.output == output) {
                self.error(
                    Some(yaml::line(item)),
                    format!("{here}: another hook already writes {output}"),
                    "give each hook its own output: file name",
                );
                continue;
            }
            hooks.push(Hook {
                service,
                run,
                output,
                timeout,
                line: yaml::line(item),
            });
        }
        hooks
    }
}

/// A key of the reference table that no arm reads: the test that parses every key's example
/// (`every_documented_key_is_read`) fails first.
fn unread(key: &str) -> ! {
    unreachable!("x-composectl key {key} is in the reference but not read")
}

/// A value for an error message: its text, or what it is when it has none.
fn describe(text: Option<&str>, node: &Node) -> String {
    match text {
        Some(text) => format!("{text:?}"),
        None => yaml::kind(node).to_string(),
    }
}

/// A name for a file inside a backup archive: no directories, nothing hidden.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}
