//! Bucket helpers: clients for the stack's servers and a reader that decodes every archived object.

use std::collections::BTreeMap;
use std::sync::Arc;

use bss_format::{Record, RecordReader};
use bss_layout::ObjectName;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};

use crate::env_or;

/// Connection settings of the S3-compatible server, also handed to the services as env vars.
pub struct S3Settings {
    /// Endpoint with scheme.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Access key id.
    pub key_id: String,
    /// Secret key.
    pub key: String,
    /// Region.
    pub region: String,
}

/// The S3 server of the stack (moto by default).
pub fn s3_settings() -> S3Settings {
    S3Settings {
        endpoint: env_or("BSS_TEST_S3_ENDPOINT", "http://127.0.0.1:39500"),
        bucket: env_or("BSS_TEST_S3_BUCKET", "bss-test"),
        key_id: env_or("BSS_TEST_S3_KEY_ID", "test"),
        key: env_or("BSS_TEST_S3_KEY", "testtesttest"),
        region: env_or("BSS_TEST_S3_REGION", "us-east-1"),
    }
}

impl S3Settings {
    /// Environment variables that point a service at this bucket (Mia-Platform names).
    pub fn service_env(&self) -> Vec<(String, String)> {
        vec![
            ("BUCKET_TYPE".into(), "s3".into()),
            ("BUCKET_NAME".into(), self.bucket.clone()),
            ("BUCKET_ENDPOINT".into(), self.endpoint.clone()),
            ("BUCKET_REGION".into(), self.region.clone()),
            ("S3_KEY_ID".into(), self.key_id.clone()),
            ("S3_KEY".into(), self.key.clone()),
        ]
    }

    /// A client on the same bucket, to check what the service wrote.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_bucket_name(&self.bucket)
                .with_region(&self.region)
                .with_access_key_id(&self.key_id)
                .with_secret_access_key(&self.key)
                .with_client_options(ClientOptions::new().with_allow_http(true))
                .build()
                .expect("s3 client"),
        )
    }
}

/// SeaweedFS through its S3 API: for tests that put thousands of objects (moto keeps every object
/// of the run in memory and lists them all on every LIST).
pub fn seaweed_s3_settings() -> S3Settings {
    let (endpoint, bucket) = gcs_settings();
    S3Settings {
        endpoint,
        bucket,
        ..s3_settings()
    }
}

/// SeaweedFS endpoint and bucket, used through object_store's GCS client.
pub fn gcs_settings() -> (String, String) {
    (
        env_or("BSS_TEST_GCS_ENDPOINT", "http://127.0.0.1:39333"),
        env_or("BSS_TEST_GCS_BUCKET", "bss-test"),
    )
}

/// One archived object, decoded.
#[derive(Debug, Clone)]
pub struct ArchivedObject {
    /// Full path.
    pub path: String,
    /// Parsed name.
    pub name: ObjectName,
    /// Stored size.
    pub stored_bytes: u64,
    /// Records, in file order.
    pub records: Vec<Record>,
}

/// Lists and decodes every object under `folder`, sorted by path.
pub async fn read_folder(store: &Arc<dyn ObjectStore>, folder: &str) -> Vec<ArchivedObject> {
    let mut metas: Vec<_> = store
        .list(Some(&Path::from(folder)))
        .try_collect()
        .await
        .expect("list folder");
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut objects = Vec::with_capacity(metas.len());
    for meta in metas {
        let path = meta.location.to_string();
        let name = ObjectName::parse(&path).expect("archive object name");
        let stored = store
            .get(&meta.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let reader = name
            .compression
            .decompress(&stored[..])
            .expect("decompress");
        let records = RecordReader::new(reader, Some(name.topic.clone()))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        objects.push(ArchivedObject {
            path,
            name,
            stored_bytes: meta.size,
            records,
        });
    }
    objects
}

/// Offsets per partition found in `objects`, in object-name-then-line order.
pub fn offsets_by_partition(objects: &[ArchivedObject]) -> BTreeMap<i32, Vec<i64>> {
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for object in objects {
        for record in &object.records {
            offsets
                .entry(record.partition)
                .or_default()
                .push(record.offset);
        }
    }
    offsets
}

/// Asserts that every partition's offsets `0..expected[p]` are each stored exactly once.
pub fn assert_exactly_once(objects: &[ArchivedObject], expected: &BTreeMap<i32, i64>) {
    let found = offsets_by_partition(objects);
    for (partition, count) in expected {
        let mut offsets = found.get(partition).cloned().unwrap_or_default();
        offsets.sort_unstable();
        let duplicates: Vec<i64> = offsets
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        assert!(
            duplicates.is_empty(),
            "partition {partition}: offsets stored twice: {duplicates:?}"
        );
        offsets.dedup();
        let missing: Vec<i64> = (0..*count)
            .filter(|o| offsets.binary_search(o).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "partition {partition}: offsets missing from the bucket: {missing:?}"
        );
        assert_eq!(
            offsets.len() as i64,
            *count,
            "partition {partition}: unexpected extra offsets"
        );
    }
}
