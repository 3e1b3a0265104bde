//! What a job replays: the typed requests a job records (as accepted: its `request` field), and the
//! plans the engine makes of them: the selected folder or object, the checked target, the options.
//! A recorded job is planned again from its request when it is resumed or taken over.

use base64::Engine as _;
use serde::Deserialize;

use super::error::{promptly, EngineError};
use super::jobs::{Job, JobKind};
use super::rate::RateLimit;
use super::replay::{PayloadFilter, ReplaySpec, Source};
use super::replica::Engine;
use bss_archive::Selection;

/// Declares a request type (camelCase JSON, unknown fields refused): its own fields, then the options
/// every start route accepts (serde's `deny_unknown_fields` refuses `flatten`, so they are written
/// here once and added to each).
macro_rules! request {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $($fields)*
            /// Keep only records whose JSON payload has `equals` at JSON Pointer `pointer`.
            pub filter: Option<PayloadFilter>,
            /// Produce to the source partition number when the target has it (default: by key).
            #[serde(default)]
            pub keep_partition: bool,
            /// Records per second for the whole job, all partitions together (default: unlimited).
            pub rate_limit: Option<u32>,
            /// Bytes (key + value + headers) per second for the whole job (default: unlimited).
            pub byte_rate_limit: Option<u64>,
            #[doc = " Answer with a preview (objects, bytes, records per partition, sample records) and publish"]
            #[doc = " nothing."]
            #[serde(default)]
            pub dry_run: bool,
        }
    };
}

request! {
    /// `POST /reingestion/topic`.
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
        /// Only this source partition.
        #[schema(minimum = 0)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub partition: Option<i32>,
        /// Only records at or after this offset (in each selected partition).
        #[schema(minimum = 0)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub from_offset: Option<i64>,
        /// Only records at or before this offset.
        #[schema(minimum = 0)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub to_offset: Option<i64>,
        /// Mia-Platform's Kotlin selectors: refused with a pointer to `filter`.
        pub custom_selector_name: Option<String>,
    }
}

request! {
    /// `POST /reingestion/file`.
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
    }
}

request! {
    /// `POST /reingestion/key`.
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
    }
}

/// A reingestion request of any kind.
#[derive(Debug)]
pub enum ReplayRequest {
    /// A topic's folder, optionally within a time window.
    Topic(TopicRequest),
    /// One object.
    File(FileRequest),
    /// The records of one key.
    Key(KeyRequest),
}

impl ReplayRequest {
    /// The request a job recorded.
    pub fn of_job(job: &Job) -> Result<Self, EngineError> {
        let unreadable = |source| EngineError::UnreadableJob {
            id: job.id.clone(),
            source,
        };
        let request = job.request.clone();
        Ok(match job.kind {
            JobKind::Topic => Self::Topic(serde_json::from_value(request).map_err(unreadable)?),
            JobKind::File => Self::File(serde_json::from_value(request).map_err(unreadable)?),
            JobKind::Key => Self::Key(serde_json::from_value(request).map_err(unreadable)?),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Topic(_) => JobKind::Topic,
            Self::File(_) => JobKind::File,
            Self::Key(_) => JobKind::Key,
        }
    }

    /// The source topic (of a file: the topic its name gives).
    pub fn source(&self) -> Result<String, EngineError> {
        match self {
            Self::Topic(request) => Ok(request.topic.clone()),
            Self::Key(request) => Ok(request.topic.clone()),
            Self::File(request) => Ok(validate_file_name(&request.file_name)?.topic),
        }
    }

    /// The target the request names, if any.
    pub fn requested_target(&self) -> Option<&str> {
        match self {
            Self::Topic(request) => request.re_ingestion_topic.as_deref(),
            Self::File(request) => request.re_ingestion_topic.as_deref(),
            Self::Key(request) => request.re_ingestion_topic.as_deref(),
        }
        .filter(|t| !t.trim().is_empty())
    }

    /// Whether only a preview is asked for.
    pub fn dry_run(&self) -> bool {
        match self {
            Self::Topic(request) => request.dry_run,
            Self::File(request) => request.dry_run,
            Self::Key(request) => request.dry_run,
        }
    }

    /// The options every kind shares.
    fn options(&self) -> ReplayOptions {
        let (filter, keep_partition, records, bytes) = match self {
            Self::Topic(r) => (&r.filter, r.keep_partition, r.rate_limit, r.byte_rate_limit),
            Self::File(r) => (&r.filter, r.keep_partition, r.rate_limit, r.byte_rate_limit),
            Self::Key(r) => (&r.filter, r.keep_partition, r.rate_limit, r.byte_rate_limit),
        };
        ReplayOptions {
            filter: filter.clone(),
            keep_partition,
            rate: RateLimit {
                records_per_second: records.unwrap_or(0),
                bytes_per_second: bytes.unwrap_or(0),
            },
        }
    }

    /// The request as the job records it.
    fn recorded(&self) -> serde_json::Value {
        match self {
            Self::Topic(request) => serde_json::to_value(request),
            Self::File(request) => serde_json::to_value(request),
            Self::Key(request) => serde_json::to_value(request),
        }
        .unwrap_or_default()
    }
}

/// The options every request kind accepts besides its own fields.
#[derive(Debug, Default)]
struct ReplayOptions {
    filter: Option<PayloadFilter>,
    keep_partition: bool,
    rate: RateLimit,
}

/// A checked request, ready to run as a job (or to preview).
#[derive(Debug)]
pub struct Plan {
    /// Kind.
    pub kind: JobKind,
    /// Source topic (stop-by-topic matches it).
    pub topic: String,
    /// The replay.
    pub spec: ReplaySpec,
    /// The request, recorded in the job.
    pub request: serde_json::Value,
    /// Preview only.
    pub dry_run: bool,
}

impl Engine {
    /// Checks a request and plans it: the window, key and filter are valid, the target exists and
    /// is not protected, the folder or object exists.
    pub async fn plan(&self, request: ReplayRequest) -> Result<Plan, EngineError> {
        let options = request.options();
        if let Some(filter) = &options.filter {
            filter.validate()?;
        }
        let source_topic = request.source()?;
        let archived = self.config().resolve(&source_topic);
        let mut selection = Selection::all();
        let mut latest_only = false;
        let mut object = None;
        match &request {
            ReplayRequest::Topic(r) => {
                non_empty("topic", &r.topic)?;
                refuse_selector(r.custom_selector_name.as_ref())?;
                (selection.from_ms, selection.to_ms) =
                    parse_window(r.start_date.as_deref(), r.stop_date.as_deref())?;
                selection.partition = r.partition;
                selection.from_offset = r.from_offset;
                selection.to_offset = r.to_offset;
                selection
                    .check()
                    .map_err(|e| EngineError::invalid("invalid_body", e.to_string()))?;
            }
            ReplayRequest::Key(r) => {
                non_empty("topic", &r.topic)?;
                selection.key = Some(decode_key(&r.key, r.key_encoding.as_deref())?);
                (selection.from_ms, selection.to_ms) =
                    parse_window(r.start_date.as_deref(), r.stop_date.as_deref())?;
                latest_only = r.latest_only;
            }
            ReplayRequest::File(r) => {
                refuse_selector(r.custom_selector_name.as_ref())?;
                object = Some(promptly(self.archive().object(&r.file_name)).await?);
            }
        }
        let (target, target_partitions) = self
            .target(
                request.requested_target(),
                archived.default_target.as_deref(),
            )
            .await?;
        let source = match object {
            Some(object) => Source::Objects(vec![object]),
            None => {
                self.ensure_folder_has_objects(&archived.folder).await?;
                Source::Folder(archived.folder)
            }
        };
        let spec = ReplaySpec {
            source,
            selection,
            latest_only,
            filter: options.filter,
            target,
            target_partitions,
            keep_partition: options.keep_partition,
            rate: options.rate,
            rate_shares: 1,
            lineage_headers: self.config().lineage_headers,
            job_id: String::new(),
            resume_from: Default::default(),
        };
        Ok(Plan {
            kind: request.kind(),
            topic: source_topic,
            spec,
            request: request.recorded(),
            dry_run: request.dry_run(),
        })
    }
}

/// A key of a request body: its text's bytes, or base64 with `keyEncoding: "base64"`.
pub fn decode_key(key: &str, encoding: Option<&str>) -> Result<Vec<u8>, EngineError> {
    match encoding {
        None => Ok(key.as_bytes().to_vec()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .map_err(|_| {
                EngineError::invalid(
                    "invalid_body",
                    "key: not valid base64 (keyEncoding is base64)",
                )
            }),
        Some(other) => Err(EngineError::invalid(
            "invalid_body",
            format!("keyEncoding: {other:?} is not supported (only \"base64\")"),
        )),
    }
}

/// An ISO-8601 date-time of a request field, in epoch ms.
pub fn parse_date(field: &'static str, text: Option<&str>) -> Result<Option<i64>, EngineError> {
    text.map(|t| {
        bss_format::time::parse_iso_ms(t).ok_or_else(|| {
            EngineError::invalid(
                "invalid_date",
                format!("{field}: {t:?} is not an ISO-8601 date-time with offset (e.g. 2024-05-01T00:00:00Z)"),
            )
        })
    })
    .transpose()
}

fn parse_window(
    start: Option<&str>,
    stop: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), EngineError> {
    let (from, to) = (
        parse_date("startDate", start)?,
        parse_date("stopDate", stop)?,
    );
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(EngineError::invalid(
                "invalid_date",
                "startDate is after stopDate",
            ));
        }
    }
    Ok((from, to))
}

fn refuse_selector(selector: Option<&String>) -> Result<(), EngineError> {
    match selector {
        Some(_) => Err(EngineError::invalid(
            "unsupported_field",
            "customSelectorName: Kotlin selectors are not supported; use `filter` ({\"pointer\": \"/field\", \"equals\": value})",
        )),
        None => Ok(()),
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), EngineError> {
    if value.trim().is_empty() {
        return Err(EngineError::invalid(
            "invalid_body",
            format!("{field}: must not be empty"),
        ));
    }
    Ok(())
}

/// Rejects paths outside the archive: absolute, `..`, our own prefixes, names that are not objects.
fn validate_file_name(file_name: &str) -> Result<bss_layout::ObjectName, EngineError> {
    let bad = |why: &str| {
        EngineError::invalid(
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
        assert!(refuse_selector(Some(&"s".to_owned())).is_err());
        assert!(parse_window(Some("2024-01-02T00:00:00Z"), Some("2024-01-01T00:00:00Z")).is_err());
        assert!(parse_window(Some("yesterday"), None)
            .expect_err("bad date")
            .to_string()
            .contains("startDate"));
    }
}
