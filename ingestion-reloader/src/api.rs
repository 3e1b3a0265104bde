//! REST routes, Mia-Platform compatible (`/reingestion/topic`, `/reingestion/file`,
//! `/reingestion/stop-reingestion`, `/status/folders`, `/status/{folder}/count`) plus ours
//! (`/reingestion/key`, `/reingestion/jobs…`).

use std::sync::Arc;

use axum::extract::{FromRequest, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Grants;
use crate::error::ApiError;
use crate::jobs::{Job, JobKind, JobState};
use crate::openapi::{ErrorBody, Started};
use crate::rate::RateLimit;
use crate::replay::{PayloadFilter, ReplaySpec};
use crate::{bucket_answer, AppState};

/// JSON body extractor whose rejections use the API's error shape (and name the offending field).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_body", e.body_text())),
        }
    }
}

/// Options every start route accepts besides its own fields.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// Keep only records whose JSON payload matches.
    pub filter: Option<&'a PayloadFilter>,
    /// Produce to the source partition number (default: by key).
    pub keep_partition: bool,
    /// Records/s and bytes/s for the whole job (0: unlimited).
    pub rate: RateLimit,
}

/// `POST /reingestion/topic`.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicRequest {
    /// Ingestion topic (or folder) to replay.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub topic: String,
    /// Target topic; defaults to the topic's configured reingestion topic.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub re_ingestion_topic: Option<String>,
    /// Inclusive lower bound on record timestamps.
    #[schema(format = DateTime)]
    pub start_date: Option<String>,
    /// Inclusive upper bound.
    #[schema(format = DateTime)]
    pub stop_date: Option<String>,
    /// Mia-Platform's Kotlin selectors: refused with a pointer to `filter`.
    pub custom_selector_name: Option<String>,
    /// Keep only records whose JSON payload has `equals` at JSON Pointer `pointer`.
    pub filter: Option<PayloadFilter>,
    /// Produce to the source partition number when the target has it (default: by key).
    #[serde(default)]
    pub keep_partition: bool,
    /// Records per second for the whole job, all partitions together (default: unlimited).
    pub rate_limit: Option<u32>,
    /// Bytes (key + value + headers) per second for the whole job (default: unlimited).
    pub byte_rate_limit: Option<u64>,
    /// Answer with a preview (objects, bytes, records per partition, sample records) and publish
    /// nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /reingestion/file`.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileRequest {
    /// Object path, as in the file-written event's `filePath`: `<folder>/<first timestamp>_<topic>_<partition>_<first offset>_<ms>.txt[.gz|.zst]`.
    #[schema(
        pattern = r"^([^/.][^/]*/)+[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z_[A-Za-z0-9._-]+_[0-9]+_[0-9]+_[0-9]+\.txt(\.gz|\.zst)?$"
    )]
    pub file_name: String,
    /// Target topic; defaults to the file's topic's configured reingestion topic.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub re_ingestion_topic: Option<String>,
    /// Refused, see `filter`.
    pub custom_selector_name: Option<String>,
    /// Keep only records whose JSON payload has `equals` at JSON Pointer `pointer`.
    pub filter: Option<PayloadFilter>,
    /// Produce to the source partition number when the target has it (default: by key).
    #[serde(default)]
    pub keep_partition: bool,
    /// Records per second for the whole job, all partitions together (default: unlimited).
    pub rate_limit: Option<u32>,
    /// Bytes (key + value + headers) per second for the whole job (default: unlimited).
    pub byte_rate_limit: Option<u64>,
    /// Answer with a preview (objects, bytes, records per partition, sample records) and publish
    /// nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /reingestion/key`.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRequest {
    /// Ingestion topic (or folder).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub topic: String,
    /// The key, as text (or base64 with `keyEncoding: "base64"`).
    pub key: String,
    /// `base64` for binary keys.
    #[schema(pattern = "^base64$")]
    pub key_encoding: Option<String>,
    /// Target topic.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub re_ingestion_topic: Option<String>,
    /// Inclusive lower bound.
    #[schema(format = DateTime)]
    pub start_date: Option<String>,
    /// Inclusive upper bound.
    #[schema(format = DateTime)]
    pub stop_date: Option<String>,
    /// Only the latest record of the key.
    #[serde(default)]
    pub latest_only: bool,
    /// Keep only records whose JSON payload has `equals` at JSON Pointer `pointer`.
    pub filter: Option<PayloadFilter>,
    /// Produce to the source partition number when the target has it (default: by key).
    #[serde(default)]
    pub keep_partition: bool,
    /// Records per second for the whole job, all partitions together (default: unlimited).
    pub rate_limit: Option<u32>,
    /// Bytes (key + value + headers) per second for the whole job (default: unlimited).
    pub byte_rate_limit: Option<u64>,
    /// Answer with a preview (objects, bytes, records per partition, sample records) and publish
    /// nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /reingestion/stop-reingestion`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// Topic whose running reingestions stop.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,249}$")]
    pub topic: String,
}

/// A key of a request body: its text's bytes, or base64 with `keyEncoding: "base64"`.
pub fn decode_key(key: &str, encoding: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match encoding {
        None => Ok(key.as_bytes().to_vec()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_body",
                    "key: not valid base64 (keyEncoding is base64)",
                )
            }),
        Some(other) => Err(ApiError::bad_request(
            "invalid_body",
            format!("keyEncoding: {other:?} is not supported (only \"base64\")"),
        )),
    }
}

/// The common options of a request.
macro_rules! options {
    ($request:expr) => {
        Options {
            filter: $request.filter.as_ref(),
            keep_partition: $request.keep_partition,
            rate: RateLimit {
                records_per_second: $request.rate_limit.unwrap_or(0),
                bytes_per_second: $request.byte_rate_limit.unwrap_or(0),
            },
        }
    };
}

/// The routes of the REST API with their OpenAPI operations, from the handlers' annotations: the
/// service and its document come from the same list, so they cannot drift apart.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(start_topic))
        .routes(routes!(start_file))
        .routes(routes!(start_key))
        .routes(routes!(stop_topic))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job, stop_job))
        .routes(routes!(resume_job))
        .routes(routes!(crate::reads::messages))
        .routes(routes!(crate::reads::files))
        .routes(routes!(crate::erasures::start, crate::erasures::list))
        .routes(routes!(folders))
        .routes(routes!(count))
}

/// The router of the REST API (operational routes are merged by the caller).
pub fn routes(state: Arc<AppState>) -> Router {
    router().split_for_parts().0.with_state(state)
}

fn parse_date(field: &'static str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        bss_format::time::parse_iso_ms(t).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_date",
                format!("{field}: {t:?} is not an ISO-8601 date-time with offset (e.g. 2024-05-01T00:00:00Z)"),
            )
        })
    })
    .transpose()
}

fn window(start: Option<&str>, stop: Option<&str>) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let (from, to) = (
        parse_date("startDate", start)?,
        parse_date("stopDate", stop)?,
    );
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::bad_request(
                "invalid_date",
                "startDate is after stopDate",
            ));
        }
    }
    Ok((from, to))
}

fn refuse_selector(selector: Option<&String>) -> Result<(), ApiError> {
    match selector {
        Some(_) => Err(ApiError::bad_request(
            "unsupported_field",
            "customSelectorName: Kotlin selectors are not supported; use `filter` ({\"pointer\": \"/field\", \"equals\": value})",
        )),
        None => Ok(()),
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("{field}: must not be empty"),
        ));
    }
    Ok(())
}

/// Rejects paths outside the archive: absolute, `..`, our own prefixes, names that are not objects.
fn validate_file_name(file_name: &str) -> Result<bss_layout::ObjectName, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(
            "invalid_file_name",
            format!("fileName: {file_name:?} {why}"),
        )
    };
    if file_name.starts_with('/') || file_name.contains('\\') {
        return Err(bad("must be a relative object path"));
    }
    if file_name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(bad("must not contain empty, `.` or `..` segments"));
    }
    if file_name.starts_with(".bss-") {
        return Err(bad("is not an archive object"));
    }
    bss_layout::ObjectName::parse(file_name)
        .map_err(|e| bad(&format!("is not an archive object name ({e})")))
}

#[utoipa::path(post, path = "/reingestion/topic", operation_id = "reingest_topic", request_body = TopicRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn start_topic(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<TopicRequest>,
) -> Result<impl IntoResponse, ApiError> {
    // Before any lookup, so a credential learns nothing about topics it may not touch.
    check_scope(
        &state,
        &grants,
        &request.topic,
        request.re_ingestion_topic.as_deref(),
    )?;
    let plan = topic_plan(&state, request).await?;
    state.start(plan).await
}

/// 403 unless the credential may replay `source` into the requested (or configured default)
/// target; without any target the plan answers 400.
fn check_scope(
    state: &AppState,
    grants: &Grants,
    source: &str,
    requested: Option<&str>,
) -> Result<(), ApiError> {
    let default = state.config.resolve(source).default_target;
    match requested
        .filter(|t| !t.trim().is_empty())
        .or(default.as_deref())
    {
        Some(target) => grants.check_reingest(source, target),
        None => Ok(()),
    }
}

async fn topic_plan(state: &Arc<AppState>, request: TopicRequest) -> Result<Plan, ApiError> {
    non_empty("topic", &request.topic)?;
    refuse_selector(request.custom_selector_name.as_ref())?;
    let (from, to) = window(request.start_date.as_deref(), request.stop_date.as_deref())?;
    let archived = state.config.resolve(&request.topic);
    let target = state
        .target(
            request.re_ingestion_topic.as_deref(),
            archived.default_target.as_deref(),
        )
        .await?;
    state.ensure_folder_has_objects(&archived.folder).await?;
    let mut spec = state.spec(target, options!(request), from, to, None, false);
    spec.folder = Some(archived.folder);
    let plan = Plan {
        kind: JobKind::Topic,
        topic: request.topic.clone(),
        spec,
        request: serde_json::to_value(&request).unwrap_or_default(),
        dry_run: request.dry_run,
    };
    Ok(plan)
}

#[utoipa::path(post, path = "/reingestion/file", operation_id = "reingest_file", request_body = FileRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn start_file(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<FileRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = validate_file_name(&request.file_name)?;
    check_scope(
        &state,
        &grants,
        &name.topic,
        request.re_ingestion_topic.as_deref(),
    )?;
    let plan = file_plan(&state, request).await?;
    state.start(plan).await
}

async fn file_plan(state: &Arc<AppState>, request: FileRequest) -> Result<Plan, ApiError> {
    refuse_selector(request.custom_selector_name.as_ref())?;
    let name = validate_file_name(&request.file_name)?;
    let object = crate::bucket_answer(async {
        state
            .archive
            .object(&request.file_name)
            .await
            .map_err(crate::archive_error)
    })
    .await?;
    let default_target = state.config.resolve(&name.topic).default_target;
    let target = state
        .target(
            request.re_ingestion_topic.as_deref(),
            default_target.as_deref(),
        )
        .await?;
    let mut spec = state.spec(target, options!(request), None, None, None, false);
    spec.objects = vec![object];
    let plan = Plan {
        kind: JobKind::File,
        topic: name.topic,
        spec,
        request: serde_json::to_value(&request).unwrap_or_default(),
        dry_run: request.dry_run,
    };
    Ok(plan)
}

#[utoipa::path(post, path = "/reingestion/key", operation_id = "reingest_key", request_body = KeyRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn start_key(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<Grants>,
    Body(request): Body<KeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    // Before any lookup, so a credential learns nothing about topics it may not touch.
    check_scope(
        &state,
        &grants,
        &request.topic,
        request.re_ingestion_topic.as_deref(),
    )?;
    let plan = key_plan(&state, request).await?;
    state.start(plan).await
}

async fn key_plan(state: &Arc<AppState>, request: KeyRequest) -> Result<Plan, ApiError> {
    non_empty("topic", &request.topic)?;
    let key = decode_key(&request.key, request.key_encoding.as_deref())?;
    let (from, to) = window(request.start_date.as_deref(), request.stop_date.as_deref())?;
    let archived = state.config.resolve(&request.topic);
    let target = state
        .target(
            request.re_ingestion_topic.as_deref(),
            archived.default_target.as_deref(),
        )
        .await?;
    state.ensure_folder_has_objects(&archived.folder).await?;
    let mut spec = state.spec(
        target,
        options!(request),
        from,
        to,
        Some(key),
        request.latest_only,
    );
    spec.folder = Some(archived.folder);
    let plan = Plan {
        kind: JobKind::Key,
        topic: request.topic.clone(),
        spec,
        request: serde_json::to_value(&request).unwrap_or_default(),
        dry_run: request.dry_run,
    };
    Ok(plan)
}

#[utoipa::path(post, path = "/reingestion/stop-reingestion", request_body = StopRequest, tag = "reingestion",
    responses((status = 200, description = "stop requested for the topic's running jobs"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn stop_topic(
    State(state): State<Arc<AppState>>,
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
    for job in bucket_answer(state.jobs.indexed()).await? {
        if job.topic != request.topic {
            continue;
        }
        let id = job.id.clone();
        // A job waiting to be taken over ends at once, unless a replica resumed it first.
        if job.state == JobState::Running || !state.stop_orphan(job).await? {
            state.stop(&id).await?;
        }
        stopped.push(id);
    }
    Ok(Json(serde_json::json!({
        "code": "stopped",
        "message": format!("stop requested for {} running reingestion(s) of {}", stopped.len(), request.topic),
        "jobs": stopped,
    })))
}

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

#[utoipa::path(get, path = "/reingestion/jobs", tag = "jobs", params(crate::api::JobsQuery),
    responses((status = 200, body = [Job]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn list_jobs(
    State(state): State<Arc<AppState>>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let now = crate::jobs::now_ms();
    let oldest = now - state.config.job_retention.as_millis() as i64;
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
        if !crate::jobs::is_job_id(before) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("before: {before:?} is not a job id"),
            ));
        }
    }
    let jobs = state
        .jobs
        .list(since.max(oldest), query.before.as_deref(), limit);
    Ok(Json(bucket_answer(jobs).await?))
}

/// Resumes an interrupted, failed or stopped job from its checkpoints, with its original request.
#[utoipa::path(post, path = "/reingestion/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 202, body = Started), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn resume_job(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<Grants>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let job = state.job(&id).await?;
    let plan = plan_of(&state, &job).await?;
    grants.check_reingest(&plan.topic, &plan.spec.target)?;
    state.resume(job, plan).await
}

/// The plan of a recorded job, from its original request (to resume it).
pub async fn plan_of(state: &Arc<AppState>, job: &Job) -> Result<Plan, ApiError> {
    let unreadable = |e: serde_json::Error| {
        ApiError::Internal(format!(
            "job {} holds a request this version cannot read: {e}",
            job.id
        ))
    };
    let request = job.request.clone();
    match job.kind {
        JobKind::Topic => {
            topic_plan(state, serde_json::from_value(request).map_err(unreadable)?).await
        }
        JobKind::File => {
            file_plan(state, serde_json::from_value(request).map_err(unreadable)?).await
        }
        JobKind::Key => key_plan(state, serde_json::from_value(request).map_err(unreadable)?).await,
    }
}

#[utoipa::path(get, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn get_job(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Job>, ApiError> {
    state.job(&id).await.map(Json)
}

#[utoipa::path(delete, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, pattern = "^[0-9a-f]{24}$", description = "job id (24 hex digits)")),
    responses((status = 202, description = "stop requested"), (status = 200, description = "the job was not running"), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
async fn stop_job(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let job = state.job(&id).await?;
    let orphan = job.state == JobState::Interrupted || job.is_stale();
    if orphan && state.stop_orphan(job.clone()).await? {
        return Ok((
            StatusCode::OK,
            Json(
                serde_json::json!({"code": "stopped", "message": "stopped before it was taken over", "requestId": id}),
            ),
        ));
    }
    if job.state == JobState::Running || orphan {
        state.stop(&id).await?;
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

#[utoipa::path(get, path = "/status/folders", tag = "status", responses((status = 200, body = [String])), security(("apiKey" = []), ("bearer" = [])))]
async fn folders(State(state): State<Arc<AppState>>) -> Result<Json<Vec<String>>, ApiError> {
    state
        .archive
        .folders()
        .await
        .map(Json)
        .map_err(crate::archive_error)
}

#[utoipa::path(get, path = "/status/{folder}/count", tag = "status", params(("folder" = String, Path)), responses((status = 200, body = u64, content_type = "application/json")),
    security(("apiKey" = []), ("bearer" = [])))]
async fn count(
    State(state): State<Arc<AppState>>,
    UrlPath(folder): UrlPath<String>,
) -> Result<Json<usize>, ApiError> {
    if folder.starts_with(".bss-") || folder == ".." || folder == "." {
        return Err(ApiError::not_found(
            "folder_not_found",
            format!("folder {folder:?} does not exist"),
        ));
    }
    state
        .archive
        .count(&folder)
        .await
        .map(Json)
        .map_err(crate::archive_error)
}

/// What a start route hands to [`AppState::start`].
pub struct Plan {
    /// Kind.
    pub kind: JobKind,
    /// Source topic (stop-by-topic matches it).
    pub topic: String,
    /// The replay.
    pub spec: ReplaySpec,
    /// Request body, recorded in the job.
    pub request: serde_json::Value,
    /// Preview only.
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_outside_the_archive_are_rejected() {
        for bad in [
            "/etc/passwd",
            "../x/2022-11-14T13:26:37.728Z_t_0_1_2.txt",
            "a/./b",
            ".bss-jobs/x.json",
            "a//b",
            "orders/readme.md",
            "a\\b",
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad}");
        }
        assert!(validate_file_name("orders/2022-11-14T13:26:37.728Z_t_0_1_2.txt").is_ok());
    }

    #[test]
    fn unknown_fields_and_selectors_are_refused() {
        assert!(serde_json::from_str::<TopicRequest>(
            r#"{"topic":"t","reIngestionTopic":"x","bogus":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<StopRequest>(r#"{"topic":"t","extra":true}"#).is_err());
        assert!(refuse_selector(Some(&"s".to_owned())).is_err());
        assert!(window(Some("2024-01-02T00:00:00Z"), Some("2024-01-01T00:00:00Z")).is_err());
        assert!(window(Some("yesterday"), None)
            .expect_err("bad date")
            .to_string()
            .contains("startDate"));
    }
}
