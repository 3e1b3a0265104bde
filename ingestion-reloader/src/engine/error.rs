//! What the engine answers when it refuses or fails a request: typed, with the cause kept. The HTTP
//! layer alone turns these into statuses.

use std::time::Duration;

use bss_archive::ArchiveError;
use rdkafka::error::KafkaError;

/// Why the engine refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed; the message names the field.
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The file, topic, target topic or job does not exist.
    #[error("{message}")]
    NotFound {
        /// Machine-readable code.
        code: &'static str,
        /// What is missing.
        message: String,
    },
    /// The target is a protected topic.
    #[error("{0}")]
    Protected(String),
    /// The request conflicts with the resource's state (resuming a running job, erasing without a
    /// complete catalog).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// This replica runs as many jobs as it may.
    #[error("{0}")]
    Busy(String),
    /// This replica shuts down, or the bucket did not answer in time: retry.
    #[error("{0}")]
    Unavailable(String),
    /// Kafka did not answer a metadata request.
    #[error("Kafka does not answer: {0}")]
    Kafka(#[source] KafkaError),
    /// Reading the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The bucket failed (job records).
    #[error(transparent)]
    Bucket(#[from] object_store::Error),
    /// A recorded job holds a request this version cannot read.
    #[error("job {id} holds a request this version cannot read: {source}")]
    UnreadableJob {
        /// The job.
        id: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl EngineError {
    /// A malformed request.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Something the request names does not exist.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A conflict with the resource's state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// How long a request waits for the bucket before it is answered "unavailable". The bucket client
/// retries for minutes (right for jobs, which should ride out a blip); a caller should hear at once.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Runs a bucket call made for a caller within [`ANSWER_DEADLINE`].
pub async fn promptly<T, E: Into<EngineError>>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(ANSWER_DEADLINE, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(EngineError::Unavailable(format!(
            "the bucket did not answer within {ANSWER_DEADLINE:?}"
        ))),
    }
}
