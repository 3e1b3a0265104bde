//! `bss organize --format parquet` and `bss verify --parquet` on a local-folder bucket, and the
//! DuckDB queries of `docs/analytics.md` run by a real DuckDB (the test stack's venv) over the copy,
//! each answer compared with the same answer computed from the archive's own objects.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bss_archive::{Archive, NoObserver};
use bss_format::{Header, Record, TimestampType};
use bss_testkit::bucket::{seaweed_s3_settings, S3Settings};
use bss_testkit::unique;
use common::{listing, Setup, BASE_MS};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{json, Value};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PREFIX: &str = "analytics";
const COUNTRIES: [&str; 3] = ["IT", "DE", "FR"];

/// A `bss` setup whose bucket is a local folder, and that folder as a store.
fn local_setup(mapping: &[(&str, &str)]) -> (Setup, Arc<dyn ObjectStore>, String) {
    let mut setup = Setup::new("127.0.0.1:1", &unique("g"), "unused", mapping);
    let bucket = setup.path("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket folder");
    setup
        .env
        .retain(|(k, _)| !k.starts_with("BUCKET_") && !k.starts_with("AWS_"));
    setup.env.extend([
        ("BUCKET_TYPE".to_owned(), "local".to_owned()),
        ("BUCKET_NAME".to_owned(), bucket.clone()),
    ]);
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&bucket).expect("local store"));
    (setup, store, bucket)
}

fn header(key: &str, value: Option<&[u8]>) -> Header {
    Header {
        key: key.as_bytes().to_vec(),
        value: value.map(<[u8]>::to_vec),
    }
}

/// `orders`: 3 partitions × 300 records over 5 hours, JSON values (amounts integer or not), every
/// 11th a tombstone, every 50th with a null key, duplicate and null headers.
fn orders() -> Vec<Vec<Record>> {
    (0..3)
        .map(|partition| {
            (0..300)
                .map(|offset| {
                    let n = 3 * ((offset * 7) % 13) + partition as i64;
                    let amount = if offset % 4 == 0 {
                        json!(offset as f64 + 0.5)
                    } else {
                        json!(offset)
                    };
                    let value = json!({
                        "id": n,
                        "customer": format!("customer-{}", n % 20),
                        "amount": amount,
                        "status": if offset % 2 == 0 { "created" } else { "paid" },
                        "items": [n, offset],
                    });
                    Record {
                        topic: Arc::from("orders"),
                        partition,
                        offset,
                        timestamp_ms: Some(BASE_MS + offset * 60_000),
                        timestamp_type: TimestampType::CreateTime,
                        key: (offset % 50 != 49).then(|| format!("order-{n}").into_bytes()),
                        payload: (offset % 11 != 10).then(|| value.to_string().into_bytes()),
                        headers: vec![
                            header("trace", Some(format!("t{offset}").as_bytes())),
                            header("trace", None),
                            header("bin", Some(&[0xff, 0x00])),
                        ],
                    }
                })
                .collect()
        })
        .collect()
}

/// `customers`: 2 partitions × 100 records, broker timestamps. Values: JSON, plain text (every
/// 13th), invalid UTF-8 (every 17th and the last), tombstones (every 19th); keys: text, binary (every 23rd),
/// null (every 29th).
fn customers() -> Vec<Vec<Record>> {
    (0..2)
        .map(|partition| {
            (0..100)
                .map(|offset| {
                    let m = 2 * ((offset * 3) % 10) + partition as i64;
                    let key = match offset {
                        o if o % 29 == 28 => None,
                        o if o % 23 == 5 => Some(vec![0xff, 0xfe, m as u8]),
                        _ => Some(format!("customer-{m}").into_bytes()),
                    };
                    let payload = match offset {
                        o if o % 19 == 18 => None,
                        o if o % 17 == 3 || o == 99 => Some(vec![0xc3, 0x28, offset as u8]),
                        o if o % 13 == 7 => Some(b"legacy customer record".to_vec()),
                        _ => Some(
                            json!({
                                "name": format!("Customer {m}"),
                                "country": COUNTRIES[((m + offset) % 3) as usize],
                            })
                            .to_string()
                            .into_bytes(),
                        ),
                    };
                    Record {
                        topic: Arc::from("customers"),
                        partition,
                        offset,
                        timestamp_ms: Some(BASE_MS + offset * 90_000 + 7),
                        timestamp_type: TimestampType::LogAppendTime,
                        key,
                        payload,
                        headers: Vec::new(),
                    }
                })
                .collect()
        })
        .collect()
}

/// Archives records `[from, to)` of every partition (objects of 25 records).
async fn archive(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    data: &[Vec<Record>],
    from: usize,
    to: usize,
) {
    for partition in data {
        bss_testkit::archive::write_objects(
            store,
            topic,
            &partition[from..to.min(partition.len())],
            25,
            bss_format::Compression::Zstd,
        )
        .await;
    }
}

/// Every record of a folder, read back from its archive objects.
async fn archived(store: &Arc<dyn ObjectStore>, folder: &str) -> Vec<Record> {
    let archive = Archive::new(Arc::clone(store), Arc::new(NoObserver));
    let mut records = Vec::new();
    for object in archive.list(folder).await.expect("list archive") {
        let mut chunks = archive.read(&object).await.expect("read object");
        while let Some(chunk) = chunks.recv().await {
            records.extend(chunk.expect("decodes"));
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

fn hex(bytes: &[u8]) -> Value {
    json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() })
}

fn text(bytes: Option<&[u8]>) -> Value {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .map_or(Value::Null, |t| json!(t))
}

/// The newest record of every non-null key (by offset: a key lives in one partition).
fn latest(records: &[Record]) -> BTreeMap<Vec<u8>, &Record> {
    let mut newest: BTreeMap<Vec<u8>, &Record> = BTreeMap::new();
    for record in records {
        if let Some(key) = &record.key {
            let kept = newest.entry(key.clone()).or_insert(record);
            if record.offset > kept.offset {
                *kept = record;
            }
        }
    }
    newest
}

fn field(record: &Record, name: &str) -> Value {
    record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok())
        .and_then(|v| v.get(name).cloned())
        .unwrap_or(Value::Null)
}

/// The docs' DuckDB blocks run over the copy at `root` (a folder, or an `s3://` URL with `s3`):
/// name → rows.
fn duckdb(root: &str, s3: Option<&S3Settings>) -> BTreeMap<String, Vec<Vec<Value>>> {
    let python = format!("{ROOT}/target/stack/venv/bin/python");
    let mut command = std::process::Command::new(&python);
    command
        .arg(format!("{ROOT}/tests/analytics/duckdb_queries.py"))
        .arg(format!("{ROOT}/docs/analytics.md"))
        .arg(root);
    if let Some(s3) = s3 {
        let settings = json!({
            "endpoint": s3.endpoint, "key_id": s3.key_id, "key": s3.key, "region": s3.region,
        });
        command.env("BSS_DUCKDB_S3", settings.to_string());
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{python} runs (tests/stack/up.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: BTreeMap<String, Value> =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    answers
        .into_iter()
        .map(|(name, answer)| {
            let rows = serde_json::from_value(answer["rows"].clone()).expect("rows");
            (name, rows)
        })
        .collect()
}

/// The answers of the docs' queries, computed from the archived records without Parquet or SQL.
fn expected_answers(orders: &[Record], customers: &[Record]) -> BTreeMap<String, Vec<Vec<Value>>> {
    let mut answers = BTreeMap::new();

    // DuckDB reads `date` as a DATE and keeps the zero-padded `hour` as text.
    let mut per_hour: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for record in orders.iter().chain(customers) {
        let time = chrono::DateTime::from_timestamp_millis(record.timestamp_ms.expect("ts"))
            .expect("in range");
        *per_hour
            .entry((
                record.topic.to_string(),
                time.format("%Y-%m-%d").to_string(),
                time.format("%H").to_string(),
            ))
            .or_default() += 1;
    }
    let rows = per_hour
        .into_iter()
        .map(|((topic, date, hour), n)| vec![json!(topic), json!(date), json!(hour), json!(n)])
        .collect();
    answers.insert("records_per_hour".to_owned(), rows);

    let rows: Vec<Vec<Value>> = orders
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"order-7".as_slice()))
        .map(|r| {
            vec![
                json!(r.partition),
                json!(r.offset),
                json!(r.timestamp_ms),
                json!(r.payload.is_none()),
                text(r.payload.as_deref()),
            ]
        })
        .collect();
    assert!(rows.len() > 10 && rows.iter().any(|row| row[3] == json!(true)));
    answers.insert("key_history".to_owned(), rows);

    let rows: Vec<Vec<Value>> = latest(customers)
        .into_iter()
        .filter(|(_, r)| r.payload.is_some())
        .map(|(key, r)| {
            let binary = r
                .payload
                .as_deref()
                .filter(|p| std::str::from_utf8(p).is_err())
                .map_or(Value::Null, hex);
            vec![
                hex(&key),
                text(Some(&key)),
                text(r.payload.as_deref()),
                binary,
            ]
        })
        .collect();
    assert!(rows.iter().any(|row| row[1].is_null()), "a binary key");
    assert!(rows.iter().any(|row| !row[3].is_null()), "a binary value");
    answers.insert("latest_per_key".to_owned(), rows);

    let customers_now: BTreeMap<Vec<u8>, &Record> = latest(customers)
        .into_iter()
        .filter(|(key, _)| std::str::from_utf8(key).is_ok())
        .collect();
    let mut per_country: BTreeMap<Option<String>, (i64, f64)> = BTreeMap::new();
    for order in latest(orders).values().filter(|r| r.payload.is_some()) {
        let customer = field(order, "customer");
        let Some(c) = customer
            .as_str()
            .and_then(|k| customers_now.get(k.as_bytes()))
        else {
            continue;
        };
        if c.payload.is_none() {
            continue;
        }
        let country = field(c, "country").as_str().map(str::to_owned);
        let entry = per_country.entry(country).or_default();
        entry.0 += 1;
        entry.1 += field(order, "amount").as_f64().expect("amount");
    }
    let rows: Vec<Vec<Value>> = per_country
        .into_iter()
        .map(|(country, (n, amount))| vec![json!(country), json!(n), json!(amount)])
        .collect();
    assert!(rows.len() >= 3 && rows[0][0].is_null(), "{rows:?}");
    answers.insert("join_topics".to_owned(), rows);
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn the_parquet_copy_is_incremental_exact_after_a_crash_and_answers_the_docs_queries() {
    let (setup, store, bucket) = local_setup(&[("orders", "orders"), ("customers", "customers")]);
    let (orders, customers) = (orders(), customers());
    archive(&store, "orders", &orders, 0, 200).await;
    archive(&store, "customers", &customers, 0, 50).await;
    let originals = listing(&store, "orders").await;
    let organize = ["organize", "--format", "parquet", "--prefix", PREFIX];

    let dry = setup
        .bss(&[&organize[..], &["--dry-run"]].concat())
        .await
        .ok();
    assert!(dry.stdout.contains("24 new archive objects"), "{dry:#?}");
    assert!(listing(&store, PREFIX).await.is_empty());

    let first = setup.bss(&organize).await.ok();
    assert!(first.stdout.contains("holding 600 records"), "{first:#?}");
    assert_eq!(
        listing(&store, "orders").await,
        originals,
        "the archive is untouched"
    );
    let after_first = listing(&store, PREFIX).await;
    let manifest: Value = serde_json::from_slice(
        &store
            .get(&Path::from(format!("{PREFIX}/_bss/orders.manifest.json")))
            .await
            .expect("manifest")
            .bytes()
            .await
            .expect("bytes"),
    )
    .expect("json");
    assert_eq!(
        manifest["through"],
        json!({"orders": {"0": 199, "1": 199, "2": 199}})
    );
    // Hive layout: one file per partition and hour (200 one-minute records: hours 00 to 03).
    assert!(
        after_first.contains_key(&format!(
            "{PREFIX}/topic=orders/date=2026-01-01/hour=03/part-2-180-199.parquet"
        )),
        "{after_first:#?}"
    );
    let nothing = setup.bss(&organize).await.ok();
    assert!(nothing.stdout.contains("up to date"), "{nothing:#?}");

    // More is archived; a run crashes after its second file, before its manifest.
    archive(&store, "orders", &orders, 200, 300).await;
    archive(&store, "customers", &customers, 50, 100).await;
    let mut crashing = setup.command(&organize);
    crashing.env("BSS_FAILPOINT", "parquet-file-written:2");
    let crashed = common::run(crashing).await;
    assert_ne!(crashed.code, 0, "{crashed:#?}");
    assert!(
        crashed.stderr.contains("failpoint parquet-file-written"),
        "{crashed:#?}"
    );
    let leftovers = setup.bss(&["verify", "--parquet", PREFIX]).await;
    assert_eq!(leftovers.code, 1, "{leftovers:#?}");
    assert!(
        leftovers.stdout.contains("PROBLEM leftover"),
        "{leftovers:#?}"
    );

    let resumed = setup.bss(&organize).await.ok();
    assert!(
        resumed.stdout.contains("An interrupted run"),
        "{resumed:#?}"
    );
    let after_second = listing(&store, PREFIX).await;
    for (path, size) in after_first.iter().filter(|(p, _)| p.ends_with(".parquet")) {
        assert_eq!(
            after_second.get(path),
            Some(size),
            "{path} is kept as it was"
        );
    }
    let verified = setup.bss(&["verify", "--parquet", PREFIX]).await.ok();
    assert!(
        verified
            .stdout
            .contains("OK: 1100 archived records checked"),
        "{verified:#?}"
    );

    // The docs' queries, against the same answers computed from the archive.
    let (orders, customers) = (
        archived(&store, "orders").await,
        archived(&store, "customers").await,
    );
    assert_eq!(
        duckdb(&format!("{bucket}/{PREFIX}"), None),
        expected_answers(&orders, &customers)
    );

    // A lost file is found.
    let (lost, _) = after_first
        .iter()
        .find(|(p, _)| p.contains("topic=customers") && p.ends_with(".parquet"))
        .expect("a customers file");
    store
        .delete(&Path::from(lost.as_str()))
        .await
        .expect("delete");
    let broken = setup.bss(&["verify", "--parquet", PREFIX, "--json"]).await;
    assert_eq!(broken.code, 1, "{broken:#?}");
    let report: Value = serde_json::from_str(&broken.stdout).expect("json report");
    assert!(
        report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .all(|p| p["kind"] == "missing" && p["topic"] == "customers"),
        "{report:#}"
    );
}

/// The same copy in an S3 bucket (SeaweedFS), read by DuckDB through its httpfs extension.
#[tokio::test(flavor = "multi_thread")]
async fn duckdb_answers_the_docs_queries_over_the_s3_bucket() {
    let (orders_folder, customers_folder) = (unique("orders"), unique("customers"));
    let mut setup = Setup::new(
        "127.0.0.1:1",
        &unique("g"),
        "unused",
        &[("orders", &orders_folder), ("customers", &customers_folder)],
    );
    let s3 = seaweed_s3_settings();
    setup
        .env
        .retain(|(k, _)| !k.starts_with("BUCKET_") && !k.starts_with("S3_"));
    setup.env.extend(s3.service_env());
    let store = s3.store();
    archive(&store, &orders_folder, &orders(), 0, 300).await;
    archive(&store, &customers_folder, &customers(), 0, 100).await;
    let prefix = unique(".analytics");
    setup
        .bss(&["organize", "--format", "parquet", "--prefix", &prefix])
        .await
        .ok();
    let verified = setup.bss(&["verify", "--parquet", &prefix]).await.ok();
    assert!(
        verified
            .stdout
            .contains("OK: 1100 archived records checked"),
        "{verified:#?}"
    );
    let (orders, customers) = (
        archived(&store, &orders_folder).await,
        archived(&store, &customers_folder).await,
    );
    assert_eq!(
        duckdb(&format!("s3://{}/{prefix}", s3.bucket), Some(&s3)),
        expected_answers(&orders, &customers)
    );
}
