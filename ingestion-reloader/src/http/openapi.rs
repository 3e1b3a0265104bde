//! The OpenAPI document, generated from the annotated route handlers (the router of
//! [`super::routes::router`]) and the request and answer types, served at `/openapi.json` and checked
//! into `docs/openapi.json` (a test keeps the two identical).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::erasures::EraseBody;
use super::error::ErrorBody;
use super::reads::{ArchiveLine, FileInfo, FilesPage, LineHeader, MessagesPage};
use super::reingestion::{Started, StopRequest};
use crate::engine::jobs::{Job, JobKind, JobState, Part};
use crate::engine::plan::{FileRequest, KeyRequest, TopicRequest};
use crate::engine::replay::PayloadFilter;

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

/// What the document holds besides the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ingestion Reloader API",
        description = "Replays archived Kafka records from the bucket. Mia-Platform compatible routes plus key reingestion, jobs and synchronous reads."
    ),
    components(schemas(
        TopicRequest,
        FileRequest,
        KeyRequest,
        StopRequest,
        EraseBody,
        PayloadFilter,
        Job,
        JobKind,
        JobState,
        Part,
        Started,
        ErrorBody,
        MessagesPage,
        ArchiveLine,
        LineHeader,
        FilesPage,
        FileInfo
    ))
)]
struct ApiDoc;

/// The document as pretty JSON: the operations of the real router, completed.
pub fn document() -> String {
    let mut document = ApiDoc::openapi();
    document.merge(super::routes::router().into_openapi());
    Security.modify(&mut document);
    Completeness.modify(&mut document);
    document.to_pretty_json().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = super::document();
        let checked_in = include_str!("../../../docs/openapi.json");
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
