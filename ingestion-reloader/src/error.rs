//! The API's one error shape, `{"code": …, "message": …}`, and the one place statuses are chosen.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

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
    /// The request conflicts with the resource's state (e.g. resuming a job that is running).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The body is over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many jobs running on this replica.
    #[error("{0}")]
    TooManyJobs(String),
    /// Kafka or the bucket does not answer: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged, never shown.
    #[error("internal error")]
    Internal(String),
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
        Self::Unavailable(format!("the bucket does not answer: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            Self::BadRequest { code, message } => (StatusCode::BAD_REQUEST, *code, message.clone()),
            Self::NotFound { code, message } => (StatusCode::NOT_FOUND, *code, message.clone()),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone()),
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
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_owned(),
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
