//! Who did what: one access-log line per API request (target `access`: method, route template,
//! status, latency, principal, source address), and one audit record per mutating call (target
//! `audit`, and the audit topic when `RELOADER_AUDIT_TOPIC` is set): principal, action, topics,
//! window, filter, job id, outcome, source address. Never a credential, a record payload or a
//! key's bytes (a key is recorded by its length only). Plus the security headers of every answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rdkafka::producer::FutureRecord;

use super::auth::Caller;
use super::error::ApiError;
use crate::engine::Engine;

/// The job a mutating call started or acted on, put in the response's extensions by the handler.
#[derive(Debug, Clone)]
pub struct JobRef(pub String);

/// The largest body the API accepts (the router's limit too).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Logs the request and, for a mutating call, writes its audit record.
pub async fn record(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let path = request.uri().path().to_owned();
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let mutating = matches!(method, Method::POST | Method::DELETE);
    // The body of a mutating call is read here (within the API's limit) for its audit record, then
    // handed on unchanged.
    let (request, body) = if mutating {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(bytes) => (
                Request::from_parts(parts, axum::body::Body::from(bytes.clone())),
                bytes,
            ),
            Err(_) => {
                return ApiError::TooLarge(format!("the body is over {BODY_LIMIT} bytes"))
                    .into_response()
            }
        }
    } else {
        (request, Default::default())
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let principal = response
        .extensions()
        .get::<Caller>()
        .map_or("(unauthenticated)", |c| c.0.as_str())
        .to_owned();
    tracing::info!(
        target: "access",
        method = %method,
        route = %route,
        status,
        latency_ms = started.elapsed().as_millis() as u64,
        principal = %principal,
        source = %source,
        "request"
    );
    if mutating {
        let job = response.extensions().get::<JobRef>().map(|j| j.0.clone());
        let record = audit_record(
            &method, &route, &path, &body, status, &principal, &source, job,
        );
        tracing::info!(target: "audit", record = %record, "audit");
        if let Some(topic) = &engine.config().audit_topic {
            let value = record.to_string();
            let sent = engine.producer().send_result(
                FutureRecord::<str, str>::to(topic)
                    .key(&principal)
                    .payload(&value),
            );
            if let Err((error, _)) = sent {
                tracing::warn!(topic = %topic, error = %error, "cannot queue the audit record; it is in the log");
            }
        }
    }
    response
}

/// The audit record of a mutating call: what the request asked, never its secrets or payloads.
#[allow(clippy::too_many_arguments)]
fn audit_record(
    method: &Method,
    route: &str,
    path: &str,
    body: &[u8],
    status: u16,
    principal: &str,
    source: &str,
    job: Option<String>,
) -> serde_json::Value {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| {
        request
            .get(name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let key_bytes = request.get("key").and_then(|k| k.as_str()).map(str::len);
    // Job routes name their job in the path.
    let job = job.or_else(|| {
        path.strip_prefix("/reingestion/jobs/")
            .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
    });
    serde_json::json!({
        "time": crate::engine::jobs::now_iso(),
        "principal": principal,
        "action": format!("{method} {route}"),
        "path": path,
        "topic": field("topic"),
        "fileName": field("fileName"),
        "target": field("reIngestionTopic"),
        "startDate": field("startDate"),
        "stopDate": field("stopDate"),
        "filter": field("filter"),
        "keyBytes": key_bytes,
        "dryRun": field("dryRun"),
        "jobId": job,
        "status": status,
        "outcome": if status < 400 { "accepted" } else { "refused" },
        "source": source,
    })
}

/// Headers that make every answer safe to show in a browser and never cached.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
