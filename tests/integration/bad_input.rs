//! Broken roots: each gives exit code 2, one clear message naming the file (and line where the
//! parser knows it), no panic, and writes nothing.

use std::os::unix::fs::symlink;
use std::path::Path;

use indoc::{formatdoc, indoc};

use crate::harness::Test;

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
        "no services:",
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
            {root}/networks.toml:4: error: network back: subnet 10.0.1.0/24 overlaps network front (10.0.0.0/16)
              hint: give every network its own, non-overlapping subnet
            {root}/stacks/bad name: error: invalid stack name "bad name": ' ' is not allowed; use lowercase letters, digits, '-' and '_'
              hint: rename the directory; stack names become systemd unit names (compose@NAME.service)
            {root}/stacks/db/compose.yaml:2: error: stack db depends on unknown stack "nosuch"
              hint: stacks in this root: app, db
        "#})
        .run();
}
