//! The reingestion routes, Mia-Platform compatible (`/reingestion/topic`, `/reingestion/file`,
//! `/reingestion/stop-reingestion`) plus ours (`/reingestion/key`): each checks the caller's scope,
//! has the engine plan the request, then starts it (or previews it with `dryRun`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::access::JobRef;
use super::auth::Grants;
use super::error::{ApiError, ErrorBody};
use super::extract::Body;
use crate::engine::jobs::JobState;
use crate::engine::plan::{FileRequest, KeyRequest, ReplayRequest, TopicRequest};
use crate::engine::{promptly, Engine, JobId};

/// `202` answer of the start routes.
#[derive(utoipa::ToSchema, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// Job id.
    pub request_id: String,
    /// `Reingestion started`.
    pub message: String,
}

impl Started {
    /// The `202` answer naming the job (for the audit record too).
    pub fn answer(id: JobId, message: &str) -> Response {
        let mut response = (
            StatusCode::ACCEPTED,
            Json(Started {
                request_id: id.clone(),
                message: message.to_owned(),
            }),
        )
            .into_response();
        response.extensions_mut().insert(JobRef(id));
        response
    }
}

#[utoipa::path(post, path = "/reingestion/topic", operation_id = "reingest_topic", request_body = TopicRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn start_topic(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<TopicRequest>,
) -> Result<Response, ApiError> {
    start(&engine, &grants, ReplayRequest::Topic(request)).await
}

#[utoipa::path(post, path = "/reingestion/file", operation_id = "reingest_file", request_body = FileRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn start_file(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<FileRequest>,
) -> Result<Response, ApiError> {
    start(&engine, &grants, ReplayRequest::File(request)).await
}

#[utoipa::path(post, path = "/reingestion/key", operation_id = "reingest_key", request_body = KeyRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn start_key(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<KeyRequest>,
) -> Result<Response, ApiError> {
    start(&engine, &grants, ReplayRequest::Key(request)).await
}

/// Checks the scope, plans, then starts (or previews) a request.
async fn start(
    engine: &Arc<Engine>,
    grants: &Grants,
    request: ReplayRequest,
) -> Result<Response, ApiError> {
    // Before any lookup, so a credential learns nothing about topics it may not touch. Without
    // any target the plan answers 400.
    let source = request.source()?;
    let default = engine.default_target(&source);
    if let Some(target) = request.requested_target().or(default.as_deref()) {
        grants.check_reingest(&source, target)?;
    }
    let plan = engine.plan(request).await?;
    if plan.dry_run {
        return Ok(Json(engine.preview(&plan).await?).into_response());
    }
    Ok(Started::answer(
        engine.start(plan).await?,
        "Reingestion started",
    ))
}

/// `POST /reingestion/stop-reingestion`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// Topic whose running reingestions stop.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub topic: String,
}

#[utoipa::path(post, path = "/reingestion/stop-reingestion", request_body = StopRequest, tag = "reingestion",
    responses((status = 200, description = "stop requested for the topic's running jobs"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn stop_topic(
    State(engine): State<Arc<Engine>>,
    Body(request): Body<StopRequest>,
) -> Result<impl IntoResponse, ApiError> {
    // A name no topic can have is a mistake (a pattern, a typo), not "nothing to stop".
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if request.topic.is_empty() || request.topic.len() > 249 || !request.topic.chars().all(legal) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "topic: {:?} is not a topic name (1 to 249 of A-Z a-z 0-9 . _ -)",
                request.topic
            ),
        ));
    }
    let mut stopped = Vec::new();
    for job in promptly(engine.jobs().indexed()).await? {
        if job.topic != request.topic {
            continue;
        }
        let id = job.id.clone();
        // A job waiting to be taken over ends at once, unless a replica resumed it first.
        if job.state == JobState::Running || !engine.stop_orphan(job).await? {
            engine.stop(&id).await?;
        }
        stopped.push(id);
    }
    Ok(Json(serde_json::json!({
        "code": "stopped",
        "message": format!("stop requested for {} running reingestion(s) of {}", stopped.len(), request.topic),
        "jobs": stopped,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<StopRequest>(r#"{"topic":"t","extra":true}"#).is_err());
    }
}
