//! Archive records as Parquet: the query-ready copy beside the byte-exact archive.
//!
//! One file holds records of one topic-partition and one hour (the organizer decides which); this
//! crate only turns records into Parquet bytes and back. The schema is the same in every file, so a
//! whole prefix reads as one table, except for the typed JSON columns, which are inferred per file:
//!
//! | column | type | holds |
//! |---|---|---|
//! | `kafka` | struct | `topic`, `partition`, `offset`, `timestamp` (µs UTC, null outside years 1–9999), `timestamp_ms` (exact), `timestamp_type`, `key` (bytes), `headers` (list of `{key, value}` bytes, in order, duplicates and nulls kept), `tombstone` |
//! | `key` | string | the key when it is valid UTF-8 (null otherwise: see `kafka.key`) |
//! | `value` | string | the value when it is valid UTF-8 |
//! | `value_binary` | bytes | the value when it is not valid UTF-8 |
//! | one per top-level JSON field | bool / int64 / double / string | when values are JSON objects |
//!
//! Rows are sorted by key, so row-group statistics prune key filters, and `key` and `kafka.key`
//! carry Bloom filters for the keys that fall inside a row group's range.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use bss_format::{Header, Record, TimestampType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde_json::{Map, Value};

/// Columns of every file, before the typed JSON columns; a JSON field of the same name is written
/// as `value.<name>`.
pub const CORE_COLUMNS: [&str; 4] = ["kafka", "key", "value", "value_binary"];

/// JSON fields beyond this many (in name order) stay only in the raw `value`.
pub const MAX_TYPED_FIELDS: usize = 256;

/// Distinct JSON field names whose types are tracked per file; names past it count as untyped.
const MAX_TRACKED_FIELDS: usize = 4 * MAX_TYPED_FIELDS;

/// Microseconds of 9999-12-31T23:59:59.999Z: BigQuery's and Athena's largest timestamp.
const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_000;
/// Microseconds of 0001-01-01T00:00:00Z: the smallest.
const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000;

/// Why records could not be written or read as Parquet.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    /// The Arrow or Parquet library refused the data.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building the Arrow batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A file does not have this crate's schema.
    #[error("not a bss Parquet file: {0}")]
    Schema(String),
}

/// How files are written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Rows per row group: smaller groups prune key filters finer, larger ones compress better.
    pub row_group_rows: usize,
    /// zstd level of every column.
    pub zstd_level: i32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            row_group_rows: 65_536,
            zstd_level: 3,
        }
    }
}

/// A written file.
#[derive(Debug)]
pub struct Encoded {
    /// The Parquet file.
    pub bytes: Vec<u8>,
    /// Typed JSON columns written.
    pub typed_fields: usize,
    /// Top-level JSON fields left only in the raw value (over [`MAX_TYPED_FIELDS`], or whose
    /// column name would repeat another's).
    pub untyped_fields: usize,
}

/// Writes `records` as one Parquet file, sorted by key (then partition and offset).
pub fn encode(mut records: Vec<Record>, options: &WriteOptions) -> Result<Encoded, ColumnarError> {
    records.sort_by(|a, b| {
        (a.key.as_deref(), a.partition, a.offset).cmp(&(b.key.as_deref(), b.partition, b.offset))
    });
    // Two passes over the JSON values (types, then columns) instead of holding every parsed value:
    // parsed JSON takes several times the memory of its text.
    let typed = infer_fields(records.iter().filter_map(json_object));

    let mut fields: Vec<Field> = vec![
        Field::new("kafka", DataType::Struct(kafka_fields()), false),
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("value_binary", DataType::Binary, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(kafka_column(&records)?),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| text(r.key.as_deref())),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| text(r.payload.as_deref())),
        )),
        Arc::new(BinaryArray::from_iter(records.iter().map(|r| {
            r.payload
                .as_deref()
                .filter(|p| std::str::from_utf8(p).is_err())
        }))),
    ];
    for field in &typed.fields {
        fields.push(Field::new(&field.column, field.kind.data_type(), true));
    }
    columns.extend(typed_columns(&typed.fields, &records));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;

    // A Bloom filter sized for the distinct keys of one row group: the default (1M keys) would add
    // about a megabyte to every row group of a small file.
    let distinct_keys = 1 + records
        .windows(2)
        .filter(|pair| pair[0].key != pair[1].key)
        .count();
    let ndv = distinct_keys.min(options.row_group_rows) as u64;
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?))
        .set_max_row_group_size(options.row_group_rows.max(1))
        // Standard list and timestamp encodings, for Athena, BigQuery and Spark.
        .set_coerce_types(true);
    for path in [
        ColumnPath::from("key"),
        ColumnPath::new(vec!["kafka".into(), "key".into()]),
    ] {
        properties = properties
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_ndv(path.clone(), ndv)
            .set_column_bloom_filter_fpp(path, 0.01);
    }
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties.build()))?;
    writer.write(&batch)?;
    Ok(Encoded {
        bytes: writer.into_inner()?,
        typed_fields: typed.fields.len(),
        untyped_fields: typed.untyped,
    })
}

/// Reads the records of a file written by [`encode`], in file order (by key). The typed columns are
/// not read: every record is rebuilt from `kafka`, `value` and `value_binary`.
pub fn decode(bytes: Bytes) -> Result<Vec<Record>, ColumnarError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch?;
        let kafka = column(&batch, "kafka")?
            .as_struct_opt()
            .ok_or_else(|| wrong("kafka", "a struct"))?;
        let value = string_column(column(&batch, "value")?, "value")?;
        let value_binary = column(&batch, "value_binary")?
            .as_binary_opt::<i32>()
            .ok_or_else(|| wrong("value_binary", "binary"))?;
        let member = |name: &str| {
            kafka
                .column_by_name(name)
                .ok_or_else(|| ColumnarError::Schema(format!("column kafka.{name} is missing")))
        };
        let topic = string_column(member("topic")?, "kafka.topic")?;
        let partition = member("partition")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| wrong("kafka.partition", "int32"))?;
        let offset = member("offset")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| wrong("kafka.offset", "int64"))?;
        let timestamp_ms = member("timestamp_ms")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| wrong("kafka.timestamp_ms", "int64"))?;
        let timestamp_type = string_column(member("timestamp_type")?, "kafka.timestamp_type")?;
        let key = member("key")?
            .as_binary_opt::<i32>()
            .ok_or_else(|| wrong("kafka.key", "binary"))?;
        let tombstone = member("tombstone")?
            .as_boolean_opt()
            .ok_or_else(|| wrong("kafka.tombstone", "boolean"))?;
        let headers = member("headers")?
            .as_list_opt::<i32>()
            .ok_or_else(|| wrong("kafka.headers", "a list"))?;
        for row in 0..batch.num_rows() {
            let payload = if tombstone.value(row) {
                None
            } else if value.is_valid(row) {
                Some(value.value(row).as_bytes().to_vec())
            } else if value_binary.is_valid(row) {
                Some(value_binary.value(row).to_vec())
            } else {
                return Err(ColumnarError::Schema(format!(
                    "row {row} is not a tombstone but has neither `value` nor `value_binary`"
                )));
            };
            records.push(Record {
                topic: Arc::from(topic.value(row)),
                partition: partition.value(row),
                offset: offset.value(row),
                timestamp_ms: timestamp_ms.is_valid(row).then(|| timestamp_ms.value(row)),
                timestamp_type: match timestamp_type.value(row) {
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => TimestampType::CreateTime,
                },
                key: key.is_valid(row).then(|| key.value(row).to_vec()),
                payload,
                headers: decode_headers(&headers.value(row))?,
            });
        }
    }
    Ok(records)
}

/// The Hive-style directory of a topic's hour: `topic=<t>/date=<yyyy-mm-dd>/hour=<hh>`. Records
/// without a timestamp, or with one outside 1970–9999, go to the nearest end of that range (as in
/// archive object names).
pub fn hour_directory(topic: &str, timestamp_ms: Option<i64>) -> String {
    let ms = timestamp_ms.unwrap_or(0).clamp(0, MAX_TIMESTAMP_US / 1000);
    let time = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    format!(
        "topic={topic}/date={}/hour={}",
        time.format("%Y-%m-%d"),
        time.format("%H")
    )
}

fn kafka_fields() -> Fields {
    Fields::from(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("timestamp_ms", DataType::Int64, true),
        Field::new("timestamp_type", DataType::Utf8, false),
        Field::new("key", DataType::Binary, true),
        Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(header_fields()),
                false,
            ))),
            false,
        ),
        Field::new("tombstone", DataType::Boolean, false),
    ])
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, true),
    ])
}

fn kafka_column(records: &[Record]) -> Result<StructArray, ColumnarError> {
    let timestamps: TimestampMicrosecondArray = records
        .iter()
        .map(|r| {
            r.timestamp_ms
                .and_then(|ms| ms.checked_mul(1000))
                .filter(|us| (MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(us))
        })
        .collect();
    let header_count: usize = records.iter().map(|r| r.headers.len()).sum();
    let mut header_keys = Vec::with_capacity(header_count);
    let mut header_values = Vec::with_capacity(header_count);
    for header in records.iter().flat_map(|r| &r.headers) {
        header_keys.push(Some(header.key.as_slice()));
        header_values.push(header.value.as_deref());
    }
    let headers = StructArray::try_new(
        header_fields(),
        vec![
            Arc::new(BinaryArray::from(header_keys)),
            Arc::new(BinaryArray::from(header_values)),
        ],
        None,
    )?;
    let headers = ListArray::try_new(
        Arc::new(Field::new(
            "element",
            DataType::Struct(header_fields()),
            false,
        )),
        OffsetBuffer::from_lengths(records.iter().map(|r| r.headers.len())),
        Arc::new(headers),
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| &*r.topic),
        )),
        Arc::new(Int32Array::from_iter_values(
            records.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.offset),
        )),
        Arc::new(timestamps.with_timezone("UTC")),
        Arc::new(Int64Array::from_iter(
            records.iter().map(|r| r.timestamp_ms),
        )),
        Arc::new(StringArray::from_iter_values(records.iter().map(
            |r| match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            },
        ))),
        Arc::new(BinaryArray::from_iter(
            records.iter().map(|r| r.key.as_deref()),
        )),
        Arc::new(headers),
        Arc::new(BooleanArray::from_iter(
            records.iter().map(|r| Some(r.payload.is_none())),
        )),
    ];
    Ok(StructArray::try_new(kafka_fields(), columns, None)?)
}

fn decode_headers(list: &ArrayRef) -> Result<Vec<Header>, ColumnarError> {
    let headers = list
        .as_struct_opt()
        .ok_or_else(|| wrong("kafka.headers", "a list of structs"))?;
    let binary = |name: &str| {
        headers
            .column_by_name(name)
            .and_then(|c| c.as_binary_opt::<i32>())
            .ok_or_else(|| wrong("kafka.headers", "{key, value} binary pairs"))
    };
    let (keys, values) = (binary("key")?, binary("value")?);
    Ok((0..headers.len())
        .map(|i| Header {
            key: keys.value(i).to_vec(),
            value: values.is_valid(i).then(|| values.value(i).to_vec()),
        })
        .collect())
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ColumnarError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ColumnarError::Schema(format!("column {name} is missing")))
}

fn string_column<'a>(array: &'a ArrayRef, name: &str) -> Result<&'a StringArray, ColumnarError> {
    array
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong(name, "a string"))
}

fn wrong(name: &str, expected: &str) -> ColumnarError {
    ColumnarError::Schema(format!("column {name} is not {expected}"))
}

fn text(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}

/// The value as a JSON object, when it is one.
fn json_object(record: &Record) -> Option<Map<String, Value>> {
    let payload = record.payload.as_deref()?;
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// The type of a top-level JSON field across a file's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Text,
    /// Nested objects and arrays, and fields whose values have different types: their JSON text.
    Json,
}

impl Kind {
    fn of(value: &Value) -> Option<Kind> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() => Kind::Int,
            // Past i64: a double would round it, the JSON text keeps it.
            Value::Number(n) if n.is_u64() => Kind::Json,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::Text,
            Value::Array(_) | Value::Object(_) => Kind::Json,
        })
    }

    fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => Kind::Json,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Text | Kind::Json => DataType::Utf8,
        }
    }
}

/// A typed column being built.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Bool => Self::Bool(BooleanBuilder::new()),
            Kind::Int => Self::Int(Int64Builder::new()),
            Kind::Float => Self::Float(Float64Builder::new()),
            Kind::Text | Kind::Json => Self::Text(StringBuilder::new()),
        }
    }

    fn append(&mut self, kind: Kind, value: Option<&Value>) {
        let value = value.filter(|v| !v.is_null());
        match self {
            Self::Bool(b) => b.append_option(value.and_then(Value::as_bool)),
            Self::Int(b) => b.append_option(value.and_then(Value::as_i64)),
            Self::Float(b) => b.append_option(value.and_then(Value::as_f64)),
            Self::Text(b) if kind == Kind::Text => b.append_option(value.and_then(Value::as_str)),
            Self::Text(b) => b.append_option(value.map(Value::to_string)),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Int(mut b) => Arc::new(b.finish()),
            Self::Float(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The typed columns of `fields`, parsing each record's value once more.
fn typed_columns(fields: &[TypedField], records: &[Record]) -> Vec<ArrayRef> {
    if fields.is_empty() {
        return Vec::new();
    }
    let mut builders: Vec<ColumnBuilder> =
        fields.iter().map(|f| ColumnBuilder::new(f.kind)).collect();
    for record in records {
        let object = json_object(record);
        for (field, builder) in fields.iter().zip(&mut builders) {
            builder.append(field.kind, object.as_ref().and_then(|o| o.get(&field.name)));
        }
    }
    builders.into_iter().map(ColumnBuilder::finish).collect()
}

struct TypedField {
    name: String,
    column: String,
    kind: Kind,
}

struct Typed {
    fields: Vec<TypedField>,
    untyped: usize,
}

/// The typed columns of a file: every top-level field of its JSON-object values, in name order.
/// Fields that are null in every value get no column (there is no type to give them).
fn infer_fields(objects: impl Iterator<Item = Map<String, Value>>) -> Typed {
    let mut kinds: BTreeMap<String, Option<Kind>> = BTreeMap::new();
    let mut untyped_names = std::collections::BTreeSet::new();
    for object in objects {
        for (name, value) in object {
            // Objects used as maps (ids as field names) would grow this without end.
            if kinds.len() >= MAX_TRACKED_FIELDS && !kinds.contains_key(&name) {
                untyped_names.insert(name);
                continue;
            }
            let seen = kinds.entry(name).or_default();
            let value = &value;
            *seen = match (*seen, Kind::of(value)) {
                (Some(a), Some(b)) => Some(a.merge(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let mut columns: Vec<String> = CORE_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let mut fields = Vec::new();
    let mut untyped = untyped_names.len().min(MAX_TRACKED_FIELDS);
    for (name, kind) in kinds {
        let Some(kind) = kind else { continue };
        let column = if name.is_empty() || CORE_COLUMNS.contains(&name.as_str()) {
            format!("value.{name}")
        } else {
            name.to_owned()
        };
        if fields.len() == MAX_TYPED_FIELDS || columns.contains(&column) {
            untyped += 1;
            continue;
        }
        columns.push(column.clone());
        fields.push(TypedField { name, column, kind });
    }
    Typed { fields, untyped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>) -> Record {
        Record {
            topic: Arc::from("orders"),
            partition: 2,
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            timestamp_type: TimestampType::CreateTime,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }

    fn sorted(mut records: Vec<Record>) -> Vec<Record> {
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }

    #[test]
    fn every_field_round_trips_whatever_its_bytes() {
        let mut odd = record(3, Some(&[0xff, 0x00, 0x80]), Some(&[0xc3, 0x28, 0x00]));
        odd.timestamp_type = TimestampType::LogAppendTime;
        odd.headers = vec![
            Header {
                key: b"trace".to_vec(),
                value: Some(b"a".to_vec()),
            },
            Header {
                key: b"trace".to_vec(),
                value: None,
            },
            Header {
                key: vec![0xfe],
                value: Some(Vec::new()),
            },
        ];
        let mut no_time = record(4, None, Some(b""));
        no_time.timestamp_ms = None;
        let mut far = record(5, Some(b"k"), None);
        far.timestamp_ms = Some(i64::MAX);
        let records = vec![
            record(1, Some(b"b"), Some(br#"{"id":1,"name":"x"}"#)),
            record(2, Some(b"a"), Some(b"not json")),
            odd,
            no_time,
            far,
        ];
        let encoded = encode(records.clone(), &WriteOptions::default()).expect("encodes");
        let decoded = decode(Bytes::from(encoded.bytes)).expect("decodes");
        assert_eq!(sorted(decoded), sorted(records));
    }

    #[test]
    fn rows_are_sorted_by_key_with_null_keys_first() {
        let records = vec![
            record(1, Some(b"b"), Some(b"1")),
            record(2, None, Some(b"2")),
            record(3, Some(b"a"), Some(b"3")),
            record(4, Some(b"b"), Some(b"4")),
        ];
        let encoded = encode(records, &WriteOptions::default()).expect("encodes");
        let offsets: Vec<i64> = decode(Bytes::from(encoded.bytes))
            .expect("decodes")
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, [2, 3, 1, 4]);
    }

    #[test]
    fn row_groups_carry_bloom_filters_on_the_key_columns_only() {
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let records = (0..10)
            .map(|i| record(i, Some(format!("k{i}").as_bytes()), Some(b"v")))
            .collect();
        let options = WriteOptions {
            row_group_rows: 4,
            ..WriteOptions::default()
        };
        let encoded = encode(records, &options).expect("encodes");
        let reader = SerializedFileReader::new(Bytes::from(encoded.bytes)).expect("parquet");
        let metadata = reader.metadata();
        assert_eq!(metadata.num_row_groups(), 3);
        for group in metadata.row_groups() {
            let with_filter: Vec<String> = group
                .columns()
                .iter()
                .filter(|c| c.bloom_filter_offset().is_some())
                .map(|c| c.column_path().string())
                .collect();
            assert_eq!(with_filter, ["kafka.key", "key"]);
        }
    }

    #[test]
    fn json_fields_get_types_merged_across_values() {
        let records: Vec<Record> = [
            r#"{"n": 1, "x": 1.5, "s": "a", "b": true, "mixed": 1, "nested": {"a": 1}, "key": 7, "none": null}"#,
            r#"{"n": 2, "x": 2, "s": "b", "b": false, "mixed": "one", "": 1}"#,
            "not an object",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| record(i as i64, None, Some(text.as_bytes())))
        .collect();
        let typed = infer_fields(records.iter().filter_map(json_object));
        let kinds: Vec<(&str, &str, Kind)> = typed
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.column.as_str(), f.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("", "value.", Kind::Int),
                ("b", "b", Kind::Bool),
                ("key", "value.key", Kind::Int),
                ("mixed", "mixed", Kind::Json),
                ("n", "n", Kind::Int),
                ("nested", "nested", Kind::Json),
                ("s", "s", Kind::Text),
                ("x", "x", Kind::Float),
            ]
        );
        let columns = typed_columns(&typed.fields, &records);
        let mixed = columns[3].as_string::<i32>();
        assert_eq!(mixed.value(0), "1");
        assert_eq!(mixed.value(1), "\"one\"");
        assert!(mixed.is_null(2));
    }

    #[test]
    fn too_many_or_clashing_fields_stay_in_the_raw_value() {
        let mut object = Map::new();
        for i in 0..MAX_TYPED_FIELDS + 3 {
            object.insert(format!("f{i:04}"), Value::from(i));
        }
        let typed = infer_fields([object].into_iter());
        assert_eq!(typed.fields.len(), MAX_TYPED_FIELDS);
        assert_eq!(typed.untyped, 3);

        // `key` is written as `value.key`, which then clashes with the field of that name.
        let clash: Map<String, Value> =
            serde_json::from_str(r#"{"key": 1, "value.key": 2}"#).expect("json");
        let typed = infer_fields([clash].into_iter());
        assert_eq!(typed.fields.len(), 1);
        assert_eq!(typed.untyped, 1);

        // Objects used as maps: names past the tracked ones are not kept in memory.
        let maps = (0..MAX_TRACKED_FIELDS as u64 + 10).map(|i| {
            let mut map = Map::new();
            map.insert(format!("id-{i:06}"), Value::from(i));
            map
        });
        let typed = infer_fields(maps);
        assert_eq!(typed.fields.len(), MAX_TYPED_FIELDS);
        assert_eq!(typed.untyped, MAX_TRACKED_FIELDS - MAX_TYPED_FIELDS + 10);
    }

    #[test]
    fn a_file_of_another_shape_is_refused_with_the_missing_column() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .expect("batch");
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).expect("writer");
        writer.write(&batch).expect("write");
        let bytes = writer.into_inner().expect("close");
        let error = decode(Bytes::from(bytes)).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "not a bss Parquet file: column kafka is missing"
        );
        assert!(decode(Bytes::from_static(b"PAR1 not parquet")).is_err());
    }

    #[test]
    fn hour_directories_are_utc_and_clamped() {
        assert_eq!(
            hour_directory("t", Some(1_700_000_000_000)),
            "topic=t/date=2023-11-14/hour=22"
        );
        assert_eq!(hour_directory("t", None), "topic=t/date=1970-01-01/hour=00");
        assert_eq!(
            hour_directory("t", Some(i64::MAX)),
            "topic=t/date=9999-12-31/hour=23"
        );
    }
}
