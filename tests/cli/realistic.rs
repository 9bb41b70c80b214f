//! Compose files as users bring them (upstream immich, authentik, LibreChat, a media server with
//! GPU deploy blocks, devices, profiles, configs, secrets, anchors and merge keys): check and
//! render accept them and read the parts composectl needs.

use std::path::PathBuf;

use indoc::indoc;

use composectl_testkit::harness::Test;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realistic")
}

#[test]
fn check_accepts_real_world_compose_files() {
    Test::new()
        .at(&root())
        .args(["check"])
        .stdout_has("ok (5 stacks: authentik, immich, librechat, media, observability)")
        // Host paths of this machine, not of the server the files were written for.
        .stderr_has(
            "immich/compose.yaml:27: warning: bind mount source /srv/immich/library does not exist",
        )
        .stderr_has(
            "media/docker-compose.yml:19: warning: bind mount source /srv/media does not exist",
        )
        .run();
}

#[test]
fn render_orders_them_by_their_metadata() {
    let output = Test::new()
        .at(&root())
        .args(["-q", "--system", "render", "immich", "librechat", "media"])
        .run();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Description=authentik SSO: 100%% of logins"),
        "{text}"
    );
    assert!(
        text.contains("X-Composectl-Requires=authentik\nWants=compose@authentik.service compose@observability.service\nAfter=compose@authentik.service compose@observability.service"),
        "{text}"
    );
    assert!(text.contains("TimeoutStartSec=20min"));
    // Bind mounts outside the root; ./postgres is the stack's own directory.
    assert!(
        text.contains("RequiresMountsFor=/etc/localtime /srv/immich/library\n"),
        "{text}"
    );
    assert!(text.contains("RestartSec=30s"));
}

#[test]
fn graph_layers_real_world_stacks() {
    Test::new()
        .at(&root())
        .args(["-q", "graph"])
        .stdout(indoc! {r#"
            layer 0:
              authentik
              observability
            layer 1:
              immich  requires: authentik  wants: observability
              librechat  requires: authentik, observability
              media  requires: authentik
        "#})
        .run();
}
