//! Bad configuration stops the service at once with one line naming the setting; no panic, no backtrace.

mod common;

use std::time::Duration;

use bss_testkit::process::Service;

fn run_with(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut service = Service::start(common::STORER, "config", &owned(env), args);
    let status = service.wait_exit(Duration::from_secs(20));
    (status.success(), service.log())
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A valid configuration file in `dir` that maps the ingestion topic `orders`.
fn orders_config(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        "bss:\n  topics-config:\n    data-topics-mapping:\n      - ingestion: orders\n",
    )
    .expect("yaml");
    path
}

const VALID: &[(&str, &str)] = &[
    ("KAFKA_BROKERS", "127.0.0.1:1"),
    ("KAFKA_GROUP_ID", "g"),
    ("BSS_EVENTS_TOPIC", "events"),
    ("BUCKET_TYPE", "memory"),
];

#[test]
fn invalid_settings_stop_the_service_with_one_line_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_yaml = orders_config(dir.path(), "good.yaml");
    let unknown_key = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_key, "bss:\n  max-bytes-per-fille: 10\n").expect("yaml");
    let not_yaml = dir.path().join("broken.yaml");
    std::fs::write(&not_yaml, "bss: [unclosed\n").expect("yaml");
    let good = good_yaml.to_str().expect("path");
    let bad_property = dir.path().join("bad-property.yaml");
    std::fs::write(
        &bad_property,
        "bss:\n  topics-config:\n    data-topics-mapping:\n      - ingestion: orders\nkafka:\n  fetch.wait.max.msec: 5\n",
    )
    .expect("yaml");

    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("BUCKET_TYPE", "azure")],
            vec!["--config", good],
            "BUCKET_TYPE",
        ),
        (
            vec![("KAFKA_BROKERS", "")],
            vec!["--config", good],
            "KAFKA_BROKERS",
        ),
        (
            vec![("BSS_MEMORY_BUDGET", "a lot")],
            vec!["--config", good],
            "BSS_MEMORY_BUDGET",
        ),
        (
            vec![("BSS_COMPRESSION", "brotli")],
            vec!["--config", good],
            "BSS_COMPRESSION",
        ),
        (
            vec![("KAFKA_DEQUEUE_STRATEGY", "oldest")],
            vec!["--config", good],
            "KAFKA_DEQUEUE_STRATEGY",
        ),
        (
            vec![("HTTP_PORT", "70000")],
            vec!["--config", good],
            "http-port",
        ),
        (
            vec![("HTTP_PORT", "3999"), ("METRICS_PORT", "3999")],
            vec!["--config", good],
            "metrics-port (METRICS_PORT)",
        ),
        (
            vec![
                ("BUCKET_TYPE", "s3"),
                ("BUCKET_NAME", "b"),
                ("BUCKET_ENDPOINT", "minio:9000"),
            ],
            vec!["--config", good],
            "BUCKET_ENDPOINT",
        ),
        (vec![], vec![], "data-topics-mapping"),
        (
            vec![],
            vec!["--config", unknown_key.to_str().expect("path")],
            "max-bytes-per-fille",
        ),
        (
            vec![],
            vec!["--config", not_yaml.to_str().expect("path")],
            "broken.yaml",
        ),
        (
            vec![],
            vec!["--config", "/nonexistent/application.yaml"],
            "/nonexistent/application.yaml",
        ),
        (vec![], vec!["--bogus"], "--bogus"),
        (
            vec![("LOG_LEVEL", "loud")],
            vec!["--config", good],
            "LOG_LEVEL",
        ),
        (
            vec![
                ("BUCKET_TYPE", "google"),
                ("BUCKET_NAME", "b"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json"),
            ],
            vec!["--config", good],
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
        // What only librdkafka knows is checked before anything starts, as librdkafka would.
        (
            vec![
                ("KAFKA_USERNAME", "u"),
                ("KAFKA_PASSWORD", "p"),
                ("KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem"),
            ],
            vec!["--config", good, "--check-config"],
            "ssl.ca.location",
        ),
        (
            vec![("KAFKA_USERNAME", "u"), ("KAFKA_SASL_MECHANISM", "GSSAPI")],
            vec!["--config", good],
            "GSSAPI",
        ),
        (
            vec![],
            vec![
                "--config",
                bad_property.to_str().expect("path"),
                "--check-config",
            ],
            "fetch.wait.max.msec",
        ),
    ];
    for (overrides, args, culprit) in cases {
        let mut env: Vec<(&str, &str)> = VALID
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        env.extend(overrides);
        let (success, output) = run_with(&env, &args);
        assert!(!success, "{culprit}: should fail");
        let first_line = output.lines().next().unwrap_or_default();
        assert!(
            first_line.contains(culprit),
            "{culprit} not named in: {output}"
        );
        assert!(
            !output.contains("panicked") && !output.contains("backtrace"),
            "{output}"
        );
    }
}

#[test]
fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = orders_config(dir.path(), "a.yaml");
    let env: Vec<(String, String)> = owned(VALID)
        .into_iter()
        .chain([
            ("KAFKA_USERNAME".to_owned(), "storer".to_owned()),
            ("KAFKA_PASSWORD".to_owned(), "kafka-pass-c0ffee".to_owned()),
            ("KAFKA_BROKERS".to_owned(), "127.0.0.1:1".to_owned()),
        ])
        .collect();
    let mut service = Service::start(
        common::STORER,
        "secrets",
        &env,
        &["--config", yaml.to_str().expect("path")],
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = service.log();
    service.kill();
    assert!(log.contains("starting ingestion storer"), "{log}");
    assert!(!log.contains("kafka-pass-c0ffee"), "{log}");
}

#[test]
fn version_revision_build_info_and_process_metrics_are_reported_on_the_metrics_port() {
    let (ok, output) = run_with(&[], &["--version"]);
    assert!(ok, "{output}");
    let expected = format!("ingestion-storer {} (rev ", env!("CARGO_PKG_VERSION"));
    let revision = output
        .trim()
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{output:?} does not start with {expected:?}"));
    assert!(
        revision == "unknown"
            || (revision.len() == 12 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "{revision:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = orders_config(dir.path(), "a.yaml");
    let metrics_port = bss_testkit::free_port();
    let mut env = owned(VALID);
    env.push(("METRICS_PORT".to_owned(), metrics_port.to_string()));
    let mut service = Service::start(
        common::STORER,
        "build-info",
        &env,
        &["--config", yaml.to_str().expect("path")],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Some((200, body)) = bss_testkit::process::http_get(metrics_port, "/-/metrics") {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "{}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    // With a metrics port, the HTTP port keeps the health routes and no longer serves metrics.
    assert_eq!(service.get("/-/metrics").map(|(s, _)| s), Some(404));
    assert_eq!(service.get("/-/health/live").map(|(s, _)| s), Some(200));
    let log = service.log();
    service.kill();
    let build_info = format!(
        "bss_build_info{{revision=\"{revision}\",service=\"ingestion-storer\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        metrics.contains(&build_info),
        "{build_info} missing:\n{metrics}"
    );
    for process_metric in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(metrics.contains(process_metric), "{process_metric}missing");
    }
    let version_field = format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        log.lines()
            .any(|line| line.contains("starting ingestion storer")
                && line.contains(&version_field)
                && line.contains(&format!("\"revision\":\"{revision}\""))),
        "{log}"
    );
}
