//! The API's one error shape, `{"code": …, "message": …}`, and the one place statuses are chosen:
//! every [`EngineError`] and [`ArchiveError`] is mapped here.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bss_archive::ArchiveError;

use crate::engine::EngineError;

/// A cause kept for the log.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// Every error answer.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `invalid_body`, `target_not_found`, `too_many_jobs`.
    pub code: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message names the field.
    #[error("{message}")]
    BadRequest {
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
    /// The credential lacks a scope; the message names it.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the resource's state (e.g. resuming a job that is running).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// An archived object cannot be read back (corrupt, or a line over the length cap); the message
    /// names the object.
    #[error("{0}")]
    CorruptObject(String),
    /// The body is over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many jobs running on this replica.
    #[error("{0}")]
    TooManyJobs(String),
    /// Kafka or the bucket does not answer: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The bucket failed: the detail (URLs, bucket names, the backend's XML) goes to the log under
    /// an error id, the answer says only that, and the id.
    #[error("the bucket does not answer")]
    Bucket(#[source] Source),
    /// Anything else: logged with its cause, never shown.
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A 409 with a code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<object_store::Error> for ApiError {
    fn from(error: object_store::Error) -> Self {
        Self::Bucket(error.into())
    }
}

impl From<ArchiveError> for ApiError {
    fn from(error: ArchiveError) -> Self {
        match error {
            ArchiveError::NotFound(path) => {
                Self::not_found("file_not_found", format!("object {path} does not exist"))
            }
            ArchiveError::Bucket(e) => Self::from(e),
            ArchiveError::Corrupt { path, reason } => {
                Self::CorruptObject(format!("object {path} cannot be read: {reason}"))
            }
            e @ ArchiveError::NoCatalog(_) => Self::conflict("catalog_incomplete", e.to_string()),
            ArchiveError::Catalog(bss_catalog::CatalogError::Bucket(e)) => Self::from(e),
            e @ ArchiveError::Catalog(_) => Self::Internal(e.into()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid { code, message } => Self::BadRequest { code, message },
            EngineError::NotFound { code, message } => Self::NotFound { code, message },
            EngineError::Protected(message) => Self::Forbidden(message),
            EngineError::Conflict { code, message } => Self::Conflict { code, message },
            EngineError::Busy(message) => Self::TooManyJobs(message),
            EngineError::Unavailable(message) => Self::Unavailable(message),
            e @ EngineError::Kafka(_) => Self::Unavailable(e.to_string()),
            EngineError::Archive(e) => Self::from(e),
            EngineError::Bucket(e) => Self::from(e),
            e @ EngineError::UnreadableJob { .. } => Self::Internal(e.into()),
        }
    }
}

/// A short random id that ties an error answer to its log line.
fn error_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            Self::BadRequest { code, message } => (StatusCode::BAD_REQUEST, *code, message.clone()),
            Self::NotFound { code, message } => (StatusCode::NOT_FOUND, *code, message.clone()),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone()),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message.clone()),
            Self::CorruptObject(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "corrupt_object",
                message.clone(),
            ),
            Self::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                message.clone(),
            ),
            Self::TooManyJobs(message) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_jobs",
                message.clone(),
            ),
            Self::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                message.clone(),
            ),
            Self::Bucket(source) => {
                let id = error_id();
                tracing::warn!(error_id = %id, error = %source, "bucket error answered 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the bucket does not answer; retry later (error id {id})"),
                )
            }
            Self::Internal(source) => {
                let id = error_id();
                tracing::error!(error_id = %id, error = %source, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("internal error (error id {id})"),
                )
            }
        };
        let body = Json(serde_json::json!({ "code": code, "message": message }));
        match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                (status, [(header::RETRY_AFTER, "5")], body).into_response()
            }
            _ => (status, body).into_response(),
        }
    }
}

/// Answers of axum itself (a query string or path that does not parse, an unknown route, a method
/// the route does not have) come as plain text: give them the API's JSON shape too, keeping their
/// status and headers (`Allow` of a 405).
pub async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !response.status().is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are one short line; anything longer is cut rather than buffered.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let code = match parts.status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_request",
    };
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => parts
            .status
            .canonical_reason()
            .unwrap_or("invalid request")
            .to_owned(),
        text => text.to_owned(),
    };
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
