//! The archive's record model and its file format, "bss-jsonl" version 1 (see `docs/file-format.md`).
//!
//! A file is JSON Lines: one Kafka record per line, optionally compressed as a whole (gzip or zstd).
//! Each line carries Mia-Platform's five fields (`timestamp`, `partition`, `offset`, `key`, `payload`) so
//! that files stay readable by tools written for Mia's Ingestion Storer, plus `topic`, `headers` and the
//! few markers needed to round-trip any record byte for byte (binary keys/values, nulls, timestamp type).
//!
//! This crate does no I/O of its own: it encodes into buffers and decodes from any [`std::io::BufRead`],
//! so the same code serves the storer, the reloader and offline tools, and is unit-testable.
#![warn(missing_docs)]

mod compression;
mod line;
mod reader;
mod record;
mod summary;
pub mod time;

pub use compression::{Compression, Compressor, UnknownCompression};
pub use line::{decode_line, encode_line, encode_line_ref, LineError, RecordRef};
pub use reader::{ReadError, RecordReader};
pub use record::{Header, Record, TimestampType};
pub use summary::{checksum, FileSummary};

/// Version of the line format written by this crate; carried by "file written" events. Version 2 added
/// base64 header keys (`headers[].keyEncoding`) and numeric timestamps outside years 0..=9999; this
/// crate reads both versions.
pub const FORMAT_VERSION: u32 = 2;
