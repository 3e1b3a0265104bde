//! Synchronous reads straight from the bucket (the integration platform's synchronous pattern):
//! `GET /archive/{topic}/messages` pages through matching records with a cursor, using the same pruning
//! as reingestion; `GET /archive/{topic}/files` lists objects with their metadata; Mia-Platform's
//! `GET /status/folders` and `GET /status/{folder}/count`.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::auth::Grants;
use super::error::{ApiError, ErrorBody};
use crate::engine::plan::parse_date;
use crate::engine::Engine;
use bss_archive::Selection;

/// Largest page.
const MAX_LIMIT: usize = 1000;

/// Query of `GET /archive/{topic}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessagesQuery {
    /// Only records of this source partition.
    pub partition: Option<i32>,
    /// Only records at or after this offset (in each selected partition).
    pub from_offset: Option<i64>,
    /// Only records at or before this offset.
    pub to_offset: Option<i64>,
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

/// A page of `GET /archive/{topic}/messages`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesPage {
    /// Matching records in object-name (time) order, then offset order.
    #[schema(value_type = Vec<ArchiveLine>)]
    pub messages: Vec<serde_json::Value>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One archived record, exactly as a line of the archive (`docs/file-format.md` §1.2). Bytes are
/// text when valid UTF-8, else base64 with the matching `…Encoding` marker.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the lines the format crate writes; never built here.
pub struct ArchiveLine {
    /// ISO-8601 UTC with milliseconds; epoch milliseconds (integer) outside years 0–9999; `null`
    /// without a timestamp.
    #[schema(value_type = Value, required = true)]
    timestamp: Option<serde_json::Value>,
    partition: i32,
    offset: i64,
    /// `null` for a null key.
    #[schema(required = true)]
    key: Option<String>,
    /// `null` for a tombstone.
    #[schema(required = true)]
    payload: Option<String>,
    topic: String,
    /// In record order, duplicates kept.
    headers: Vec<LineHeader>,
    /// `base64` when `key` is base64; absent otherwise.
    key_encoding: Option<String>,
    /// `base64` when `payload` is base64; absent otherwise.
    payload_encoding: Option<String>,
    /// `LogAppendTime` when the broker set the timestamp; absent for CreateTime.
    timestamp_type: Option<String>,
}

/// A record header of an archive line.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct LineHeader {
    key: String,
    /// `null` for a null value.
    #[schema(required = true)]
    value: Option<String>,
    /// `base64` when `value` is base64.
    encoding: Option<String>,
    /// `base64` when `key` is base64.
    key_encoding: Option<String>,
}

/// A page of `GET /archive/{topic}/files`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesPage {
    /// Objects in name (time) order.
    pub files: Vec<FileInfo>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An archive object, from its name and (when it has one) its sidecar index.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Object path in the bucket.
    pub path: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset of its first record.
    pub first_offset: i64,
    /// Offset of its last record (`null` without an index).
    #[schema(required = true)]
    pub last_offset: Option<i64>,
    /// Records in it (`null` without an index).
    #[schema(required = true)]
    pub records: Option<u64>,
    /// Timestamp of its first record (ISO-8601).
    pub first_timestamp: String,
    /// Smallest record timestamp (`null` without an index or without timestamps).
    #[schema(required = true)]
    pub min_timestamp: Option<String>,
    /// Largest record timestamp.
    #[schema(required = true)]
    pub max_timestamp: Option<String>,
    /// Stored size in bytes.
    pub byte_size: u64,
    /// `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Whether a sidecar index describes it.
    pub indexed: bool,
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

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(100) {
        limit @ 1..=MAX_LIMIT => Ok(limit),
        _ => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit: must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The topic's objects that may hold selected records, in name order.
async fn selected_objects(
    engine: &Engine,
    topic: &str,
    selection: &Selection,
) -> Result<Vec<bss_archive::ArchivedObject>, ApiError> {
    let archived = engine.config().resolve(topic);
    engine.ensure_folder_has_objects(&archived.folder).await?;
    let selected = engine.archive().select(&archived.folder, selection).await?;
    let mut objects: Vec<_> = selected.into_values().flatten().collect();
    objects.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(objects)
}

/// The time window of a read's `from` and `to`.
fn window(from: Option<&str>, to: Option<&str>) -> Result<Selection, ApiError> {
    Ok(Selection::window(
        parse_date("from", from)?,
        parse_date("to", to)?,
    ))
}

/// A page of records, as JSON lines of the archive format (`docs/file-format.md` §1.2).
#[utoipa::path(get, path = "/archive/{topic}/messages", operation_id = "archive_messages", tag = "archive",
    params(("topic" = String, Path), ("key" = Option<String>, Query), ("from" = Option<String>, Query, format = DateTime, description = "inclusive ISO-8601"),
        ("to" = Option<String>, Query, format = DateTime, description = "inclusive ISO-8601"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("partition" = Option<i32>, Query, minimum = 0, description = "only this source partition"),
        ("fromOffset" = Option<i64>, Query, minimum = 0, description = "inclusive, in each selected partition"),
        ("toOffset" = Option<i64>, Query, minimum = 0, description = "inclusive")),
    responses((status = 200, body = MessagesPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub async fn messages(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    UrlPath(topic): UrlPath<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<MessagesPage>, ApiError> {
    grants.check_read(&topic)?;
    let limit = page_limit(query.limit)?;
    let selection = Selection {
        key: query.key.map(String::into_bytes),
        partition: query.partition,
        from_offset: query.from_offset,
        to_offset: query.to_offset,
        ..window(query.from.as_deref(), query.to.as_deref())?
    };
    selection
        .check()
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    // `cursor=` (empty) is the first page, as clients that always send the parameter expect.
    let cursor = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    // Pages walk objects in name (time) order; within an object, records are in offset order.
    let mut ordered = selected_objects(&engine, &topic, &selection).await?;
    if let Some(cursor) = &cursor {
        ordered.retain(|o| o.path.as_ref() >= cursor.path.as_str());
    }
    let mut page = Vec::with_capacity(limit);
    let mut next = None;
    'objects: for object in ordered {
        let mut chunks = engine.archive().read(&object).await?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk? {
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
                        .map_err(|e| ApiError::Internal(e.into()))?,
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
    Ok(Json(MessagesPage {
        messages: page,
        next_cursor,
    }))
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
#[utoipa::path(get, path = "/archive/{topic}/files", operation_id = "archive_files", tag = "archive",
    params(("topic" = String, Path), ("from" = Option<String>, Query, format = DateTime), ("to" = Option<String>, Query, format = DateTime), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000), ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, body = FilesPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiKey" = []), ("bearer" = [])))]
pub async fn files(
    State(engine): State<Arc<Engine>>,
    Extension(grants): Extension<Grants>,
    UrlPath(topic): UrlPath<String>,
    Query(query): Query<FilesQuery>,
) -> Result<Json<FilesPage>, ApiError> {
    grants.check_read(&topic)?;
    let limit = page_limit(query.limit)?;
    let selection = window(query.from.as_deref(), query.to.as_deref())?;
    let mut objects = selected_objects(&engine, &topic, &selection).await?;
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
        let header = engine.archive().index_header(&object).await?;
        if let (Some(header), true) = (&header, selection.has_window()) {
            if !header.may_overlap(selection.from_ms, selection.to_ms) {
                continue;
            }
        }
        let iso = |ms: Option<i64>| ms.map(bss_format::time::format_iso_ms);
        page.push(FileInfo {
            path: object.path.to_string(),
            topic: object.name.topic.clone(),
            partition: object.name.partition,
            first_offset: object.name.first_offset,
            last_offset: header.map(|h| h.last_offset),
            records: header.map(|h| h.records),
            first_timestamp: bss_format::time::format_iso_ms(object.name.first_timestamp_ms),
            min_timestamp: iso(header.and_then(|h| h.min_timestamp_ms)),
            max_timestamp: iso(header.and_then(|h| h.max_timestamp_ms)),
            byte_size: object.size,
            compression: object.name.compression.as_str().to_owned(),
            indexed: header.is_some(),
        });
    }
    Ok(Json(FilesPage {
        files: page,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/status/folders", tag = "status", responses((status = 200, body = [String])), security(("apiKey" = []), ("bearer" = [])))]
pub async fn folders(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(engine.archive().folders().await?))
}

#[utoipa::path(get, path = "/status/{folder}/count", tag = "status", params(("folder" = String, Path)), responses((status = 200, body = u64, content_type = "application/json")),
    security(("apiKey" = []), ("bearer" = [])))]
pub async fn count(
    State(engine): State<Arc<Engine>>,
    UrlPath(folder): UrlPath<String>,
) -> Result<Json<usize>, ApiError> {
    if folder.starts_with(".bss-") || folder == ".." || folder == "." {
        return Err(ApiError::not_found(
            "folder_not_found",
            format!("folder {folder:?} does not exist"),
        ));
    }
    Ok(Json(engine.archive().count(&folder).await?))
}
