//! Drop-in conformance with Mia-Platform's documented interfaces: both services start with nothing
//! but Mia's environment variables and a Mia-shaped `application.yaml` at Mia's mount path,
//! `/app/config/application.yaml` (bound there in a mount namespace of the service's own, so tests
//! running beside it never see the file), and the documented file, event, route and metric
//! interfaces are checked end to end. The one deliberate exception in the environment,
//! `RELOADER_AUTH=none`, is listed in docs/migration-from-mia.md.
//!
//! Runs on noida-db: its group joins are fast with librdkafka's defaults, which Mia's variables
//! leave untouched.

use std::path::Path;
use std::time::{Duration, Instant};

use bss_testkit::bucket::{read_folder, s3_settings};
use bss_testkit::kafka::{
    create_topic_on, produce, producer_on, read_topic_in, Cluster, TestRecord,
};
use bss_testkit::process::{http_request, Service};
use bss_testkit::{time_aware_kafka_brokers, unique};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

/// Mia-Platform's mount path of the configuration file.
const MIA_CONFIG_DIR: &str = "/app/config";

/// A workspace binary, built by `cargo test --workspace` beside this test.
fn binary(name: &str) -> String {
    let deps = std::env::current_exe().expect("test path");
    let path = deps
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests (`tests/run.sh`)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Starts `binary` with `env` only, its `application.yaml` bound at `/app/config` in a mount
/// namespace of its own, and no `--config` argument: the services look there by themselves.
fn start_with_mia_mount(
    binary: &str,
    name: &str,
    config_dir: &Path,
    env: &[(&str, String)],
) -> Service {
    std::fs::create_dir_all(MIA_CONFIG_DIR).expect("/app/config (an empty mount point)");
    let script = format!(
        "mount --bind '{}' {MIA_CONFIG_DIR} && exec '{binary}'",
        config_dir.display()
    );
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut service = Service::start("unshare", name, &env, &["-m", "sh", "-c", &script]);
    service.wait_ready(Duration::from_secs(60));
    service
}

fn get(service: &Service, path: &str) -> (u16, String) {
    http_request(service.http_port, "GET", path, &[], None).expect("answer")
}

fn post(service: &Service, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = http_request(
        service.http_port,
        "POST",
        path,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The value of a metric series (`name{labels}` prefix) summed over matching lines.
fn metric_sum(text: &str, prefix: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Waits until `check(metrics text)` holds.
fn wait_for_metrics(service: &Service, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(service, "/-/metrics");
        if check(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The Kafka client metrics Mia-Platform's Grafana dashboard queries (interfaces reference §1.10,
/// §4 "Monitoring").
const MIA_CONSUMER_METRICS: &[&str] = &[
    "kafka_consumer_fetch_manager_records_lag",
    "kafka_consumer_fetch_manager_records_consumed_rate",
    "kafka_consumer_fetch_manager_records_consumed_total",
    "kafka_consumer_fetch_manager_bytes_consumed_rate",
];
const MIA_PRODUCER_METRICS: &[&str] = &[
    "kafka_producer_record_send_rate",
    "kafka_producer_outgoing_byte_rate",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_run_on_mia_platforms_variables_and_application_yaml() {
    let brokers = time_aware_kafka_brokers();
    let s3 = s3_settings();
    let (ingestion, post_ingestion, events, reingestion) = (
        unique("mia.orders.ingestion"),
        unique("mia.orders.post-ingestion"),
        unique("mia.bss-events"),
        unique("mia.orders.reingestion"),
    );
    let folder = unique("mia-orders");
    for (topic, partitions) in [
        (&ingestion, 2),
        (&post_ingestion, 2),
        (&events, 1),
        (&reingestion, 2),
    ] {
        create_topic_on(&brokers, topic, partitions).await;
    }
    // Mia's application.yaml: the mapping, Mia's batching keys and the S3 credentials.
    let config = tempfile::tempdir().expect("config dir");
    std::fs::write(
        config.path().join("application.yaml"),
        format!(
            "bss:\n  enable-post-ingestion: true\n  max-bytes-per-file: 8388608\n  max-cache-size: 10MB\n  cache-upload-timeout: 2s\n  bucket:\n    s3-key-id: {}\n    s3-key: {}\n    region: {}\n    endpoint: {}\n  topics-config:\n    output-events-topic: {events}\n    data-topics-mapping:\n      - ingestion: {ingestion}\n        bucket-folder: {folder}\n        post-ingestion: [{post_ingestion}]\n",
            s3.key_id, s3.key, s3.region, s3.endpoint
        ),
    )
    .expect("application.yaml");
    let common = |group: &str| {
        vec![
            ("KAFKA_BROKERS", brokers.clone()),
            ("KAFKA_GROUP_ID", group.to_owned()),
            ("BUCKET_TYPE", "s3".to_owned()),
            ("BUCKET_NAME", s3.bucket.clone()),
            ("LOG_LEVEL", "INFO".to_owned()),
        ]
    };
    let mut storer_env = common(&unique("mia-storer"));
    storer_env.extend([
        ("KAFKA_DEQUEUE_STRATEGY", "earliest".to_owned()),
        ("BSS_EVENTS_TOPIC", events.clone()),
        ("BSS_ENABLE_POST_INGESTION", "true".to_owned()),
        ("QUARKUS_SHUTDOWN_TIMEOUT", "30".to_owned()),
    ]);
    let storer = start_with_mia_mount(
        &binary("ingestion-storer"),
        "mia-storer",
        config.path(),
        &storer_env,
    );

    let records: Vec<TestRecord> = (0..40)
        .map(|n| TestRecord::json((n % 2) as i32, n, 1_767_225_600_000 + n as i64 * 1000))
        .collect();
    produce(&producer_on(&brokers), &ingestion, &records).await;

    // Files: Mia's folder and name, uncompressed `.txt` JSON lines with Mia's five fields first.
    let store = s3.store();
    let deadline = Instant::now() + Duration::from_secs(60);
    let objects = loop {
        let objects = read_folder(&store, &folder).await;
        let data: Vec<_> = objects
            .into_iter()
            .filter(|o| !o.path.contains("/.bss-"))
            .collect();
        if data.iter().map(|o| o.records.len()).sum::<usize>() >= 40 {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "archived: {:?}",
            data.iter().map(|o| &o.path).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for object in &objects {
        let file = object.path.rsplit('/').next().expect("file name");
        let parts: Vec<&str> = file.trim_end_matches(".txt").rsplitn(4, '_').collect();
        // <iso-ts-first-msg>_<topic>_<partition>_<offset-first-msg>_<epoch-ms>.txt
        assert!(
            file.ends_with(".txt") && object.path.starts_with(&format!("{folder}/")),
            "{}",
            object.path
        );
        assert_eq!(parts.len(), 4, "{file}");
        assert!(
            parts[0].parse::<i64>().is_ok() && parts[1].parse::<i64>().is_ok(),
            "{file}"
        );
        assert!(
            parts[3].starts_with("2026-01-01T00:00:")
                && parts[3].contains(&format!("Z_{ingestion}")),
            "{file}"
        );
        let raw = store
            .get(&ObjectPath::from(object.path.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let first_line = std::str::from_utf8(&raw)
            .expect("plain text")
            .lines()
            .next()
            .expect("a line");
        let line: serde_json::Value = serde_json::from_str(first_line).expect("JSON line");
        let positions: Vec<usize> = [
            "{\"timestamp\":",
            "\"partition\":",
            "\"offset\":",
            "\"key\":",
            "\"payload\":",
        ]
        .iter()
        .map(|field| first_line.find(field).unwrap_or(usize::MAX))
        .collect();
        assert!(
            positions[0] == 0
                && positions
                    .windows(2)
                    .all(|w| w[0] < w[1] && w[1] != usize::MAX),
            "Mia's five fields first, in order: {first_line}"
        );
        assert!(
            line["key"].is_string() && line["payload"].is_string(),
            "key and payload as strings: {first_line}"
        );
    }

    // Events: key {topic, partition}; Mia's six value fields.
    let cluster = Cluster::plain(&brokers);
    let events_read = read_topic_in(
        &cluster,
        &events,
        Duration::from_secs(30),
        move |r| r.len() >= 2,
        false,
    )
    .await;
    for event in &events_read {
        let key: serde_json::Value =
            serde_json::from_slice(event.record.key.as_deref().expect("key")).expect("json key");
        assert_eq!(key["topic"], ingestion.as_str());
        assert!(key["partition"].is_i64(), "{key}");
        let value: serde_json::Value =
            serde_json::from_slice(event.record.payload.as_deref().expect("value"))
                .expect("json value");
        for field in [
            "filePath",
            "batchTimeStart",
            "batchTimeEnd",
            "batchOffsetStart",
            "batchOffsetEnd",
            "batchSize",
        ] {
            assert!(!value[field].is_null(), "event field {field}: {value}");
        }
    }
    // Post-ingestion: every message, forwarded once stored.
    let forwarded = read_topic_in(
        &cluster,
        &post_ingestion,
        Duration::from_secs(30),
        |r| r.len() >= 40,
        false,
    )
    .await;
    assert_eq!(forwarded.len(), 40);

    // Health routes and metrics: Mia's custom ones and the Kafka client ones its dashboard plots.
    for route in ["/-/health/live", "/-/health/ready", "/-/health/started"] {
        assert_eq!(get(&storer, route).0, 200, "{route}");
    }
    wait_for_metrics(&storer, "the storer's Mia metrics", |text| {
        metric_sum(text, "bss_bucket_upload_requests_total{status=\"OK\"}").is_some_and(|v| v > 0.0)
            && metric_sum(text, "bss_bucket_messages_written_total").is_some_and(|v| v >= 40.0)
            && MIA_CONSUMER_METRICS.iter().chain(MIA_PRODUCER_METRICS).all(|m| metric_sum(text, m).is_some())
            // They move: records consumed and sent (events, forwards) are counted.
            && metric_sum(text, "kafka_consumer_fetch_manager_records_consumed_total").is_some_and(|v| v >= 40.0)
            && metric_sum(text, "kafka_producer_record_send_total").is_some_and(|v| v >= 40.0)
    });

    // The reloader on the same file and variables (plus RELOADER_AUTH=none: Mia's has no
    // authentication; ours refuses to start open without being told).
    let mut reloader_env = common(&unique("mia-reloader"));
    reloader_env.extend([
        ("KAFKA_CLIENT_ID", "ingestion-reloader".to_owned()),
        ("MONGODB_URL", "mongodb://unused:27017".to_owned()),
        ("MONGODB_NAME", "unused".to_owned()),
        ("RELOADER_AUTH", "none".to_owned()),
    ]);
    let reloader = start_with_mia_mount(
        &binary("ingestion-reloader"),
        "mia-reloader",
        config.path(),
        &reloader_env,
    );
    let (status, folders) = get(&reloader, "/status/folders");
    assert_eq!(status, 200);
    let folders: Vec<String> = serde_json::from_str(&folders).expect("array of folder names");
    assert!(folders.contains(&folder), "{folders:?}");
    let (status, count) = get(&reloader, &format!("/status/{folder}/count"));
    assert_eq!(
        (status, count.trim().parse::<usize>().ok()),
        (200, Some(objects.len()))
    );

    let (status, answer) = post(
        &reloader,
        "/reingestion/file",
        serde_json::json!({"fileName": objects[0].path, "reIngestionTopic": reingestion}),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["message"], "Reingestion started");
    assert!(
        answer["requestId"]
            .as_str()
            .is_some_and(|id| id.len() == 24),
        "{answer}"
    );
    let (status, answer) = post(
        &reloader,
        "/reingestion/topic",
        serde_json::json!({"topic": ingestion, "reIngestionTopic": reingestion,
            "startDate": "2026-01-01T00:00:00.000Z", "stopDate": "2026-01-01T00:00:39.000Z"}),
    );
    assert_eq!(status, 202, "{answer}");
    let expected = objects[0].records.len() + 40;
    let replayed = read_topic_in(
        &cluster,
        &reingestion,
        Duration::from_secs(30),
        move |r| r.len() >= expected,
        false,
    )
    .await;
    assert_eq!(replayed.len(), expected, "the file, then the whole topic");
    let (status, _) = post(
        &reloader,
        "/reingestion/stop-reingestion",
        serde_json::json!({"topic": ingestion}),
    );
    assert_eq!(status, 200);
    for route in ["/-/health/live", "/-/health/ready"] {
        assert_eq!(get(&reloader, route).0, 200, "{route}");
    }
    wait_for_metrics(&reloader, "the reloader's Mia metrics", |text| {
        metric_sum(text, "fd_hd_bucket_download_request_total{status=\"OK\"}")
            .is_some_and(|v| v >= 2.0)
            && MIA_PRODUCER_METRICS
                .iter()
                .all(|m| metric_sum(text, m).is_some())
            && metric_sum(text, "kafka_producer_record_send_total")
                .is_some_and(|v| v >= expected as f64)
    });
}
