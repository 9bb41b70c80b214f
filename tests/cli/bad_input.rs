//! Broken roots: each gives exit code 2, one clear message naming the file (and line where the
//! parser knows it), no panic, and writes nothing.

use std::os::unix::fs::symlink;
use std::path::Path;

use indoc::{formatdoc, indoc};

use composectl_testkit::harness::Test;

/// Runs `check` and `render --out` on a broken root: both must refuse with the same message and
/// the render must not create its output directory.
fn refuses(test: Test, file: &str, message: &str) {
    let out = test.dir.path().join("rendered");
    let root = test.root().to_path_buf();
    let rendered = Test::new()
        .at(&root)
        .args(["render", "--out"])
        .args([out.to_str().expect("utf-8 path")])
        .code(2)
        .stderr_has(file)
        .stderr_has(message)
        .run();
    assert!(!out.exists(), "render wrote files for a broken root");
    let checked = test
        .args(["check"])
        .code(2)
        .stderr_has(file)
        .stderr_has(message)
        .run();
    assert_eq!(rendered.stderr, checked.stderr, "check and render disagree");
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(
        stderr.matches(": error: ").count(),
        1,
        "one clear error:\n{stderr}"
    );
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[test]
fn malformed_networks_toml() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {"
                [networks.front
                subnet = 1
            "},
        ),
        "networks.toml:1:",
        "error: unclosed table, expected `]`",
    );
}

#[test]
fn unknown_key_in_networks_toml() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
                [networks.front]
                subnet = "10.0.0.0/24"
                internl = true
            "#},
        ),
        "networks.toml:3:",
        "internl",
    );
}

#[test]
fn malformed_subnet() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
                [networks.front]
                subnet = "10.0.0/33"
            "#},
        ),
        "networks.toml:2:",
        "is not a CIDR block",
    );
}

#[test]
fn overlapping_subnets() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
                [networks.front]
                subnet = "10.0.0.0/16"
                [networks.back]
                subnet = "10.0.3.0/24"
            "#},
        ),
        "networks.toml:4:",
        "overlaps network front",
    );
}

#[test]
fn gateway_outside_subnet() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
                [networks.front]
                subnet = "10.0.0.0/24"
                gateway = "10.9.0.1"
                [networks.back]
                subnet = "10.1.0.0/24"
            "#},
        ),
        "networks.toml:3:",
        "gateway 10.9.0.1 is not a host address of subnet 10.0.0.0/24",
    );
}

#[test]
fn subnet_with_host_bits() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
            [networks.front]
            subnet = "10.0.0.7/24"
            [networks.back]
            subnet = "10.1.0.0/24"
        "#},
        ),
        "networks.toml:2:",
        "did you mean \"10.0.0.0/24\"",
    );
}

#[test]
fn invalid_network_name() {
    refuses(
        Test::valid().file(
            "networks.toml",
            indoc! {r#"
                [networks."front net"]
                subnet = "10.0.0.0/24"
            "#},
        ),
        "networks.toml:1:",
        "invalid network name",
    );
}

#[test]
fn networks_toml_is_a_directory() {
    refuses(
        Test::valid().with(|root| {
            std::fs::remove_file(root.join("networks.toml")).expect("rm");
            std::fs::create_dir(root.join("networks.toml")).expect("mkdir");
        }),
        "networks.toml",
        "is a directory",
    );
}

#[test]
fn malformed_yaml() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: [postgres
            "#},
        ),
        "stacks/db/compose.yaml:",
        "YAML syntax error",
    );
}

#[test]
fn duplicate_yaml_keys() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: a
                  db:
                    image: b
            "#},
        ),
        "stacks/db/compose.yaml:",
        "YAML syntax error",
    );
}

#[test]
fn compose_top_level_is_a_list() {
    refuses(
        Test::valid().file("stacks/db/compose.yaml", "- services\n"),
        "stacks/db/compose.yaml:1:",
        "the top level is a list, not a mapping",
    );
}

#[test]
fn compose_without_services() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
            volumes:
              data:
        "#},
        ),
        "stacks/db/compose.yaml",
        "the stack has no services",
    );
}

#[test]
fn unknown_requires() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires:
                    - db
                    - cache
                services:
                  web:
                    image: nginx
            "#},
        ),
        "stacks/app/compose.yaml:4:",
        "depends on unknown stack \"cache\"",
    );
}

#[test]
fn requires_itself() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires: [app]
                services:
                  web:
                    image: nginx
            "#},
        ),
        "stacks/app/compose.yaml:2:",
        "depends on itself",
    );
}

#[test]
fn two_stack_cycle() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  wants: [app]
                services:
                  db:
                    image: postgres
            "#},
        ),
        "stacks/app/compose.yaml:2:",
        "dependency cycle: app -> db -> app",
    );
}

#[test]
fn three_stack_cycle() {
    refuses(
        Test::valid()
            .file(
                "stacks/db/compose.yaml",
                indoc! {r#"
                    x-composectl:
                      requires: [cache]
                    services:
                      db:
                        image: postgres
                "#},
            )
            .file(
                "stacks/cache/compose.yaml",
                indoc! {r#"
                    x-composectl:
                      requires: [app]
                    services:
                      redis:
                        image: redis
                "#},
            ),
        "stacks/app/compose.yaml",
        "dependency cycle: app -> db -> cache -> app",
    );
}

#[test]
fn external_network_not_in_networks_toml() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: postgres
                    networks: [storage]
                networks:
                  storage:
                    external: true
            "#},
        ),
        "stacks/db/compose.yaml:6:",
        "network \"storage\" is external but not defined in networks.toml",
    );
}

#[test]
fn shared_network_not_declared_external() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: postgres
                    networks: [back]
                networks:
                  back:
                    driver: bridge
            "#},
        ),
        "stacks/db/compose.yaml:6:",
        "not declared external",
    );
}

#[test]
fn service_uses_undeclared_network() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: postgres
                    networks:
                      - back
            "#},
        ),
        "stacks/db/compose.yaml:5:",
        "uses network \"back\", which the file does not declare",
    );
}

#[test]
fn stack_name_with_space() {
    refuses(
        Test::valid().file("stacks/my app/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/my app",
        "invalid stack name",
    );
}

#[test]
fn stack_name_with_at_sign() {
    refuses(
        Test::valid().file("stacks/a@b/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/a@b",
        "'@' is not allowed",
    );
}

#[test]
fn stack_name_with_newline() {
    refuses(
        Test::valid().file("stacks/a\nb/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/a",
        "'\\n' is not allowed",
    );
}

#[test]
fn stack_name_with_leading_dash() {
    refuses(
        Test::valid().file("stacks/-rf/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/-rf",
        "must start with a letter or digit",
    );
}

#[test]
fn stack_name_with_dots() {
    refuses(
        Test::valid().file("stacks/my.app/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/my.app",
        "'.' is not allowed",
    );
}

#[test]
fn stack_name_in_capitals() {
    refuses(
        Test::valid().file("stacks/GenAI/compose.yaml", "services: {a: {image: x}}\n"),
        "stacks/GenAI",
        "'G' is not allowed",
    );
}

#[test]
fn hostile_names_on_the_command_line() {
    for name in ["../etc", "a/b", "..", "x@y", "a b", "-v2", "a\nb"] {
        Test::valid()
            .args(["render", "--", name])
            .code(2)
            .stderr_has("invalid stack name")
            .run();
    }
    Test::valid()
        .args(["render", "nosuch"])
        .code(2)
        .stderr_has("no stack named \"nosuch\"")
        .stderr_has("stacks in this root: app, db")
        .run();
}

#[test]
fn missing_compose_file() {
    refuses(
        Test::valid().file("stacks/empty/README", "nothing here\n"),
        "stacks/empty",
        "stack empty has no compose file",
    );
}

#[test]
fn two_compose_files() {
    refuses(
        Test::valid().file(
            "stacks/db/docker-compose.yml",
            "services: {a: {image: x}}\n",
        ),
        "stacks/db/compose.yaml",
        "more than one compose file (also ",
    );
}

#[test]
fn compose_file_is_a_directory() {
    refuses(
        Test::valid().with(|root| {
            std::fs::remove_file(root.join("stacks/db/compose.yaml")).expect("rm");
            std::fs::create_dir(root.join("stacks/db/compose.yaml")).expect("mkdir");
        }),
        "stacks/db/compose.yaml",
        "is a directory",
    );
}

#[test]
fn compose_file_is_a_dangling_link() {
    refuses(
        Test::valid().with(|root| {
            std::fs::remove_file(root.join("stacks/db/compose.yaml")).expect("rm");
            symlink(
                "/nonexistent/compose.yaml",
                root.join("stacks/db/compose.yaml"),
            )
            .expect("ln");
        }),
        "stacks/db/compose.yaml",
        "symbolic link to a file that does not exist",
    );
}

#[test]
fn compose_file_is_a_fifo() {
    refuses(
        Test::valid().with(|root| {
            std::fs::remove_file(root.join("stacks/db/compose.yaml")).expect("rm");
            mkfifo(&root.join("stacks/db/compose.yaml"));
        }),
        "stacks/db/compose.yaml",
        "is not a regular file",
    );
}

#[test]
fn compose_file_is_not_utf8() {
    refuses(
        Test::valid().with(|root| {
            std::fs::write(
                root.join("stacks/db/compose.yaml"),
                b"services:\n  db:\n    image: \xff\xfe\n",
            )
            .expect("write");
        }),
        "stacks/db/compose.yaml:3:",
        "is not valid UTF-8",
    );
}

#[test]
fn compose_file_unreadable() {
    // root reads anything, so make the file unreadable to the test's own user only when not root.
    let test = Test::valid().with(|root| {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join("stacks/db/compose.yaml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    });
    if nix::unistd::geteuid().is_root() {
        // Simulate the same failure for root through a path below a regular file.
        let test = test.with(|root| {
            std::fs::remove_file(root.join("stacks/db/compose.yaml")).expect("rm");
            symlink("../app/compose.yaml/x", root.join("stacks/db/compose.yaml")).expect("ln");
        });
        refuses(test, "stacks/db/compose.yaml", "cannot be read");
    } else {
        refuses(test, "stacks/db/compose.yaml", "Permission denied");
    }
}

#[test]
fn unknown_key_in_x_composectl() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  require: [app]
                services:
                  db:
                    image: x
            "#},
        ),
        "stacks/db/compose.yaml:2:",
        "unknown key \"require\" in x-composectl",
    );
}

#[test]
fn bad_duration() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  start_timeout: 5 parsecs
                services:
                  db:
                    image: x
            "#},
        ),
        "stacks/db/compose.yaml:2:",
        "unknown time unit",
    );
}

#[test]
fn bad_ready_value() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                x-composectl:
                  ready: eventually
                services:
                  db:
                    image: x
            "#},
        ),
        "stacks/db/compose.yaml:2:",
        "x-composectl.ready is \"eventually\"",
    );
}

#[test]
fn requires_is_not_a_list() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires: db
                services:
                  web:
                    image: x
            "#},
        ),
        "stacks/app/compose.yaml:2:",
        "expected a list",
    );
}

#[test]
fn requires_options_are_not_a_mapping() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires:
                    db: true
                services:
                  web:
                    image: x
            "#},
        ),
        "stacks/app/compose.yaml:3:",
        "x-composectl.requires.db is a boolean, expected a mapping",
    );
}

#[test]
fn requires_restart_is_not_a_boolean() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires:
                    db: {restart: sometimes}
                services:
                  web:
                    image: x
            "#},
        ),
        "stacks/app/compose.yaml:3:",
        "x-composectl.requires.db.restart is a string, expected true or false",
    );
}

#[test]
fn duplicate_dependency() {
    refuses(
        Test::valid().file(
            "stacks/app/compose.yaml",
            indoc! {r#"
                x-composectl:
                  requires: [db]
                  wants: [db]
                services:
                  web:
                    image: x
            "#},
        ),
        "stacks/app/compose.yaml:3:",
        "db is listed more than once",
    );
}

#[test]
fn malformed_env_file() {
    refuses(
        Test::valid().file(
            "stacks/db/.env",
            indoc! {r#"
            A=1
            this is not a variable
        "#},
        ),
        "stacks/db/.env:2:",
        "not a KEY=VALUE line",
    );
}

#[test]
fn required_variable_missing() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            indoc! {r#"
                services:
                  db:
                    image: x
                    container_name: ${DB_NAME:?set DB_NAME}
            "#},
        ),
        "stacks/db/compose.yaml:4:",
        "variable DB_NAME is not set: set DB_NAME",
    );
}

#[test]
fn duplicate_container_name() {
    refuses(
        Test::valid()
            .file(
                "stacks/db/compose.yaml",
                indoc! {r#"
                    services:
                      db:
                        image: x
                        container_name: shared
                "#},
            )
            .file(
                "stacks/cache/compose.yaml",
                indoc! {r#"
                    services:
                      redis:
                        image: x
                        container_name: shared
                "#},
            ),
        "stacks/db/compose.yaml:4:",
        "container_name \"shared\" of service db is also used by service redis of stack cache",
    );
}

#[test]
fn unknown_setting_in_composectl_toml() {
    refuses(
        Test::valid().file(
            "composectl.toml",
            indoc! {r#"
            [defaults]
            start_timout = "5min"
        "#},
        ),
        "composectl.toml:2:",
        "start_timout",
    );
}

#[test]
fn root_does_not_exist() {
    let test = Test::valid();
    let missing = test.dir.path().join("nowhere");
    Test::new()
        .at(&missing)
        .args(["check"])
        .code(2)
        .stderr_has("nowhere")
        .stderr_has("does not exist")
        .run();
}

#[test]
fn root_without_stacks_dir() {
    let test = Test::valid().with(|root| std::fs::remove_dir_all(root.join("stacks")).expect("rm"));
    refuses(test, "root", "not a composectl root: stacks/ is missing");
}

#[test]
fn every_problem_is_reported_at_once() {
    let test = Test::valid()
        .file(
            "networks.toml",
            indoc! {r#"
            [networks.front]
            subnet = "10.0.0.0/16"
            [networks.back]
            subnet = "10.0.1.0/24"
        "#},
        )
        .file(
            "stacks/db/compose.yaml",
            indoc! {r#"
            x-composectl:
              requires: [nosuch]
            services:
              db:
                image: x
        "#},
        )
        .file(
            "stacks/bad name/compose.yaml",
            "services: {a: {image: x}}\n",
        );
    let root = test.root().display().to_string();
    test.args(["check"])
        .code(2)
        .stderr(&formatdoc! {r#"
            {root}/networks.toml:4:10: error: network back: subnet 10.0.1.0/24 overlaps network front (10.0.0.0/16)
             4 | subnet = "10.0.1.0/24"
               |          ^
              hint: give every network its own, non-overlapping subnet
            {root}/stacks/bad name: error: invalid stack name "bad name": ' ' is not allowed; use lowercase letters, digits, '-' and '_'
              hint: rename the directory; stack names become systemd unit names (compose@NAME.service)
            {root}/stacks/db/compose.yaml:2: error: stack db depends on unknown stack "nosuch"
              hint: stacks in this root: app, db
        "#})
        .run();
}

/// The valid root with the db stack's compose file replaced: `services:` and `db:` come first,
/// so the lines of `body` start at 3.
fn db_service(body: &str) -> Test {
    Test::valid().file(
        "stacks/db/compose.yaml",
        &format!("services:\n  db:\n{body}"),
    )
}

#[test]
fn env_file_missing() {
    refuses(
        db_service("    image: postgres\n    env_file:\n      - db.env\n"),
        "stacks/db/compose.yaml:5:",
        "env_file \"db.env\" does not exist",
    );
}

#[test]
fn env_file_missing_long_syntax_required() {
    refuses(
        db_service(
            "    image: postgres\n    env_file:\n      - path: db.env\n        required: true\n",
        ),
        "stacks/db/compose.yaml:5:",
        "env_file \"db.env\" does not exist",
    );
}

#[test]
fn env_file_not_required_may_be_missing() {
    db_service(
        "    image: postgres\n    env_file:\n      - path: db.env\n        required: false\n",
    )
    .args(["check"])
    .stdout_has("ok (2 stacks: app, db)")
    .run();
}

#[test]
fn label_file_missing() {
    refuses(
        db_service("    image: postgres\n    label_file: labels\n"),
        "stacks/db/compose.yaml:4:",
        "label_file \"labels\" does not exist",
    );
}

#[test]
fn undeclared_named_volume() {
    refuses(
        db_service("    image: postgres\n    volumes:\n      - pgdata:/var/lib/postgresql/data\n"),
        "stacks/db/compose.yaml:5:",
        "uses volume \"pgdata\", which the file does not declare",
    );
}

#[test]
fn undeclared_secret() {
    refuses(
        db_service("    image: postgres\n    secrets: [db_password]\n"),
        "stacks/db/compose.yaml:4:",
        "uses secret \"db_password\", which the file does not declare",
    );
}

#[test]
fn undeclared_config() {
    refuses(
        db_service(
            "    image: postgres\n    configs:\n      - source: pg_conf\n        target: /etc/pg.conf\n",
        ),
        "stacks/db/compose.yaml:5:",
        "uses config \"pg_conf\", which the file does not declare",
    );
}

#[test]
fn volume_with_empty_source() {
    refuses(
        db_service("    image: postgres\n    volumes:\n      - :/home/app:z\n"),
        "stacks/db/compose.yaml:5:",
        "invalid spec: :/home/app:z: empty section between colons",
    );
}

#[test]
fn volume_source_from_unset_variable() {
    refuses(
        db_service("    image: postgres\n    volumes:\n      - ${DATA_DIR}:/data\n"),
        "stacks/db/compose.yaml:5:",
        "empty section between colons",
    );
}

#[test]
fn malformed_port() {
    refuses(
        db_service("    image: postgres\n    ports:\n      - \"5432:5432/tpc\"\n"),
        "stacks/db/compose.yaml:5:",
        "invalid proto: tpc",
    );
}

#[test]
fn port_from_unset_variable() {
    refuses(
        db_service("    image: postgres\n    ports:\n      - ${PG_PORT}\n"),
        "stacks/db/compose.yaml:5:",
        "no port specified",
    );
}

#[test]
fn required_variable_missing_in_a_field_composectl_does_not_read() {
    refuses(
        db_service(
            "    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${PG_PASSWORD:?put PG_PASSWORD in .env.local}\n",
        ),
        "stacks/db/compose.yaml:5:",
        "services.db.environment.POSTGRES_PASSWORD: variable PG_PASSWORD is not set: put PG_PASSWORD in .env.local",
    );
}

#[test]
fn required_variable_set_in_an_env_layer() {
    db_service(
        "    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${PG_PASSWORD:?set it}\n",
    )
    .file("stacks/db/.env.local", "PG_PASSWORD=secret\n")
    .with(|root| {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join("stacks/db/.env.local");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    })
    .args(["check"])
    .stdout_has("ok (2 stacks: app, db)")
    .run();
}

#[test]
fn malformed_interpolation() {
    refuses(
        db_service("    image: postgres\n    command: postgres -c ${A!}\n"),
        "stacks/db/compose.yaml:4:",
        "invalid interpolation syntax",
    );
}

#[test]
fn typed_field_not_a_number_after_interpolation() {
    refuses(
        db_service(
            "    image: postgres\n    healthcheck:\n      test: [CMD, pg_isready]\n      retries: ${RETRIES}\n",
        ),
        "stacks/db/compose.yaml:6:",
        "services.db.healthcheck.retries: \"\" is not an integer",
    );
}

#[test]
fn extends_file_missing() {
    refuses(
        db_service("    extends:\n      file: base.yaml\n      service: postgres\n"),
        "stacks/db/compose.yaml:4:",
        "extends file \"base.yaml\" does not exist",
    );
}

#[test]
fn extends_service_missing() {
    refuses(
        db_service("    extends: postgres\n"),
        "stacks/db/compose.yaml:3:",
        "extends service \"postgres\", which the file does not define",
    );
}

#[test]
fn include_missing() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "include:\n  - extra.yaml\nservices:\n  db:\n    image: postgres\n",
        ),
        "stacks/db/compose.yaml:2:",
        "include \"extra.yaml\" does not exist",
    );
}

#[test]
fn depends_on_undefined_service() {
    refuses(
        db_service("    image: postgres\n    depends_on:\n      - cache\n"),
        "stacks/db/compose.yaml:5:",
        "depends on service \"cache\", which the file does not define",
    );
}

#[test]
fn depends_on_service_behind_a_profile() {
    refuses(
        db_service(
            "    image: postgres\n    depends_on: [backup]\n  backup:\n    image: restic\n    profiles: [tools]\n",
        ),
        "stacks/db/compose.yaml:4:",
        "its profiles are not in COMPOSE_PROFILES",
    );
}

#[test]
fn network_mode_of_undefined_service() {
    refuses(
        db_service("    image: postgres\n    network_mode: service:vpn\n"),
        "stacks/db/compose.yaml:4:",
        "network_mode names service \"vpn\"",
    );
}

#[test]
fn service_without_image_or_build() {
    refuses(
        db_service("    restart: always\n"),
        "stacks/db/compose.yaml:2:",
        "service db has neither an image nor a build context",
    );
}

#[test]
fn misspelt_service_key() {
    refuses(
        db_service("    image: postgres\n    enviroment:\n      A: b\n"),
        "stacks/db/compose.yaml:4:",
        "did you mean environment?",
    );
}

#[test]
fn unknown_top_level_key() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "services:\n  db:\n    image: postgres\nvolume:\n  data:\n",
        ),
        "stacks/db/compose.yaml:4:",
        "unknown top-level key \"volume\"",
    );
}

#[test]
fn number_in_a_list_of_strings() {
    refuses(
        db_service("    image: redis\n    command: [redis-server, --port, 6380]\n"),
        "stacks/db/compose.yaml:4:",
        "command item 3 is a number, expected a string",
    );
}

#[test]
fn number_as_a_key() {
    refuses(
        db_service("    image: postgres\n    environment:\n      1: one\n"),
        "stacks/db/compose.yaml:5:",
        "is a number; compose needs string keys",
    );
}

#[test]
fn yaml_unknown_anchor() {
    refuses(
        db_service("    image: postgres\n    environment: *pg_env\n"),
        "stacks/db/compose.yaml:4:",
        "unknown anchor: *pg_env",
    );
}

#[test]
fn yaml_alias_inside_its_own_anchor() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "x-a: &a\n  b: *a\nservices:\n  db:\n    image: postgres\n",
        ),
        "stacks/db/compose.yaml:2:",
        "alias *a is used inside the node it names",
    );
}

#[test]
fn yaml_merge_key_on_a_list() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "x-a: &a [1]\nservices:\n  db:\n    <<: *a\n    image: postgres\n",
        ),
        "stacks/db/compose.yaml:4:",
        "a merge key (<<) takes a mapping or a list of mappings",
    );
}

#[test]
fn yaml_tab_indentation() {
    refuses(
        Test::valid().file("stacks/db/compose.yaml", "services:\n\tdb:\n\t\timage: x\n"),
        "stacks/db/compose.yaml:2:",
        "YAML syntax error",
    );
}

#[test]
fn yaml_control_character() {
    refuses(
        db_service("    image: post\u{1}gres\n"),
        "stacks/db/compose.yaml:3:",
        "control characters are not allowed",
    );
}

#[test]
fn yaml_1_2_directive() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "%YAML 1.2\n---\nservices:\n  db:\n    image: postgres\n",
        ),
        "stacks/db/compose.yaml:1:",
        "compose reads YAML 1.1 documents only",
    );
}

#[test]
fn yaml_nested_too_deep() {
    let deep = format!(
        "    image: postgres\n    x-deep: {}{}\n",
        "[".repeat(1001),
        "]".repeat(1001)
    );
    refuses(
        db_service(&deep),
        "stacks/db/compose.yaml:4:",
        "nested deeper than 1000 levels",
    );
}

#[test]
fn yaml_more_than_one_document() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "services:\n  db:\n    image: postgres\n---\nservices:\n  extra:\n    image: x\n",
        ),
        "stacks/db/compose.yaml:4:",
        "more than one YAML document",
    );
}

#[test]
fn container_name_twice_in_one_stack() {
    refuses(
        db_service(
            "    image: postgres\n    container_name: pg\n  replica:\n    image: postgres\n    container_name: pg\n",
        ),
        "stacks/db/compose.yaml:7:",
        "container_name \"pg\" of service replica is also used by service db",
    );
}

#[test]
fn host_port_published_by_two_stacks() {
    refuses(
        Test::valid()
            .file(
                "stacks/db/compose.yaml",
                "services:\n  db:\n    image: postgres\n    ports: [\"5432:5432\"]\n",
            )
            .file(
                "stacks/cache/compose.yaml",
                "services:\n  pgbouncer:\n    image: pgbouncer\n    ports:\n      - 127.0.0.1:5432:6432\n",
            ),
        "stacks/db/compose.yaml:4:",
        "host port 5432/tcp of service db is also published by service pgbouncer of stack cache",
    );
}

#[test]
fn services_behind_different_profiles_share_names_and_ports() {
    db_service(
        "    image: ollama/ollama\n    container_name: ollama\n    profiles: [cpu]\n    ports: [\"11434:11434\"]\n  db-gpu:\n    image: ollama/ollama\n    container_name: ollama\n    profiles: [gpu]\n    ports: [\"11434:11434\"]\n",
    )
    .args(["check"])
    .stdout_has("ok (2 stacks: app, db)")
    .run();
}

#[test]
fn profiles_turned_on_by_compose_profiles_collide() {
    refuses(
        db_service(
            "    image: ollama/ollama\n    container_name: ollama\n    profiles: [cpu]\n  db-gpu:\n    image: ollama/ollama\n    container_name: ollama\n    profiles: [gpu]\n",
        )
        .file("stacks/db/.env", "COMPOSE_PROFILES=cpu,gpu\n"),
        "stacks/db/compose.yaml:8:",
        "container_name \"ollama\" of service db-gpu is also used by service db",
    );
}

#[test]
fn extends_service_missing_from_its_file() {
    refuses(
        db_service("    extends:\n      file: base.yaml\n      service: postgres\n").file(
            "stacks/db/base.yaml",
            "services:\n  pg:\n    image: postgres\n",
        ),
        "stacks/db/compose.yaml:3:",
        "extends service \"postgres\", which that file does not define",
    );
}

/// Each new `x-composectl` key (secrets, log_rate_limit, backup, update) refuses what it cannot use,
/// at its line, with nothing written.
#[test]
fn day2_keys_of_x_composectl() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "  secrets: 5\n",
            2,
            "x-composectl.secrets is a number, expected a list",
        ),
        (
            "  secrets: [1PASSWORD]\n",
            2,
            "\"1PASSWORD\" is not a variable name",
        ),
        (
            "  secrets: [A, A]\n",
            2,
            "x-composectl.secrets.A is declared twice",
        ),
        (
            "  secrets:\n    A: 5\n",
            3,
            "x-composectl.secrets.A is a number, expected a mapping",
        ),
        (
            "  secrets:\n    A: {length: 4}\n",
            3,
            "x-composectl.secrets.A.length is \"4\", expected a number from 16 to 256",
        ),
        (
            "  secrets:\n    A: {length: lots}\n",
            3,
            "x-composectl.secrets.A.length is \"lots\"",
        ),
        (
            "  secrets:\n    A: {charset: emoji}\n",
            3,
            "x-composectl.secrets.A.charset is \"emoji\"",
        ),
        (
            "  secrets:\n    A: {shared: maybe}\n",
            3,
            "x-composectl.secrets.A.shared is \"maybe\", expected true or false",
        ),
        (
            "  secrets:\n    A: {colour: red}\n",
            3,
            "unknown key \"colour\" in x-composectl.secrets.A",
        ),
        (
            "  log_rate_limit: 100\n",
            2,
            "x-composectl.log_rate_limit is a number, expected a mapping",
        ),
        (
            "  log_rate_limit: {burst: 0}\n",
            2,
            "x-composectl.log_rate_limit.burst is \"0\", expected a positive number of lines",
        ),
        (
            "  log_rate_limit: {interval: soon}\n",
            2,
            "x-composectl.log_rate_limit.interval",
        ),
        (
            "  log_rate_limit: {rate: 5}\n",
            2,
            "unknown key \"rate\" in x-composectl.log_rate_limit",
        ),
        (
            "  backup: [db]\n",
            2,
            "x-composectl.backup is a list, expected a mapping",
        ),
        (
            "  backup: {mode: hot}\n",
            2,
            "x-composectl.backup.mode is \"hot\"",
        ),
        (
            "  backup: {paths: ./data}\n",
            2,
            "x-composectl.backup.paths is a string, expected a list",
        ),
        (
            "  backup: {pre: pg_dumpall}\n",
            2,
            "x-composectl.backup.pre is a string, expected a list",
        ),
        (
            "  backup:\n    pre: [pg_dumpall]\n",
            3,
            "x-composectl.backup.pre.0 is a string, expected a mapping",
        ),
        (
            "  backup:\n    pre:\n      - {service: db}\n",
            4,
            "x-composectl.backup.pre.0 has no run",
        ),
        (
            "  backup:\n    pre:\n      - {service: db, run: x, output: ../x.sql}\n",
            4,
            "x-composectl.backup.pre.0.output \"../x.sql\" is not a plain file name",
        ),
        (
            "  backup:\n    pre:\n      - {service: db, run: x, timeout: never}\n",
            4,
            "x-composectl.backup.pre.0.timeout",
        ),
        (
            "  backup:\n    pre:\n      - {service: db, run: x, user: root}\n",
            4,
            "unknown key \"user\" in x-composectl.backup.pre.0",
        ),
        (
            "  backup:\n    pre:\n      - {service: db, run: x}\n      - {service: db, run: y}\n",
            5,
            "another hook already writes db.out",
        ),
        (
            "  backup:\n    pre:\n      - {service: web, run: x}\n",
            4,
            "x-composectl.backup.pre: service \"web\" does not run in this stack",
        ),
        (
            "  backup: {keep: 3}\n",
            2,
            "unknown key \"keep\" in x-composectl.backup",
        ),
        (
            "  update: {backup: sometimes}\n",
            2,
            "x-composectl.update.backup is \"sometimes\", expected true or false",
        ),
        (
            "  update: {pre: true}\n",
            2,
            "unknown key \"pre\" in x-composectl.update",
        ),
    ];
    for (meta, line, message) in cases {
        refuses(
            Test::valid().file(
                "stacks/db/compose.yaml",
                &format!("x-composectl:\n{meta}services:\n  db:\n    image: x\n"),
            ),
            &format!("stacks/db/compose.yaml:{line}:"),
            message,
        );
    }
}

#[test]
fn log_rate_limit_defaults_in_composectl_toml() {
    refuses(
        Test::valid().file("composectl.toml", "[defaults]\nlog_rate_limit_burst = 0\n"),
        "composectl.toml:2:",
        "defaults.log_rate_limit_burst is 0",
    );
    refuses(
        Test::valid().file(
            "composectl.toml",
            "[defaults]\nlog_rate_limit_interval = \"a while\"\n",
        ),
        "composectl.toml",
        "defaults.log_rate_limit_interval",
    );
}

#[test]
fn backup_and_update_settings_in_composectl_toml() {
    refuses(
        Test::valid().file("composectl.toml", "[backup]\ndir = \"backups\"\n"),
        "composectl.toml:2:",
        "backup.dir backups is not an absolute path",
    );
    refuses(
        Test::valid().file("composectl.toml", "[backup]\nkeep = 0\n"),
        "composectl.toml:2:",
        "backup.keep is 0",
    );
    refuses(
        Test::valid().file("composectl.toml", "[update]\ntimer = \"weekly\"\n"),
        "composectl.toml:2:",
        "unknown variant `weekly`, expected `update` or `check`",
    );
}

/// restore refuses what is not a backup of the stack before it touches anything.
#[test]
fn restore_refuses_what_is_not_a_backup_of_the_stack() {
    let test = Test::valid().file("notes.tar", "not a tar archive at all");
    let notes = test.root().join("notes.tar");
    test.args(["--user", "restore", "db"])
        .args([notes.to_str().expect("utf-8")])
        .code(2)
        .stderr_has("is not a composectl backup")
        .run();
    Test::valid()
        .args(["--user", "restore", "db", "/nonexistent/db.tar"])
        .code(2)
        .stderr_has("cannot read /nonexistent/db.tar")
        .run();
}

/// `composectl-supervisor`, which units run, reads its command line without clap: anything but
/// the unit's own `run STACK` is one usage error, exit code 2, as `composectl` gives.
#[test]
fn the_supervisor_binary_refuses_a_bad_command_line_or_root() {
    let supervisor = composectl_testkit::supervisor_bin();
    let missing = Test::new().dir.path().join("no root");
    for (args, message) in [
        (vec!["run"], "expected run STACK"),
        (vec!["--user", "run", "Bad"], "invalid stack name \"Bad\""),
        (
            vec!["--output", "json", "run", "web"],
            "unknown option --output",
        ),
        (
            vec![
                "--user",
                "--root",
                missing.to_str().expect("utf-8"),
                "run",
                "web",
            ],
            "no root",
        ),
    ] {
        let out = std::process::Command::new(supervisor)
            .args(&args)
            .env_remove("COMPOSECTL_ROOT")
            .env("NO_COLOR", "1")
            .output()
            .expect("run composectl-supervisor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.matches("error").count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_tab_is_named_and_pointed_at() {
    let test = Test::valid().file(
        "stacks/db/compose.yaml",
        "services:\n  db:\n\timage: postgres\n",
    );
    let root = test.root().display().to_string();
    test.args(["check"])
        .code(2)
        .stderr(&formatdoc! {"
            {root}/stacks/db/compose.yaml:3:1: error: YAML syntax error: a tab character (while scanning for the next token, found character that cannot start any token)
             3 | →image: postgres
               | ^
              hint: YAML indents with spaces only: replace the tabs on this line with spaces
        "})
        .run();
}

#[test]
fn a_yaml_error_shows_its_line_and_column() {
    refuses(
        db_service("    image: postgres\n    ports: [\"80:80\"\n"),
        "stacks/db/compose.yaml:5:1:",
        "did not find expected ',' or ']'",
    );
    Test::valid()
        .file(
            "stacks/db/compose.yaml",
            "services:\n  db:\n    image: 'postgres\n",
        )
        .args(["check"])
        .code(2)
        .stderr_has(" 4 | \n")
        .stderr_has("found unexpected end of stream")
        .run();
}

#[test]
fn a_missing_networks_toml_is_said_once() {
    let test = Test::valid();
    let root = test.root().display().to_string();
    test.with(|root| std::fs::remove_file(root.join("networks.toml")).expect("rm"))
        .args(["check"])
        .code(2)
        .stderr(&formatdoc! {"
            {root}/networks.toml: error: is missing, and stacks join external networks it must define: back (app, db), front (app)
              hint: create {root}/networks.toml with a [networks.NAME] table and its subnet for each (man 5 networks.toml)
        "})
        .run();
}

#[test]
fn an_unknown_key_gets_the_closest_known_one() {
    refuses(
        Test::valid().file(
            "stacks/db/compose.yaml",
            "x-composectl:\n  requirs: [app]\nservices:\n  db:\n    image: x\n",
        ),
        "stacks/db/compose.yaml:2:",
        "unknown key \"requirs\" in x-composectl\n  hint: did you mean requires? x-composectl takes description, requires, wants",
    );
    refuses(
        Test::valid().file("composectl.toml", "[defaults]\nstart_timout = \"1min\"\n"),
        "composectl.toml:2:1:",
        "unknown key \"start_timout\" in [defaults]\n 2 | start_timout = \"1min\"\n   | ^\n  hint: did you mean start_timeout?",
    );
}

#[test]
fn resources_that_are_not_sizes_or_weights() {
    for (block, line, message) in [
        (
            "resources:\n    memory_max: lots",
            3,
            "x-composectl.resources.memory_max is \"lots\", expected a size such as 512M, 8G",
        ),
        (
            "resources: {cpu_weight: -5}",
            2,
            "x-composectl.resources.cpu_weight is \"-5\", expected a weight from 1 to 10000",
        ),
        (
            "resources:\n    io_weight: 0",
            3,
            "x-composectl.resources.io_weight is \"0\", expected a weight from 1 to 10000",
        ),
        (
            "resources:\n    memory_max: 1G\n    memory_high: 2G",
            4,
            "memory_high 2G is above memory_max 1G",
        ),
        (
            "resources: {memroy_max: 1G}",
            2,
            "unknown key \"memroy_max\" in x-composectl.resources",
        ),
    ] {
        refuses(
            Test::valid().file(
                "stacks/app/compose.yaml",
                &format!("x-composectl:\n  {block}\nservices:\n  web:\n    image: nginx\n"),
            ),
            &format!("stacks/app/compose.yaml:{line}:"),
            message,
        );
    }
}

#[test]
fn resources_in_composectl_toml_are_checked_like_a_stacks() {
    refuses(
        Test::valid().file(
            "composectl.toml",
            indoc! {r#"
                [resources]
                cpu_weight = 100
                tasks_max = "many"
            "#},
        ),
        "composectl.toml:3:",
        "resources.tasks_max is \"many\", expected a positive number of processes",
    );
}

#[test]
fn notify_without_a_command() {
    refuses(
        Test::valid().file(
            "composectl.toml",
            indoc! {r#"
                [notify]
                restarts = true
            "#},
        ),
        "composectl.toml:1:",
        "[notify] has no command",
    );
}
