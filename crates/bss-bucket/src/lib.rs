//! Builds the `ObjectStore` a service works on from its validated bucket configuration.
#![warn(missing_docs)]

use std::sync::Arc;

use bss_config::BucketConfig;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};

/// Why the bucket client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the {kind} bucket {name:?}: {reason}")]
pub struct BucketError {
    kind: &'static str,
    name: String,
    reason: String,
}

/// The store, plus whether it enforces write-once puts (`PutMode::Create`).
pub struct Bucket {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Name written into events.
    pub name: String,
}

/// Builds the client. Nothing is contacted here; use [`probe`] for that.
pub fn build(config: &BucketConfig) -> Result<Bucket, BucketError> {
    let fail = |kind, reason: String| BucketError {
        kind,
        name: config.name().to_owned(),
        reason,
    };
    let store: Arc<dyn ObjectStore> = match config {
        BucketConfig::S3(s3) => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&s3.name)
                .with_region(&s3.region)
                .with_virtual_hosted_style_request(!s3.path_style)
                .with_client_options(ClientOptions::new().with_allow_http(s3.allow_http));
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let (Some(id), Some(key)) = (&s3.key_id, &s3.key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(key.expose());
            }
            Arc::new(builder.build().map_err(|e| fail("s3", e.to_string()))?)
        }
        BucketConfig::Google {
            name,
            credentials_path,
            endpoint,
            allow_http,
        } => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(name)
                .with_client_options(ClientOptions::new().with_allow_http(*allow_http));
            if let Some(path) = credentials_path {
                builder = builder.with_service_account_path(path);
            }
            if let Some(endpoint) = endpoint {
                builder = builder.with_base_url(endpoint);
            }
            Arc::new(builder.build().map_err(|e| fail("google", e.to_string()))?)
        }
        BucketConfig::Local { path } => {
            std::fs::create_dir_all(path)
                .map_err(|e| fail("local", format!("cannot create the directory: {e}")))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| fail("local", e.to_string()))?
                    .with_automatic_cleanup(true),
            )
        }
        BucketConfig::Memory => Arc::new(InMemory::new()),
    };
    Ok(Bucket {
        store,
        name: config.name().to_owned(),
    })
}

/// Checks that the bucket answers and the credentials work: a HEAD of an object that need not exist.
pub async fn probe(store: &dyn ObjectStore) -> Result<(), object_store::Error> {
    match store.head(&Path::from(".bss-probe")).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why the bucket failed a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// It answered with an error.
    #[error(transparent)]
    Bucket(#[from] object_store::Error),
    /// It did not answer in time.
    #[error("the bucket did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

/// [`probe`] bounded by `timeout` (for a readiness report).
pub async fn probe_within(
    store: &dyn ObjectStore,
    timeout: std::time::Duration,
) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, probe(store)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ProbeError::TimedOut(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_bucket_is_created_and_answers_the_probe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("archive").to_string_lossy().into_owned();
        let bucket = build(&BucketConfig::Local { path: path.clone() }).expect("builds");
        probe(bucket.store.as_ref()).await.expect("answers");
        assert!(std::path::Path::new(&path).is_dir());
    }
}
