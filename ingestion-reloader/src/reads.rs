//! Synchronous reads straight from the bucket (the integration platform's synchronous pattern):
//! `GET /archive/{topic}/messages` pages through matching records with a cursor, using the same pruning
//! as reingestion; `GET /archive/{topic}/files` lists objects with their metadata.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::replay::ReplaySpec;
use crate::AppState;

/// Largest page.
const MAX_LIMIT: usize = 1000;

/// Query of `GET /archive/{topic}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Only records with this key (text).
    pub key: Option<String>,
    /// Inclusive lower bound on record timestamps (ISO-8601).
    pub from: Option<String>,
    /// Inclusive upper bound.
    pub to: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where a page ended: the object and the offset of its last returned record.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    path: String,
    offset: i64,
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(text: &str) -> Result<Cursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor: not a cursor returned by this API",
            )
        })
}

fn date(field: &'static str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        bss_format::time::parse_iso_ms(t).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_date",
                format!("{field}: {t:?} is not an ISO-8601 date-time with offset"),
            )
        })
    })
    .transpose()
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(100) {
        limit @ 1..=MAX_LIMIT => Ok(limit),
        _ => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit: must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The topic's objects that may hold records in the window (and with the key), in name order.
async fn objects_in_window(
    state: &AppState,
    topic: &str,
    from: Option<i64>,
    to: Option<i64>,
    key: Option<&[u8]>,
) -> Result<Vec<bss_archive::ArchivedObject>, ApiError> {
    let archived = state.config.resolve(topic);
    state.ensure_folder_has_objects(&archived.folder).await?;
    let selected = state
        .archive
        .select(&archived.folder, from, to, key)
        .await
        .map_err(crate::archive_error)?;
    let mut objects: Vec<_> = selected.into_values().flatten().collect();
    objects.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(objects)
}

/// A page of records, as JSON lines of the archive format (`docs/file-format.md` §1.2).
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<crate::auth::Grants>,
    UrlPath(topic): UrlPath<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    grants.check_read(&topic)?;
    let limit = page_limit(query.limit)?;
    let (from, to) = (
        date("from", query.from.as_deref())?,
        date("to", query.to.as_deref())?,
    );
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let key = query.key.map(String::into_bytes);
    // Pages walk objects in name (time) order; within an object, records are in offset order.
    let mut ordered = objects_in_window(&state, &topic, from, to, key.as_deref()).await?;
    if let Some(cursor) = &cursor {
        ordered.retain(|o| o.path.as_ref() >= cursor.path.as_str());
    }
    let selection = ReplaySpec::selection(Vec::new(), from, to, key);
    let mut page = Vec::with_capacity(limit);
    let mut next = None;
    'objects: for object in ordered {
        let mut chunks = state
            .archive
            .read(&object)
            .await
            .map_err(crate::archive_error)?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk.map_err(crate::archive_error)? {
                let already_returned = cursor
                    .as_ref()
                    .is_some_and(|c| c.path == object.path.as_ref() && record.offset <= c.offset);
                if already_returned || !selection.selects(&record) {
                    continue;
                }
                if page.len() == limit {
                    break 'objects;
                }
                let mut line = Vec::new();
                bss_format::encode_line(&record, &mut line);
                page.push(
                    serde_json::from_slice::<serde_json::Value>(&line)
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                );
                next = Some(Cursor {
                    path: object.path.to_string(),
                    offset: record.offset,
                });
            }
        }
        // Dropping `chunks` stops the decoder of an object we leave early.
    }
    let next_cursor = if page.len() == limit {
        next.as_ref().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "messages": page, "nextCursor": next_cursor }),
    ))
}

/// Query of `GET /archive/{topic}/files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    /// Objects that may hold records at or after this time.
    pub from: Option<String>,
    /// Objects that may hold records at or before this time.
    pub to: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page (the last path returned).
    pub cursor: Option<String>,
}

/// Objects of a topic with what their names and sidecars say.
pub async fn files(
    State(state): State<Arc<AppState>>,
    Extension(grants): Extension<crate::auth::Grants>,
    UrlPath(topic): UrlPath<String>,
    Query(query): Query<FilesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    grants.check_read(&topic)?;
    let limit = page_limit(query.limit)?;
    let (from, to) = (
        date("from", query.from.as_deref())?,
        date("to", query.to.as_deref())?,
    );
    let mut objects = objects_in_window(&state, &topic, from, to, None).await?;
    if let Some(cursor) = &query.cursor {
        objects.retain(|o| o.path.as_ref() > cursor.as_str());
    }
    let more = objects.len() > limit;
    objects.truncate(limit);
    // The cursor is the last object examined, whether or not its sidecar excluded it from the page.
    let next_cursor = more
        .then(|| objects.last().map(|o| o.path.to_string()))
        .flatten();
    let mut page = Vec::new();
    for object in objects {
        let header = state
            .archive
            .index_header(&object)
            .await
            .map_err(crate::archive_error)?;
        if let (Some(header), true) = (&header, from.is_some() || to.is_some()) {
            if !header.may_overlap(from, to) {
                continue;
            }
        }
        let iso = |ms: Option<i64>| ms.map(bss_format::time::format_iso_ms);
        page.push(serde_json::json!({
            "path": object.path.as_ref(),
            "topic": object.name.topic,
            "partition": object.name.partition,
            "firstOffset": object.name.first_offset,
            "lastOffset": header.map(|h| h.last_offset),
            "records": header.map(|h| h.records),
            "firstTimestamp": bss_format::time::format_iso_ms(object.name.first_timestamp_ms),
            "minTimestamp": iso(header.and_then(|h| h.min_timestamp_ms)),
            "maxTimestamp": iso(header.and_then(|h| h.max_timestamp_ms)),
            "byteSize": object.size,
            "compression": object.name.compression.as_str(),
            "indexed": header.is_some(),
        }));
    }
    Ok(Json(
        serde_json::json!({ "files": page, "nextCursor": next_cursor }),
    ))
}
