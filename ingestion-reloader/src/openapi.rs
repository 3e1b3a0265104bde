//! The OpenAPI document, generated from the route handlers and request types, served at
//! `/openapi.json` and checked into `docs/openapi.json` (a test keeps the two identical).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::{FileRequest, KeyRequest, StopRequest, TopicRequest};
use crate::erasures::EraseBody;
use crate::jobs::{Job, JobKind, JobState, Part};
use crate::replay::PayloadFilter;

/// `202` answer of the start routes.
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// Job id.
    pub request_id: String,
    /// `Reingestion started`.
    pub message: String,
}

/// Every error answer.
#[derive(ToSchema, serde::Serialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `invalid_body`, `target_not_found`, `too_many_jobs`.
    pub code: String,
    /// What is wrong, naming the field.
    pub message: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Completes every operation so the document is valid OpenAPI 3.1 and says every status a route
/// can answer: a description on each response (the status's reason phrase when the route gives
/// none), and the error answers every route shares: `401`, `403` and `503` behind access control
/// (credentials, scopes, bucket or Kafka unavailable), `500` everywhere.
struct Completeness;

impl Modify for Completeness {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let reason = |status: &str| {
            status
                .parse::<u16>()
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("answer")
                .to_owned()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let shared: &[&str] = if secured {
                    &["401", "403", "500", "503"]
                } else {
                    &["500"]
                };
                for status in shared {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(reason(status))
                                    .content(
                                        "application/json",
                                        ContentBuilder::new()
                                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                                            .build(),
                                    )
                                    .build(),
                            )
                        });
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        if response.description.trim().is_empty() {
                            response.description = reason(status);
                        }
                    }
                }
            }
        }
    }
}

#[utoipa::path(post, path = "/reingestion/topic", request_body = TopicRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn reingest_topic() {}

#[utoipa::path(post, path = "/reingestion/file", request_body = FileRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn reingest_file() {}

#[utoipa::path(post, path = "/reingestion/key", request_body = KeyRequest, tag = "reingestion",
    responses((status = 202, body = Started), (status = 200, description = "with dryRun: the preview (objects, bytes, records per partition, samples); nothing is published"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn reingest_key() {}

#[utoipa::path(post, path = "/reingestion/stop-reingestion", request_body = StopRequest, tag = "reingestion",
    responses((status = 200, description = "stop requested for the topic's running jobs"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn stop_topic() {}

#[utoipa::path(get, path = "/reingestion/jobs", tag = "jobs", params(crate::api::JobsQuery),
    responses((status = 200, body = [Job]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn list_jobs() {}

#[utoipa::path(get, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "job id (24 hex digits)")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn get_job() {}

#[utoipa::path(delete, path = "/reingestion/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 202, description = "stop requested"), (status = 200, description = "the job was not running"), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn stop_job() {}

#[utoipa::path(post, path = "/reingestion/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 202, body = Started), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn resume_job() {}

#[utoipa::path(get, path = "/archive/{topic}/messages", tag = "archive",
    params(("topic" = String, Path), ("key" = Option<String>, Query), ("from" = Option<String>, Query, description = "inclusive ISO-8601"),
        ("to" = Option<String>, Query, description = "inclusive ISO-8601"), ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, description = "{messages: [archive line objects], nextCursor}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn archive_messages() {}

#[utoipa::path(get, path = "/archive/{topic}/files", tag = "archive",
    params(("topic" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{files: [...], nextCursor}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn archive_files() {}

#[utoipa::path(post, path = "/archive/{topic}/erasures", request_body = EraseBody, tag = "archive",
    params(("topic" = String, Path)),
    responses((status = 202, description = "{erasureId, message}: the erasure runs in the background"),
        (status = 200, description = "with dryRun: the plan (objects, erasedOffsets, records)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn erase_key() {}

#[utoipa::path(get, path = "/archive/{topic}/erasures", tag = "archive",
    params(("topic" = String, Path)),
    responses((status = 200, description = "the erasure records of the topic's folder, oldest first"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn list_erasures() {}

#[utoipa::path(get, path = "/status/folders", tag = "status", responses((status = 200, body = [String])), security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn folders() {}

#[utoipa::path(get, path = "/status/{folder}/count", tag = "status", params(("folder" = String, Path)), responses((status = 200, body = u64)),
    security(("apiKey" = []), ("bearer" = [])))]
#[allow(dead_code)]
fn count() {}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ingestion Reloader API", description = "Replays archived Kafka records from the bucket. Mia-Platform compatible routes plus key reingestion, jobs and synchronous reads."),
    paths(reingest_topic, reingest_file, reingest_key, stop_topic, list_jobs, get_job, stop_job, resume_job, archive_messages, archive_files, erase_key, list_erasures, folders, count),
    components(schemas(TopicRequest, FileRequest, KeyRequest, StopRequest, EraseBody, PayloadFilter, Job, JobKind, JobState, Part, Started, ErrorBody)),
    modifiers(&Security, &Completeness)
)]
pub struct ApiDoc;

/// The document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = super::document();
        let checked_in = include_str!("../../docs/openapi.json");
        if generated.trim() != checked_in.trim() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/openapi.generated.json"
            );
            let _ = std::fs::write(path, &generated);
            panic!("docs/openapi.json is out of date; the generated document is in {path}");
        }
        for route in [
            "/reingestion/topic",
            "/reingestion/key",
            "/archive/{topic}/messages",
            "/status/folders",
        ] {
            assert!(generated.contains(route), "{route}");
        }
    }
}
