//! Right to erasure over HTTP: `POST /archive/{topic}/erasures` (permission `erase`) erases a key
//! from the archive in the background (see `bss_archive::erase` for the steps and their crash
//! safety) and answers at once with the erasure's id; `GET /archive/{topic}/erasures` lists the
//! erasure records of the topic's folder (who, why, when, state, objects, records).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bss_archive::erase::EraseRequest;
use serde::Deserialize;

use super::auth::{Caller, Grants};
use super::error::{ApiError, ErrorBody};
use super::extract::Body;
use crate::engine::plan::decode_key;
use crate::engine::{promptly, Engine};

/// Longest grace period a request may ask for.
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// `POST /archive/{topic}/erasures`.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseBody {
    /// The key, as text (or base64 with `keyEncoding: "base64"`).
    pub key: String,
    /// `base64` for binary keys.
    #[schema(pattern = "^base64$")]
    pub key_encoding: Option<String>,
    /// Why (e.g. a ticket number): kept in the erasure record.
    pub reason: Option<String>,
    /// Seconds to let replays that already selected an old object finish reading it before it is
    /// deleted (default 600, at most a week).
    #[schema(maximum = 604800)]
    pub grace_seconds: Option<u64>,
    /// Answer with the plan (objects, offsets) and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Starts an erasure (or plans it, with `dryRun`).
#[utoipa::path(post, path = "/archive/{topic}/erasures", operation_id = "erase_key", request_body = EraseBody, tag = "archive",
    params(("topic" = String, Path)),
    responses((status = 202, description = "{erasureId, message}: the erasure runs in the background"),
        (status = 200, description = "with dryRun: the plan (objects, erasedOffsets, records)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "catalog_incomplete: the folder has no complete catalog"), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub async fn start(
    State(engine): State<Arc<Engine>>,
    UrlPath(topic): UrlPath<String>,
    Extension(caller): Extension<Caller>,
    Extension(grants): Extension<Grants>,
    Body(body): Body<EraseBody>,
) -> Result<impl IntoResponse, ApiError> {
    grants.check_erase(&topic)?;
    let key = decode_key(&body.key, body.key_encoding.as_deref())?;
    let grace = body.grace_seconds.unwrap_or(600);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("graceSeconds: at most {MAX_GRACE_SECONDS}"),
        ));
    }
    let folder = engine.config().resolve(&topic).folder;
    engine.ensure_folder_has_objects(&folder).await?;
    let request = EraseRequest {
        grace: Duration::from_secs(grace),
        dry_run: body.dry_run,
        ..EraseRequest::new(
            &folder,
            key,
            engine.config().erasure_hash_key.as_ref(),
            &caller.0,
            body.reason,
        )
    };
    if body.dry_run {
        let plan = engine.archive().erase(&request).await?;
        return Ok((
            StatusCode::OK,
            Json(serde_json::to_value(plan).unwrap_or_default()),
        ));
    }
    // Refused now rather than failing in the background.
    let catalog = bss_catalog::Catalog::new(engine.archive().store().clone());
    if !promptly(catalog.is_complete(&folder)).await? {
        return Err(bss_archive::ArchiveError::NoCatalog(folder).into());
    }
    let id = request.id.clone();
    let archive = engine.archive().clone();
    let span = tracing::info_span!("erasure", erasure = %request.id, folder = %request.folder);
    let erasure = async move {
        if let Err(error) = archive.erase(&request).await {
            tracing::error!(erasure = %request.id, folder = %request.folder, error = %error, "erasure failed; the next erasure of the folder (or `bss erase`) finishes it");
        }
    };
    tokio::spawn(tracing::Instrument::instrument(erasure, span));
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"erasureId": id, "message": "Erasure started"})),
    ))
}

/// Lists the erasure records of the topic's folder, oldest first.
#[utoipa::path(get, path = "/archive/{topic}/erasures", operation_id = "list_erasures", tag = "archive",
    params(("topic" = String, Path)),
    responses((status = 200, description = "the erasure records of the topic's folder, oldest first"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    UrlPath(topic): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    grants.check_read(&topic)?;
    let folder = engine.config().resolve(&topic).folder;
    let erasures = promptly(engine.archive().erasures(&folder)).await?;
    Ok(Json(erasures))
}
