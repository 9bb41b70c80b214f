//! `composectl swarm render`: the translation of compose files for `docker stack deploy`, and the
//! refusals that stop `swarm deploy` before it reaches an engine. No engine is needed here.

use indoc::{formatdoc, indoc};

use composectl_testkit::harness::{Test, example_root};

/// A root with one stack `app` whose single service `web` has `settings` (indented four
/// spaces), on the shared network `back`.
fn stack_with(settings: &str) -> Test {
    // Compose refuses network_mode beside networks, so a service with one joins none.
    let networks = if settings.contains("network_mode") {
        ""
    } else {
        "    networks: [back]\n"
    };
    Test::new()
        .file(
            "networks.toml",
            "[networks.back]\nsubnet = \"10.20.0.0/24\"\ninternal = true\n",
        )
        .file(
            "stacks/app/compose.yaml",
            &formatdoc! {"
                services:
                  web:
                    image: nginx
                {settings}{networks}networks:
                  back:
                    external: true
            "},
        )
}

/// The example root's panel, database and auth stacks as `docker stack deploy` gets them.
#[test]
fn the_example_root_renders_as_golden_file() {
    let output = Test::new()
        .at(&example_root())
        .args(["swarm", "render", "panel", "database", "auth"])
        .env("HOME", "/home/alice")
        .run();
    let text = String::from_utf8(output.stdout)
        .expect("utf-8")
        .replace(example_root().to_str().expect("utf-8"), "/etc/composectl");
    insta::assert_snapshot!("swarm_render", text);
}

/// A GPU reservation and a secret whose file is missing make the rest of the example root
/// undeployable; both are reported, with their lines, and nothing else.
#[test]
fn the_example_roots_gpu_and_missing_secret_are_refused() {
    let output = Test::new()
        .at(&example_root())
        .args(["swarm", "render"])
        .code(2)
        .stderr_has("stacks/genai/compose.yaml:24: error: services.ollama.deploy.resources.reservations.devices: swarm cannot reserve devices (GPUs) for a task")
        .stderr_has("hint: advertise the devices as generic resources")
        .stderr_has("stacks/metrics/compose.yaml:49: error: secrets.grafana_admin: cannot read")
        .run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches(": error: ").count(), 2, "{stderr}");
    assert!(output.stdout.is_empty());
}

/// Each key swarm would silently ignore or change is refused by name and line, by `render`
/// and by `deploy` alike, and `deploy` stops before it looks for an engine (exit 2, not 1).
#[test]
fn what_swarm_cannot_honour_is_refused_with_its_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    privileged: true\n",
            "services.web.privileged",
            "swarm cannot run privileged tasks",
        ),
        (
            "    devices: [\"/dev/dri:/dev/dri\"]\n",
            "services.web.devices",
            "host devices",
        ),
        (
            "    build: .\n",
            "services.web.build",
            "every node pulls nginx",
        ),
        (
            "    network_mode: \"container:other\"\n",
            "services.web.network_mode",
            "cannot share another container's network",
        ),
        (
            "    ports: [\"127.0.0.1:8080:80\"]\n",
            "services.web.ports",
            "not on 127.0.0.1 alone",
        ),
        (
            "    security_opt: [\"no-new-privileges:true\"]\n",
            "services.web.security_opt",
            "fewer protections",
        ),
        (
            "    extends: {file: base.yaml, service: web}\n",
            "services.web.extends",
            "cannot extend services",
        ),
        (
            "    pid: host\n",
            "services.web.pid",
            "cannot share namespaces (host)",
        ),
        (
            "    restart: sometimes\n",
            "services.web.restart",
            "unknown restart policy",
        ),
        (
            "    platform: linux/mips\n",
            "services.web.platform",
            "no swarm node architecture is known",
        ),
        (
            "    deploy:\n      resources:\n        reservations:\n          devices: [{capabilities: [gpu]}]\n",
            "services.web.deploy.resources.reservations.devices",
            "cannot reserve devices",
        ),
    ];
    for (settings, key, message) in cases {
        // The line of the key itself: the fourth of the file, or deeper for the reservation.
        let line = 4 + settings.lines().count() - 1;
        // A build with an image is a warning (the image must be in a registry), not an error.
        let code = if key.ends_with("build") { 0 } else { 2 };
        let test =
            stack_with(settings).file("stacks/app/base.yaml", "services: {web: {image: x}}\n");
        let file = test.root().join("stacks/app/compose.yaml");
        let expected = format!(
            "{}:{line}: {}: {key}: ",
            file.display(),
            if code == 0 { "warning" } else { "error" }
        );
        let root = test.root().to_path_buf();
        if code == 0 {
            let output = test
                .args(["swarm", "deploy"])
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
                .code(1)
                .stderr_has(&expected)
                .stderr_has(message)
                .run();
            assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/docker.sock"));
            continue;
        }
        let rendered = Test::new()
            .at(&root)
            .args(["swarm", "render"])
            .code(2)
            .stderr_has(&expected)
            .stderr_has(message)
            .run();
        let stderr = String::from_utf8_lossy(&rendered.stderr);
        assert_eq!(
            stderr.matches(": error: ").count(),
            1,
            "{key}: one clear error:\n{stderr}"
        );
        assert!(rendered.stdout.is_empty(), "{key}");
        let deployed = Test::new()
            .at(&root)
            .args(["swarm", "deploy"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .code(2)
            .stderr_has(&expected)
            .run();
        assert_eq!(
            rendered.stderr, deployed.stderr,
            "{key}: render and deploy disagree"
        );
    }
}

#[test]
fn a_network_driver_a_swarm_cannot_share_is_refused_in_networks_toml() {
    let test = stack_with("").file(
        "networks.toml",
        "[networks.back]\nsubnet = \"10.20.0.0/24\"\ndriver = \"macvlan\"\n",
    );
    let networks = test.root().join("networks.toml");
    test.args(["swarm", "render"])
        .code(2)
        .stderr(&format!(
            "{}:1: error: network back: a swarm shares networks between nodes as overlay networks, not macvlan\n  hint: drop driver (bridge on one host, overlay on a swarm) or write driver = \"overlay\"\n",
            networks.display()
        ))
        .run();
}

/// Keys swarm ignores become what it honours; values are interpolated with the env layers
/// (and every `$` doubled, since the docker CLI interpolates again).
#[test]
fn single_host_keys_are_translated() {
    // Settings of web, then two more services (stack_with puts web's network last).
    let test = stack_with(concat!(
        "    restart: on-failure:3\n",
        "    mem_limit: 512m\n",
        "    cpus: \"1.5\"\n",
        "    shm_size: 64m\n",
        "    tmpfs: [\"/run:size=16m,mode=1777\"]\n",
        "    platform: linux/arm64\n",
        "    scale: 2\n",
        "    container_name: web-1\n",
        "    env_file: [web.env]\n",
        "    environment:\n",
        "      GREETING: ${GREETING}\n",
        "      PRICE: \"$$5\"\n",
        "      FROM_ENV:\n",
        "    volumes: [\"./data:/data:ro\"]\n",
        "    healthcheck: {test: [\"CMD\", \"true\"], interval: 1s}\n",
        "    depends_on:\n",
        "      cache: {condition: service_healthy}\n",
        "  db:\n",
        "    image: postgres\n",
        "    profiles: [never]\n",
        "  cache:\n",
        "    image: redis\n",
        "    pull_policy: never\n",
    ))
    .file("stacks/app/.env", "GREETING=hello\nFROM_ENV=layered\n")
    .file(
        "stacks/app/web.env",
        "QUOTED=\"two words\"\nGREETING=from-file\n",
    )
    .file("stacks/app/data/.keep", "");
    let dir = test.root().join("stacks/app");
    let output = test.args(["swarm", "render"]).run();
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "#     4  services.web.restart         translated  deploy.restart_policy.condition: on-failure, max_attempts: 3".to_string(),
        "services.web.container_name  warning     swarm names containers STACK_SERVICE.SLOT.ID".into(),
        "services.web.depends_on      translated  order of readiness: deployed once these run (healthy, where they have a healthcheck): cache".into(),
        "services.db                  dropped     not started: none of its profiles is in COMPOSE_PROFILES".into(),
        "      GREETING: hello\n".into(),
        "      PRICE: \"$$5\"\n".into(),
        "      FROM_ENV: layered\n".into(),
        "      QUOTED: \"two words\"\n".into(),
        format!("      - \"{}/data:/data:ro\"\n", dir.display()),
        "      - type: tmpfs\n        target: /dev/shm\n        tmpfs:\n          size: 67108864\n".into(),
        "      - type: tmpfs\n        target: /run\n        tmpfs:\n          size: 16777216\n".into(),
        "    deploy:\n      restart_policy:\n        condition: on-failure\n        max_attempts: 3\n".into(),
        "      labels:\n        org.composectl.healthcheck: \"true\"\n".into(),
        "      resources:\n        limits:\n          memory: 512m\n          cpus: \"1.5\"\n".into(),
        "      placement:\n        constraints:\n          - \"node.platform.os == linux\"\n          - \"node.platform.arch == aarch64\"\n".into(),
        "      replicas: 2\n".into(),
    ] {
        assert!(text.contains(&needle), "lacks {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("container_name:")
            && !text.contains("depends_on:")
            && !text.contains("  db:"),
        "{text}"
    );
    // The tmpfs mode cannot be kept: a warning row.
    assert!(
        text.contains("/run: the tmpfs option mode=1777 is left out"),
        "{text}"
    );
}

/// `depends_on` within a stack is order of readiness: the render says which services come in
/// which wave, and JSON has the waves.
#[test]
fn depends_on_becomes_waves_and_configs_get_content_names() {
    let test = Test::new().file(
        "stacks/app/compose.yaml",
        indoc! {r#"
            services:
              web:
                image: nginx
                depends_on: [api]
                configs: [site]
              api:
                image: api
                depends_on:
                  db: {condition: service_started}
              db:
                image: postgres
            configs:
              site:
                content: "server_name ${HOST:-example.org};"
        "#},
    );
    let output = test.args(["-o", "json", "swarm", "render"]).run();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let app = &value[0];
    assert_eq!(
        app["waves"],
        serde_json::json!([["db"], ["api"], ["web"]]),
        "{app}"
    );
    let compose = app["compose"].as_str().expect("compose");
    assert!(
        compose.contains("configs:\n  site:\n    external: true\n    name: app_site_"),
        "{compose}"
    );
    let row = app["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["key"] == "configs.site")
        .expect("configs.site row");
    assert_eq!(row["action"], "translated");
    assert!(
        row["note"]
            .as_str()
            .expect("note")
            .contains("created by composectl as app_site_"),
        "{row}"
    );
}
