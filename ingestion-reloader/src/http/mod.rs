//! The REST API over the [`Engine`]: routes, extractors, access control, the access log and audit
//! trail, the OpenAPI document, and the one place engine errors become statuses ([`error`]).

pub mod access;
pub mod auth;
pub mod erasures;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod openapi;
pub mod reads;
pub mod reingestion;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use bss_telemetry::Health;

use crate::engine::Engine;
use auth::Authenticator;
use error::ApiError;

/// The whole HTTP surface: the REST API behind access control, plus the open operational routes, with a
/// request body limit.
pub fn app(
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    health: Health,
    registry: prometheus::Registry,
) -> axum::Router {
    let operational =
        bss_telemetry::operational_router(health, registry, engine.config().metrics_port);
    let guard = axum::middleware::from_fn_with_state(auth, auth::require);
    let document = axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                openapi::document(),
            )
        }),
    );
    let access = axum::middleware::from_fn_with_state(Arc::clone(&engine), access::record);
    routes::router()
        .split_for_parts()
        .0
        .with_state(engine)
        .layer(guard)
        .layer(axum::middleware::from_fn(time_limit))
        .layer(access)
        .merge(document)
        .merge(operational)
        .layer(axum::extract::DefaultBodyLimit::max(access::BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::json_rejections))
        .layer(axum::middleware::from_fn(access::security_headers))
}

/// How long an API request may take (starting a job returns at once; synchronous reads are bounded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn time_limit(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {REQUEST_TIMEOUT:?}; narrow it (limit, from/to) or retry"
        ))
        .into_response(),
    }
}
