//! The HTTP layer in-process: the real router over an engine whose bucket is in memory, driven with
//! `tower::ServiceExt::oneshot`, so status codes and error bodies are checked without starting a
//! process. The Kafka client points at a closed port: routes that must ask Kafka (a target topic) are
//! the end-to-end tests' business, except the one that checks a silent Kafka answers 503.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bss_format::{Compression, Header, Record, TimestampType};
use bss_testkit::archive::{catalog_folder, write_objects};
use futures::StreamExt;
use ingestion_reloader::config::ReloaderConfig;
use ingestion_reloader::engine::Engine;
use ingestion_reloader::http::auth::Authenticator;
use ingestion_reloader::metrics::Metrics;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const READ_KEY: &str = "reader-key-0123456789abcdef";
const OPS_KEY: &str = "ops-key-fedcba9876543210fedcba";
const ERASE_KEY: &str = "erase-key-00112233445566778899";
/// An archived topic of the configuration, with a default target.
const MAPPED: &str = "orders";
/// A folder that is not mapped (reachable by name).
const FOLDER: &str = "payments";

/// The API over an in-memory bucket holding `FOLDER` (2 partitions × 30 records in objects of 10,
/// keys `k0`..`k2`), cataloged; checks are on unless `open`.
struct Api {
    app: axum::Router,
    store: Arc<dyn ObjectStore>,
    _dir: tempfile::TempDir,
}

fn record(partition: i32, offset: i64) -> Record {
    Record {
        topic: FOLDER.into(),
        partition,
        offset,
        timestamp_ms: Some(1_700_000_000_000 + offset * 1000),
        timestamp_type: TimestampType::CreateTime,
        key: Some(format!("k{}", offset % 3).into_bytes()),
        payload: Some(format!("{{\"offset\":{offset}}}").into_bytes()),
        headers: vec![Header {
            key: "h".into(),
            value: Some(b"v".to_vec()),
        }],
    }
}

async fn api(open: bool) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "reader:read:{READ_KEY}\nops:read+reingest:{OPS_KEY}\neraser:read+erase:{ERASE_KEY}\n"
        ),
    )
    .expect("keys");
    let yaml = dir.path().join("application.yaml");
    std::fs::write(
        &yaml,
        format!("bss:\n  topics-config:\n    data-topics-mapping:\n      - ingestion: {MAPPED}\n        reingestion: {MAPPED}.re\n"),
    )
    .expect("yaml");
    let mut env: HashMap<String, String> = [
        ("KAFKA_BROKERS", "127.0.0.1:9"),
        ("BUCKET_TYPE", "memory"),
        ("RELOADER_REPLICA_ID", "router-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if open {
        env.insert("RELOADER_AUTH".into(), "none".into());
    } else {
        env.insert(
            "RELOADER_API_KEYS_FILE".into(),
            keys.to_string_lossy().into_owned(),
        );
    }
    let config = ReloaderConfig::load(Some(&yaml), &env).expect("config");
    let auth = Authenticator::load(&config.auth).expect("auth");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for partition in 0..2 {
        let records: Vec<Record> = (0..30).map(|o| record(partition, o)).collect();
        write_objects(&store, FOLDER, &records, 10, Compression::Zstd).await;
    }
    catalog_folder(&store, FOLDER).await;
    let producer = bss_kafka::create_producer(&config.kafka).expect("producer");
    let metrics = Metrics::new();
    let registry = metrics.registry.clone();
    let engine = Arc::new(Engine::new(
        config,
        Arc::clone(&store),
        producer,
        metrics,
        CancellationToken::new(),
    ));
    let app = ingestion_reloader::http::app(
        engine,
        Arc::new(auth),
        bss_telemetry::Health::default(),
        registry,
    );
    Api {
        app,
        store,
        _dir: dir,
    }
}

impl Api {
    /// Sends a request; answers the status and the JSON body (`null` when it is not JSON).
    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, serde_json::Value) {
        self.call("GET", uri, Some(READ_KEY), None).await
    }

    async fn post(&self, uri: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        self.call("POST", uri, Some(OPS_KEY), Some(body.to_string()))
            .await
    }
}

/// Asserts a JSON error answer: its status, code, and that the message mentions `names`.
#[track_caller]
fn refused(answer: (StatusCode, serde_json::Value), status: u16, code: &str, names: &str) {
    let (got, body) = answer;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(names), "{names:?} not in {message:?}");
}

#[tokio::test]
async fn start_routes_refuse_malformed_requests_naming_the_field() {
    let api = api(false).await;
    let topic = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"topic": FOLDER, "reIngestionTopic": "somewhere"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    refused(
        api.call(
            "POST",
            "/reingestion/topic",
            Some(OPS_KEY),
            Some("{".into()),
        )
        .await,
        400,
        "invalid_body",
        "",
    );
    refused(
        api.post("/reingestion/topic", topic(serde_json::json!({"bogus": 1})))
            .await,
        400,
        "invalid_body",
        "bogus",
    );
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"startDate": "yesterday"})),
        )
        .await,
        400,
        "invalid_date",
        "startDate",
    );
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"startDate": "2024-01-02T00:00:00Z", "stopDate": "2024-01-01T00:00:00Z"})),
        )
        .await,
        400,
        "invalid_date",
        "startDate is after stopDate",
    );
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"customSelectorName": "s"})),
        )
        .await,
        400,
        "unsupported_field",
        "customSelectorName",
    );
    // Not an RFC 6901 pointer: it would match nothing and publish nothing.
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"filter": {"pointer": "status", "equals": "PAID"}})),
        )
        .await,
        400,
        "invalid_body",
        "filter.pointer",
    );
    refused(
        api.post("/reingestion/topic", serde_json::json!({"topic": FOLDER}))
            .await,
        400,
        "missing_target",
        "reIngestionTopic",
    );
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"fromOffset": 10, "toOffset": 9})),
        )
        .await,
        400,
        "invalid_body",
        "fromOffset",
    );
    refused(
        api.post(
            "/reingestion/topic",
            topic(serde_json::json!({"partition": -1})),
        )
        .await,
        400,
        "invalid_body",
        "partition",
    );
    refused(
        api.post(
            "/reingestion/key",
            serde_json::json!({"topic": FOLDER, "reIngestionTopic": "x", "key": "%%", "keyEncoding": "base64"}),
        )
        .await,
        400,
        "invalid_body",
        "base64",
    );
    refused(
        api.post(
            "/reingestion/key",
            serde_json::json!({"topic": FOLDER, "reIngestionTopic": "x", "key": "a", "keyEncoding": "hex"}),
        )
        .await,
        400,
        "invalid_body",
        "keyEncoding",
    );
    refused(
        api.post(
            "/reingestion/file",
            serde_json::json!({"fileName": "../etc/2022-11-14T13:26:37.728Z_t_0_1_2.txt", "reIngestionTopic": "x"}),
        )
        .await,
        400,
        "invalid_file_name",
        "fileName",
    );
    // The mapped ingestion topic is protected as a target, whatever the scopes.
    refused(
        api.post(
            "/reingestion/topic",
            serde_json::json!({"topic": FOLDER, "reIngestionTopic": MAPPED}),
        )
        .await,
        403,
        "forbidden",
        "protected",
    );
    refused(
        api.post(
            "/reingestion/stop-reingestion",
            serde_json::json!({"topic": "a b"}),
        )
        .await,
        400,
        "invalid_body",
        "topic",
    );
    let huge = serde_json::json!({"topic": "x".repeat(70 * 1024)});
    refused(
        api.post("/reingestion/topic", huge).await,
        413,
        "body_too_large",
        "",
    );
}

#[tokio::test]
async fn job_routes_answer_404_400_and_lists_without_kafka() {
    let api = api(false).await;
    let unknown = "65a0c0de0123456789abcdef";
    refused(
        api.call(
            "GET",
            &format!("/reingestion/jobs/{unknown}"),
            Some(READ_KEY),
            None,
        )
        .await,
        404,
        "job_not_found",
        unknown,
    );
    refused(
        api.call("GET", "/reingestion/jobs/not-an-id", Some(READ_KEY), None)
            .await,
        404,
        "job_not_found",
        "not-an-id",
    );
    refused(
        api.post(
            &format!("/reingestion/jobs/{unknown}/resume"),
            serde_json::json!({}),
        )
        .await,
        404,
        "job_not_found",
        unknown,
    );
    refused(
        api.call("GET", "/reingestion/jobs?limit=0", Some(READ_KEY), None)
            .await,
        400,
        "invalid_query",
        "limit",
    );
    refused(
        api.call("GET", "/reingestion/jobs?since=soon", Some(READ_KEY), None)
            .await,
        400,
        "invalid_query",
        "since",
    );
    let (status, jobs) = api
        .call("GET", "/reingestion/jobs", Some(READ_KEY), None)
        .await;
    assert_eq!((status, jobs), (StatusCode::OK, serde_json::json!([])));
    let (status, stopped) = api
        .post(
            "/reingestion/stop-reingestion",
            serde_json::json!({"topic": FOLDER}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["jobs"], serde_json::json!([]));
}

#[tokio::test]
async fn credentials_and_scopes_are_checked_before_any_lookup() {
    let api = api(false).await;
    refused(
        api.call("GET", "/status/folders", None, None).await,
        401,
        "unauthenticated",
        "X-API-Key",
    );
    refused(
        api.call(
            "GET",
            "/status/folders",
            Some("wrong-key-0123456789abc"),
            None,
        )
        .await,
        401,
        "unauthenticated",
        "",
    );
    // A reader may not start a job: refused before the target is looked up in Kafka.
    refused(
        api.call(
            "POST",
            "/reingestion/topic",
            Some(READ_KEY),
            Some(serde_json::json!({"topic": FOLDER, "reIngestionTopic": "x"}).to_string()),
        )
        .await,
        403,
        "forbidden",
        "reingest",
    );
    refused(
        api.call(
            "POST",
            &format!("/archive/{FOLDER}/erasures"),
            Some(OPS_KEY),
            Some(serde_json::json!({"key": "k1"}).to_string()),
        )
        .await,
        403,
        "forbidden",
        "erase",
    );
    // The operational routes are open.
    let (status, _) = api.call("GET", "/-/health/live", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reads_page_through_the_archive_and_status_counts_objects() {
    let api = api(false).await;
    let (status, folders) = api.get("/status/folders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(folders, serde_json::json!([FOLDER]));
    let (status, count) = api.get(&format!("/status/{FOLDER}/count")).await;
    assert_eq!((status, count), (StatusCode::OK, serde_json::json!(6)));
    refused(
        api.get("/status/.bss-jobs/count").await,
        404,
        "folder_not_found",
        ".bss-jobs",
    );

    // Every record of key k1, 7 at a time, across objects and partitions, then nothing more.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "/archive/{FOLDER}/messages?key=k1&limit=7&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for line in page["messages"].as_array().expect("messages") {
            assert_eq!(line["key"], "k1", "{line}");
            assert_eq!(line["headers"][0]["key"], "h", "{line}");
            seen.push((
                line["partition"].as_i64().expect("partition"),
                line["offset"].as_i64().expect("offset"),
            ));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<(i64, i64)> = (0..2)
        .flat_map(|p| (0..30).filter(|o| o % 3 == 1).map(move |o| (p, o)))
        .collect();
    seen.sort();
    assert_eq!(seen, expected);

    // An inclusive window: offsets 5..=12 of each partition.
    let (status, page) = api
        .get(&format!(
        "/archive/{FOLDER}/messages?from=2023-11-14T22:13:25Z&to=2023-11-14T22:13:32Z&limit=1000"
    ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let offsets: Vec<i64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|l| l["offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets.len(), 16, "{offsets:?}");
    assert!(offsets.iter().all(|o| (5..=12).contains(o)), "{offsets:?}");

    // An offset range of one partition: offsets 8..=21 of partition 1, across three objects.
    let (status, page) = api
        .get(&format!(
            "/archive/{FOLDER}/messages?partition=1&fromOffset=8&toOffset=21&limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let selected: Vec<(i64, i64)> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|l| {
            (
                l["partition"].as_i64().expect("p"),
                l["offset"].as_i64().expect("o"),
            )
        })
        .collect();
    assert_eq!(selected, (8..=21).map(|o| (1, o)).collect::<Vec<_>>());
    refused(
        api.get(&format!(
            "/archive/{FOLDER}/messages?fromOffset=9&toOffset=8"
        ))
        .await,
        400,
        "invalid_query",
        "fromOffset",
    );

    let (status, files) = api.get(&format!("/archive/{FOLDER}/files?limit=4")).await;
    assert_eq!(status, StatusCode::OK, "{files}");
    assert_eq!(files["files"].as_array().expect("files").len(), 4);
    assert_eq!(files["files"][0]["records"], 10);
    assert!(files["nextCursor"].is_string(), "{files}");

    refused(
        api.get(&format!("/archive/{FOLDER}/messages?cursor=garbage"))
            .await,
        400,
        "invalid_cursor",
        "cursor",
    );
    refused(
        api.get(&format!("/archive/{FOLDER}/messages?limit=5000"))
            .await,
        400,
        "invalid_limit",
        "limit",
    );
    refused(
        api.get("/archive/nothing-here/messages").await,
        404,
        "topic_not_found",
        "nothing-here",
    );
}

#[tokio::test]
async fn an_erasure_plan_names_objects_and_records_and_changes_nothing() {
    let api = api(false).await;
    let before = api.store.list(None).count().await;
    let (status, plan) = api
        .call(
            "POST",
            &format!("/archive/{FOLDER}/erasures"),
            Some(ERASE_KEY),
            Some(
                serde_json::json!({"key": "k2", "dryRun": true, "reason": "ticket 1"}).to_string(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["records"], 20, "{plan}");
    assert_eq!(plan["objects"].as_array().expect("objects").len(), 6);
    assert_eq!(plan["keyHashScheme"], "hmac-sha256-unlinkable", "{plan}");
    assert!(!plan.to_string().contains("\"k2\""), "{plan}");
    assert_eq!(api.store.list(None).count().await, before);
    refused(
        api.call(
            "POST",
            &format!("/archive/{FOLDER}/erasures"),
            Some(ERASE_KEY),
            Some(serde_json::json!({"key": "k2", "graceSeconds": 9_999_999}).to_string()),
        )
        .await,
        400,
        "invalid_body",
        "graceSeconds",
    );
    let (status, erasures) = api
        .call(
            "GET",
            &format!("/archive/{FOLDER}/erasures"),
            Some(READ_KEY),
            None,
        )
        .await;
    assert_eq!((status, erasures), (StatusCode::OK, serde_json::json!([])));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_the_json_error_shape() {
    let api = api(true).await;
    refused(
        api.call("GET", "/nowhere", None, None).await,
        404,
        "not_found",
        "",
    );
    refused(
        api.call("DELETE", "/status/folders", None, None).await,
        405,
        "method_not_allowed",
        "",
    );
    let (status, document) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["paths"]["/reingestion/topic"].is_object());
}

#[tokio::test]
async fn a_silent_kafka_answers_503_with_retry_after_not_a_job() {
    let api = api(true).await;
    let request = Request::builder()
        .method("POST")
        .uri("/reingestion/topic")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({"topic": FOLDER, "reIngestionTopic": "elsewhere"}).to_string(),
        ))
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    let (_, jobs) = api.call("GET", "/reingestion/jobs", None, None).await;
    assert_eq!(jobs, serde_json::json!([]), "no job was recorded");
}
