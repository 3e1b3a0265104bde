//! One record ⇄ one JSON line.
//!
//! Text fields hold the raw Kafka bytes when they are valid UTF-8 (so a JSON payload is readable and
//! greppable, and Mia-Platform readers see what they expect); otherwise they hold standard base64 and a
//! sibling `…Encoding: "base64"` marker says so. A JSON `null` is a null key, a tombstone payload, or a
//! null header value. Nothing is lost in either direction.

use base64::engine::general_purpose::STANDARD as BASE64;
use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;

use crate::record::{Header, Record, TimestampType};
use crate::time::{is_iso_representable, parse_iso_ms, write_iso_ms};

const BASE64_ENCODING: &str = "base64";

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not a JSON object with the required fields (`partition`, `offset`).
    #[error("not a valid archive line: {0}")]
    Json(#[from] serde_json::Error),
    /// `timestamp` is neither an ISO-8601 date-time nor epoch milliseconds.
    #[error("field `timestamp` is not an ISO-8601 date-time: {0:?}")]
    Timestamp(String),
    /// A field marked as base64 does not hold valid base64.
    #[error("field `{field}` is marked base64 but is not valid base64")]
    Base64 {
        /// The offending field.
        field: &'static str,
    },
    /// An `…Encoding` marker names an encoding this version does not know.
    #[error("field `{field}` has unknown encoding {value:?} (known: \"base64\")")]
    UnknownEncoding {
        /// The offending marker field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The line has no topic and the caller gave none (Mia files store it only in the name).
    #[error("line has no `topic` and none was given by the file name")]
    MissingTopic,
}

/// Appends a JSON string literal of `text` (quotes and escapes included).
fn write_json_str(text: &str, out: &mut Vec<u8>) {
    // serde_json's string serializer has the fast escaping path; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, text).expect("writing into memory");
}

fn write_integer(value: impl serde::Serialize, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, &value).expect("writing into memory");
}

/// Appends bytes as a JSON string (text) or base64; returns whether base64 was used.
fn write_bytes(bytes: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
    match bytes {
        None => {
            out.extend_from_slice(b"null");
            false
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                write_json_str(text, out);
                false
            }
            Err(_) => {
                out.push(b'"');
                let start = out.len();
                out.resize(
                    start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
                    0,
                );
                let written = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
                out.truncate(start + written);
                out.push(b'"');
                true
            }
        },
    }
}

/// A record's fields borrowed from wherever they live: a consumed Kafka message (the storer encodes
/// straight from it, copying nothing per record) or a [`Record`].
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a, H> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp, if any.
    pub timestamp_ms: Option<i64>,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Key bytes; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value bytes; `None` for a tombstone.
    pub payload: Option<&'a [u8]>,
    /// Headers in order, as (key, value) pairs; a `None` value is a null header value.
    pub headers: H,
}

impl Record {
    /// This record's fields, borrowed.
    pub fn as_ref(&self) -> RecordRef<'_, impl Iterator<Item = (&[u8], Option<&[u8]>)>> {
        RecordRef {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            timestamp_type: self.timestamp_type,
            key: self.key.as_deref(),
            payload: self.payload.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|h| (h.key.as_slice(), h.value.as_deref())),
        }
    }
}

/// Appends `record` to `out` as one JSON line, newline included.
pub fn encode_line(record: &Record, out: &mut Vec<u8>) {
    encode_line_ref(record.as_ref(), out);
}

/// Appends a borrowed record to `out` as one JSON line, newline included. Written by hand, field by
/// field, so that encoding allocates nothing per record (the storer encodes every record it archives).
pub fn encode_line_ref<'a>(
    record: RecordRef<'a, impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"timestamp\":");
    match record.timestamp_ms {
        Some(ms) if is_iso_representable(ms) => {
            out.push(b'"');
            write_iso_ms(ms, out);
            out.push(b'"');
        }
        // Kafka allows any i64; text can only say years 0..=9999, so keep the exact number instead.
        Some(ms) => write_integer(ms, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"partition\":");
    write_integer(record.partition, out);
    out.extend_from_slice(b",\"offset\":");
    write_integer(record.offset, out);
    out.extend_from_slice(b",\"key\":");
    let key_base64 = write_bytes(record.key, out);
    out.extend_from_slice(b",\"payload\":");
    let payload_base64 = write_bytes(record.payload, out);
    out.extend_from_slice(b",\"topic\":");
    write_json_str(record.topic, out);
    out.extend_from_slice(b",\"headers\":[");
    for (index, (key, value)) in record.headers.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        let header_key_base64 = write_bytes(Some(key), out);
        out.extend_from_slice(b",\"value\":");
        if write_bytes(value, out) {
            out.extend_from_slice(b",\"encoding\":\"base64\"");
        }
        if header_key_base64 {
            out.extend_from_slice(b",\"keyEncoding\":\"base64\"");
        }
        out.push(b'}');
    }
    out.push(b']');
    if key_base64 {
        out.extend_from_slice(b",\"keyEncoding\":\"base64\"");
    }
    if payload_base64 {
        out.extend_from_slice(b",\"payloadEncoding\":\"base64\"");
    }
    if record.timestamp_type == TimestampType::LogAppendTime {
        out.extend_from_slice(b",\"timestampType\":\"LogAppendTime\"");
    }
    out.extend_from_slice(b"}\n");
}

// Fields that never hold escapes in practice (timestamps, topic names, markers) are borrowed from
// the line when they can be: decoding is the reloader's main per-record cost.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineIn<'a> {
    #[serde(default, borrow)]
    timestamp: Option<TimestampIn<'a>>,
    partition: i32,
    offset: i64,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default, borrow)]
    topic: Option<Cow<'a, str>>,
    #[serde(default)]
    headers: Vec<HeaderIn<'a>>,
    #[serde(default, borrow)]
    key_encoding: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload_encoding: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeaderIn<'a> {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, borrow)]
    encoding: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    key_encoding: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimestampIn<'a> {
    #[serde(borrow)]
    Iso(Cow<'a, str>),
    EpochMs(i64),
}

fn decode_bytes(
    text: Option<String>,
    encoding: Option<Cow<'_, str>>,
    field: &'static str,
    marker: &'static str,
) -> Result<Option<Vec<u8>>, LineError> {
    match (text, encoding.as_deref()) {
        (None, _) => Ok(None),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (Some(text), Some(BASE64_ENCODING)) => BASE64
            .decode(text.as_bytes())
            .map(Some)
            .map_err(|_| LineError::Base64 { field }),
        (Some(_), Some(other)) => Err(LineError::UnknownEncoding {
            field: marker,
            value: other.to_owned(),
        }),
    }
}

/// Decodes one line (without its newline). `default_topic` is used when the line has no `topic`
/// field, as in Mia-Platform files, where the topic is only in the object name.
pub fn decode_line(line: &[u8], default_topic: Option<&str>) -> Result<Record, LineError> {
    decode_line_sharing_topic(line, default_topic, &mut None)
}

/// [`decode_line`] for a reader of many lines: the topic's `Arc` is shared with the previous record
/// of the same topic (kept in `last_topic`) instead of allocated for every record.
pub(crate) fn decode_line_sharing_topic(
    line: &[u8],
    default_topic: Option<&str>,
    last_topic: &mut Option<Arc<str>>,
) -> Result<Record, LineError> {
    let parsed: LineIn<'_> = serde_json::from_slice(line)?;
    let timestamp_ms = match parsed.timestamp {
        None => None,
        Some(TimestampIn::EpochMs(ms)) => Some(ms),
        Some(TimestampIn::Iso(text)) => {
            Some(parse_iso_ms(&text).ok_or_else(|| LineError::Timestamp(text.into_owned()))?)
        }
    };
    let timestamp_type = match parsed.timestamp_type.as_deref() {
        Some("LogAppendTime") => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    let name = match &parsed.topic {
        Some(topic) => topic.as_ref(),
        None => default_topic.ok_or(LineError::MissingTopic)?,
    };
    let topic = match last_topic {
        Some(last) if **last == *name => Arc::clone(last),
        _ => Arc::clone(last_topic.insert(name.into())),
    };
    let headers = parsed
        .headers
        .into_iter()
        .map(|h| {
            Ok(Header {
                key: decode_bytes(
                    Some(h.key),
                    h.key_encoding,
                    "headers.key",
                    "headers.keyEncoding",
                )?
                .unwrap_or_default(),
                value: decode_bytes(h.value, h.encoding, "headers.value", "headers.encoding")?,
            })
        })
        .collect::<Result<_, LineError>>()?;
    Ok(Record {
        topic,
        partition: parsed.partition,
        offset: parsed.offset,
        timestamp_ms,
        timestamp_type,
        key: decode_bytes(parsed.key, parsed.key_encoding, "key", "keyEncoding")?,
        payload: decode_bytes(
            parsed.payload,
            parsed.payload_encoding,
            "payload",
            "payloadEncoding",
        )?,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&[u8]>, payload: Option<&[u8]>, headers: Vec<Header>) -> Record {
        Record {
            topic: "orders.ingestion".into(),
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_668_432_397_728),
            timestamp_type: TimestampType::CreateTime,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            headers,
        }
    }

    fn round_trip(r: &Record) -> Record {
        let mut out = Vec::new();
        encode_line(r, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        decode_line(&out[..out.len() - 1], None).expect("decodes")
    }

    #[test]
    fn escaped_text_in_borrowed_fields_decodes_and_topics_are_shared() {
        // Escapes force an owned copy of a field that is normally borrowed from the line.
        let line = br#"{"timestamp":"2026-12-03T10:00:00.000\u005a","partition":1,"offset":7,"key":null,"payload":"v","topic":"t\u005fx","headers":[{"key":"h","value":"1","encoding":null}],"timestampType":"LogAppend\u0054ime"}"#;
        let mut last = None;
        let first = decode_line_sharing_topic(line, None, &mut last).expect("decodes");
        assert_eq!(&*first.topic, "t_x");
        assert_eq!(first.timestamp_ms, Some(1_796_292_000_000));
        assert_eq!(first.timestamp_type, TimestampType::LogAppendTime);
        let second = decode_line_sharing_topic(line, None, &mut last).expect("decodes");
        assert!(Arc::ptr_eq(&first.topic, &second.topic));
        let other = br#"{"partition":1,"offset":8,"topic":"other"}"#;
        assert_eq!(
            &*decode_line_sharing_topic(other, None, &mut last)
                .expect("decodes")
                .topic,
            "other"
        );
    }

    #[test]
    fn text_record_is_readable_and_carries_mia_fields_first() {
        let r = record(
            Some(b"{\"id\":1}"),
            Some(b"{\"name\":\"pizza\"}"),
            vec![Header {
                key: "source".into(),
                value: Some(b"cdc".to_vec()),
            }],
        );
        let mut out = Vec::new();
        encode_line(&r, &mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "{\"timestamp\":\"2022-11-14T13:26:37.728Z\",\"partition\":3,\"offset\":42,\
             \"key\":\"{\\\"id\\\":1}\",\"payload\":\"{\\\"name\\\":\\\"pizza\\\"}\",\
             \"topic\":\"orders.ingestion\",\"headers\":[{\"key\":\"source\",\"value\":\"cdc\"}]}\n"
        );
        assert_eq!(round_trip(&r), r);
    }

    #[test]
    fn binary_null_and_tombstone_round_trip_byte_for_byte() {
        let binary = [0u8, 1, 2, 0xff, 0xfe, b'\n', b'"'];
        let cases = vec![
            record(None, None, vec![]),
            record(Some(&binary), Some(&binary), vec![]),
            record(Some(b""), Some(b""), vec![]),
            record(
                Some(b"k"),
                None,
                vec![
                    Header {
                        key: "bin".into(),
                        value: Some(binary.to_vec()),
                    },
                    Header {
                        key: "null".into(),
                        value: None,
                    },
                    Header {
                        key: "bin".into(),
                        value: Some(b"dup".to_vec()),
                    },
                    // Header keys are bytes on the wire: not UTF-8, a NUL, empty.
                    Header {
                        key: vec![0xff, 0xfe, b'k'],
                        value: Some(b"v".to_vec()),
                    },
                    Header {
                        key: b"a\0b".to_vec(),
                        value: None,
                    },
                    Header {
                        key: Vec::new(),
                        value: Some(Vec::new()),
                    },
                ],
            ),
        ];
        for r in cases {
            assert_eq!(round_trip(&r), r);
        }
    }

    #[test]
    fn missing_timestamp_and_log_append_time_round_trip() {
        let mut r = record(Some(b"k"), Some(b"v"), vec![]);
        r.timestamp_ms = None;
        assert_eq!(round_trip(&r), r);
        // Any i64 Kafka allows: year 55840 (microseconds sent as milliseconds), before year 0, -1.
        for ms in [
            1_700_000_000_000_000,
            i64::MAX,
            i64::MIN,
            -62_200_000_000_000,
            -1,
            -5,
        ] {
            r.timestamp_ms = Some(ms);
            assert_eq!(round_trip(&r), r, "{ms}");
        }
        r.timestamp_ms = Some(5);
        r.timestamp_type = TimestampType::LogAppendTime;
        assert_eq!(round_trip(&r), r);
    }

    #[test]
    fn decodes_a_mia_platform_line_with_the_topic_from_the_name() {
        let line = br#"{"timestamp":"2023-06-23T09:10:00.702Z","partition":0,"offset":5,"key":"{\"id\":\"a\"}","payload":"{\"v\":1}"}"#;
        let r = decode_line(line, Some("demo.registry.ingestion")).expect("decodes");
        assert_eq!(&*r.topic, "demo.registry.ingestion");
        assert_eq!(r.offset, 5);
        assert_eq!(r.key.as_deref(), Some(&br#"{"id":"a"}"#[..]));
        assert_eq!(r.payload.as_deref(), Some(&br#"{"v":1}"#[..]));
        assert!(r.headers.is_empty());
        assert!(matches!(
            decode_line(line, None),
            Err(LineError::MissingTopic)
        ));
    }

    #[test]
    fn rejects_bad_lines_with_the_field_named() {
        let bad_ts = br#"{"timestamp":"noon","partition":0,"offset":1,"topic":"t"}"#;
        assert!(decode_line(bad_ts, None)
            .expect_err("an error")
            .to_string()
            .contains("timestamp"));
        let bad_b64 =
            br#"{"partition":0,"offset":1,"topic":"t","key":"***","keyEncoding":"base64"}"#;
        assert!(decode_line(bad_b64, None)
            .expect_err("an error")
            .to_string()
            .contains("`key`"));
        let unknown =
            br#"{"partition":0,"offset":1,"topic":"t","payload":"x","payloadEncoding":"hex"}"#;
        assert!(decode_line(unknown, None)
            .expect_err("an error")
            .to_string()
            .contains("payloadEncoding"));
        assert!(decode_line(b"{\"offset\":1}", None).is_err());
    }
}
