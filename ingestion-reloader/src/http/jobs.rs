//! The job routes: list, follow, stop and resume reingestion jobs (`/reingestion/jobs…`).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Grants;
use super::error::{ApiError, ErrorBody};
use super::reingestion::Started;
use crate::engine::jobs::{self, Job, JobState};
use crate::engine::{promptly, Engine, ReplayRequest};

/// `GET /reingestion/jobs?since=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Also list the jobs started at or after this ISO-8601 time (default: the last 24 hours; at
    /// most `RELOADER_JOB_RETENTION` back). Running jobs are always listed first.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// At most this many jobs besides the running ones, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The next page: jobs older than this job id (the last id of the previous page).
    #[param(pattern = "^[0-9a-f]{24}$")]
    pub before: Option<String>,
}

#[utoipa::path(get, path = "/reingestion/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = [Job]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn list_jobs(
    State(engine): State<Arc<Engine>>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let now = jobs::now_ms();
    let oldest = now - engine.config().job_retention.as_millis() as i64;
    let since = match query.since.as_deref() {
        None => now - 24 * 3_600_000,
        Some(text) => bss_format::time::parse_iso_ms(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("since: {text:?} is not an ISO-8601 date-time"),
            )
        })?,
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    if let Some(before) = query.before.as_deref() {
        if !jobs::is_job_id(before) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("before: {before:?} is not a job id"),
            ));
        }
    }
    let listed = engine
        .jobs()
        .list(since.max(oldest), query.before.as_deref(), limit);
    Ok(Json(promptly(listed).await?))
}

/// Resumes an interrupted, failed or stopped job from its checkpoints, with its original request.
#[utoipa::path(post, path = "/reingestion/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 202, body = Started), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn resume_job(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let job = engine.job(&id).await?;
    let plan = engine.plan(ReplayRequest::of_job(&job)?).await?;
    grants.check_reingest(&plan.topic, &plan.spec.target)?;
    Ok(Started::answer(
        engine.resume(job, plan).await?,
        "Reingestion resumed",
    ))
}

#[utoipa::path(get, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn get_job(
    State(engine): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(engine.job(&id).await?))
}

#[utoipa::path(delete, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 202, description = "stop requested"), (status = 200, description = "the job was not running"), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub(super) async fn stop_job(
    State(engine): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let job = engine.job(&id).await?;
    let orphan = job.state == JobState::Interrupted || job.is_stale();
    if orphan && engine.stop_orphan(job.clone()).await? {
        return Ok((
            StatusCode::OK,
            Json(
                serde_json::json!({"code": "stopped", "message": "stopped before it was taken over", "requestId": id}),
            ),
        ));
    }
    if job.state == JobState::Running || orphan {
        engine.stop(&id).await?;
        Ok((
            StatusCode::ACCEPTED,
            Json(
                serde_json::json!({"code": "stopping", "message": "stop requested", "requestId": id}),
            ),
        ))
    } else {
        Ok((
            StatusCode::OK,
            Json(
                serde_json::json!({"code": "not_running", "message": format!("job is {:?}", job.state).to_lowercase(), "requestId": id}),
            ),
        ))
    }
}
