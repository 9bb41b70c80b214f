//! The one rule for a selection of stacks, which check, render and enable follow alike: the
//! named stacks and what they require or want must be valid, with the shared files; another
//! stack's errors do not stop the command, which says so in one warning.

use indoc::indoc;

use composectl_testkit::harness::Test;

/// A valid root (db, and app requiring db) plus `broken`, whose compose file does not parse.
fn root_with_a_broken_stack() -> Test {
    Test::valid().file("stacks/broken/compose.yaml", "services: [\n")
}

const BROKEN_ELSEWHERE: &str = indoc! {"
    warning: stack broken has errors and is not part of this selection: left as it is
      hint: composectl check broken shows them
"};

#[test]
fn check_render_and_enable_agree_on_a_valid_selection_beside_a_broken_stack() {
    root_with_a_broken_stack()
        .args(["check", "app"])
        .stdout_has("ok (2 stacks: app, db)")
        .stderr(BROKEN_ELSEWHERE)
        .run();
    root_with_a_broken_stack()
        .args(["render", "app"])
        .stdout_has("compose@app.service.d/20-composectl.conf")
        .stderr(BROKEN_ELSEWHERE)
        .run();
    // enable validates, says the same, and only then looks for the manager (none here: exit 1;
    // the end-to-end tests enable for real).
    root_with_a_broken_stack()
        .args(["--user", "enable", "app"])
        .code(1)
        .stderr_has(BROKEN_ELSEWHERE)
        .run();
}

#[test]
fn check_render_and_enable_agree_on_a_selection_whose_requirement_is_broken() {
    let requires_broken = || {
        root_with_a_broken_stack().file(
            "stacks/app/compose.yaml",
            "x-composectl:\n  requires: [db, broken]\nservices:\n  web:\n    image: nginx\n",
        )
    };
    let mut outputs = Vec::new();
    for args in [
        vec!["check", "app"],
        vec!["render", "app"],
        vec!["--user", "enable", "app"],
    ] {
        let output = requires_broken()
            .args(args)
            .code(2)
            .stderr_has("stacks/broken/compose.yaml:2:1: error: YAML syntax error")
            .run();
        outputs.push(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let first = outputs[0]
        .split_once("/root/")
        .map(|(_, rest)| rest.to_string());
    for other in &outputs[1..] {
        assert_eq!(
            other.split_once("/root/").map(|(_, rest)| rest.to_string()),
            first,
            "the three commands report the same problems"
        );
    }
}

#[test]
fn a_stack_that_does_not_exist_is_refused_with_the_closest_name() {
    for command in ["check", "render", "graph", "diff"] {
        Test::valid()
            .args([command, "ap"])
            .code(2)
            .stderr_has("error: no stack named \"ap\" in this root")
            .stderr_has("hint: did you mean app? stacks in this root: app, db")
            .run();
    }
    Test::valid()
        .args(["-o", "json", "check", "nothing-like-it"])
        .code(2)
        .stdout_has("\"exit_code\": 2")
        .stdout_has("no stack named \\\"nothing-like-it\\\"")
        .run();
}

#[test]
fn a_misspelt_requirement_gets_the_closest_stack() {
    Test::valid()
        .file(
            "stacks/app/compose.yaml",
            "x-composectl:\n  requires: [dbb]\nservices:\n  web:\n    image: nginx\n",
        )
        .args(["check"])
        .code(2)
        .stderr_has("stacks/app/compose.yaml:2: error: stack app depends on unknown stack \"dbb\"")
        .stderr_has("hint: did you mean db? stacks in this root: app, db")
        .run();
}

#[test]
fn an_empty_root_is_said_as_such() {
    Test::new()
        .args(["check"])
        .stdout_has("ok, but there are no stacks yet: create stacks/NAME/compose.yaml")
        .run();
}
