//! The same archive on each backend: GCS (object_store's GCS client against SeaweedFS, the only
//! GCS-protocol server available here) and a local folder. S3 is covered by every other test.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bss_testkit::bucket::{assert_exactly_once, gcs_settings};
use bss_testkit::kafka::{create_topic, produce, producer, TestRecord};
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{ClientOptions, ObjectStore};

async fn topic_with_records() -> (String, String, BTreeMap<i32, i64>) {
    let topic = unique("backend");
    let events = unique("backend-events");
    create_topic(&topic, 2).await;
    create_topic(&events, 1).await;
    let records: Vec<_> = (0..2)
        .flat_map(|p| (0..40).map(move |n| TestRecord::json(p, n, 1_700_000_000_000 + n as i64)))
        .collect();
    produce(&producer(), &topic, &records).await;
    (topic, events, BTreeMap::from([(0, 40), (1, 40)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_to_google_cloud_storage() {
    let (topic, events, expected) = topic_with_records().await;
    let (endpoint, bucket) = gcs_settings();
    // A service-account key that points object_store at the emulator and skips OAuth.
    let key = serde_json::json!({
        "gcs_base_url": endpoint, "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key.json");
    std::fs::write(&key_path, key.to_string()).expect("key file");
    let setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 15\nflush-interval: 500ms\ncompression: gzip",
        vec![
            ("BUCKET_TYPE".into(), "google".into()),
            ("BUCKET_NAME".into(), bucket.clone()),
            ("BUCKET_ENDPOINT".into(), endpoint.clone()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS".into(),
                key_path.to_string_lossy().into_owned(),
            ),
        ],
    );
    let mut storer = setup.start_ready("gcs");
    let store: Arc<dyn ObjectStore> = Arc::new(
        GoogleCloudStorageBuilder::new()
            .with_bucket_name(&bucket)
            .with_service_account_key(key.to_string())
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .expect("gcs client"),
    );
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    assert!(objects.iter().all(|o| o.path.ends_with(".txt.gz")));
    assert!(
        storer.terminate(Duration::from_secs(30)).success(),
        "{}",
        storer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_to_a_local_folder() {
    let (topic, events, expected) = topic_with_records().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("bucket");
    let setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, Some("archive/orders"), &[])],
        "max-records-per-file: 15\nflush-interval: 500ms\ncompression: none",
        vec![
            ("BUCKET_TYPE".into(), "local".into()),
            ("BUCKET_NAME".into(), folder.to_string_lossy().into_owned()),
        ],
    );
    let mut storer = setup.start_ready("local");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&folder).expect("local store"));
    let objects =
        wait_for_offsets(&store, "archive/orders", &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    // Uncompressed files are plain JSON Lines with Mia-Platform's fields, one record per line.
    let first = std::fs::read_to_string(folder.join(&objects[0].path)).expect("file");
    assert!(objects[0].path.ends_with(".txt"));
    assert!(first.ends_with('\n'));
    for line in first.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("json line");
        for field in [
            "timestamp",
            "partition",
            "offset",
            "key",
            "payload",
            "topic",
            "headers",
        ] {
            assert!(value.get(field).is_some(), "{field} missing in {line}");
        }
    }
    assert!(
        storer.terminate(Duration::from_secs(30)).success(),
        "{}",
        storer.log()
    );
}
