//! The compatibility corpus (tests/corpus): real-world compose files and generated constructs,
//! each checked alone the way `check` checks a stack, against the verdict `docker compose config`
//! gave (recorded in expected.tsv by tests/corpus/verdicts.sh, so this test needs no docker).
//! Every case must get composectl's expected verdict without panicking, and composectl may differ
//! from compose only where the difference is deliberate (README: deliberate differences).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

struct Row {
    case: String,
    compose: String,
    composectl: String,
    note: String,
}

fn expected() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus().join("expected.tsv")).expect("expected.tsv");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_string);
            let mut next = || fields.next().unwrap_or_default();
            Row {
                case: next(),
                compose: next(),
                composectl: next(),
                note: next(),
            }
        })
        .collect()
}

#[test]
fn composectl_agrees_with_compose_on_the_corpus() {
    let rows = expected();
    let cases: BTreeSet<String> = std::fs::read_dir(corpus().join("cases"))
        .expect("cases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|r| r.case.clone()).collect();
    assert_eq!(
        cases, listed,
        "every case directory has one row in expected.tsv"
    );

    let mut wrong = Vec::new();
    for row in &rows {
        assert!(
            row.compose == row.composectl || row.note.starts_with("deliberate:"),
            "{}: differs from compose without a deliberate: note",
            row.case
        );
        let diags = composectl::model::check_stack_dir(&corpus().join("cases").join(&row.case));
        let verdict = if diags.has_errors() {
            "refuse"
        } else {
            "accept"
        };
        if verdict != row.composectl {
            wrong.push(format!(
                "{}: composectl {verdict}s, expected {} (compose {}s)\n{diags}",
                row.case, row.composectl, row.compose
            ));
        }
    }
    let deliberate = rows.iter().filter(|r| r.compose != r.composectl).count();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    eprintln!(
        "corpus: {} cases, as compose on all but {deliberate} deliberate differences",
        rows.len()
    );
}
