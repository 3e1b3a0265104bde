//! The OpenAPI contract against the running service: schemathesis (installed by the test stack)
//! generates requests from `/openapi.json` and fails on any server error or any answer the
//! document does not describe (status, content type, headers, body schema), with a scoped key,
//! with a key pinned to an archived topic (so real pages are checked against their schemas), and
//! without credentials.

use std::process::Command;
use std::time::Duration;

use bss_format::{Compression, Header, Record, TimestampType};
use bss_testkit::archive::write_objects;
use bss_testkit::bucket::s3_settings;
use bss_testkit::process::Service;
use bss_testkit::unique;

const RELOADER: &str = env!("CARGO_BIN_EXE_ingestion-reloader");
const KEY: &str = "contract-key-0123456789abcdef";

/// The checks: every one that needs no links between operations (the document declares none).
/// Some requests match their schema and are still rightly refused with 400, because what makes
/// them valid is beyond JSON Schema: an opaque `cursor` (only the service's own are valid), a start
/// request without `reIngestionTopic` (required unless the configuration maps a default target for
/// that topic), a key declared base64 that is not (start and erasure requests), an object name
/// whose date does not exist. On those routes the check that schema-valid requests are accepted
/// is off; every other check stays on.
const CHECKS: &str = r#"
[checks]
enabled = true
# 503 with Retry-After is the documented answer when the bucket or Kafka does not answer within
# 5 s (a busy test machine); any other 5xx fails.
not_a_server_error.expected-statuses = ["1xx", "2xx", "3xx", "4xx", 503]
use_after_free.enabled = false
ensure_resource_availability.enabled = false

[[operations]]
include-path-regex = '^/archive/[^/]+/(messages|files|erasures)$|^/reingestion/(topic|key|file)$'
checks.positive_data_acceptance.enabled = false
"#;

fn schemathesis() -> String {
    let path = format!(
        "{}/../target/stack/venv/bin/schemathesis",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run tests/stack/up.sh, which installs it"
    );
    path
}

/// Runs schemathesis against the reloader; returns its exit status and output.
fn run(
    reloader: &Service,
    dir: &std::path::Path,
    name: &str,
    config: &str,
    key: Option<&str>,
) -> (bool, String) {
    let config_file = dir.join(format!("{name}.toml"));
    std::fs::write(&config_file, config).expect("config");
    let mut command = Command::new(schemathesis());
    command
        .current_dir(dir)
        .args(["--no-color", "--config-file"])
        .arg(&config_file)
        .args([
            "run",
            &format!("http://127.0.0.1:{}/openapi.json", reloader.http_port),
        ])
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261203",
        ])
        .args([
            // One worker: Python 3.11 can fail compiling regex strategies on two threads at once.
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
        ]);
    if let Some(key) = key {
        command.args(["-H", &format!("X-API-Key: {key}")]);
    }
    let output = command.output().expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_service_answers_exactly_as_its_openapi_document_says() {
    // An archived topic with binary headers, null values and keys, so pages carry every shape.
    let topic = unique("contract");
    let store = s3_settings().store();
    let records: Vec<Record> = (0..40)
        .map(|offset| Record {
            topic: topic.as_str().into(),
            partition: 0,
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset * 1000),
            timestamp_type: TimestampType::CreateTime,
            key: (offset % 5 != 0).then(|| format!("k{}", offset % 3).into_bytes()),
            payload: (offset % 7 != 0).then(|| vec![b'{', 0xff, b'}']),
            headers: vec![Header {
                key: "trace".into(),
                value: Some(vec![0, 159, 146, 150]),
            }],
        })
        .collect();
    write_objects(&store, &topic, &records, 10, Compression::Zstd).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("contract:read:contract-*+reingest:contract-*->contract-*+stop+erase:contract-*:{KEY}\n"),
    )
    .expect("keys");
    let mut env = s3_settings().service_env();
    env.extend([
        ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
        (
            "RELOADER_API_KEYS_FILE".to_owned(),
            keys.to_string_lossy().into_owned(),
        ),
        (
            "RELOADER_JOBS_PREFIX".to_owned(),
            unique(".bss-jobs-contract"),
        ),
    ]);
    let mut reloader = Service::start(RELOADER, "reloader-contract", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));

    // The archived topic in every path, so its real pages are checked against their schemas.
    let pinned = format!(
        "[parameters]\n\"path.topic\" = \"{topic}\"\n\"path.folder\" = \"{topic}\"\n{CHECKS}"
    );
    for (name, config, key) in [
        ("pinned", pinned.as_str(), Some(KEY)),
        ("scoped", CHECKS, Some(KEY)),
        ("anonymous", CHECKS, None),
    ] {
        let (passed, output) = run(&reloader, dir.path(), name, config, key);
        assert!(passed, "schemathesis ({name}) found failures:\n{output}");
    }
    let log = reloader.log();
    assert!(!log.contains(KEY), "the key in the log");
    reloader.kill();
}
