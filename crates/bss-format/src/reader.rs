use std::io::{BufRead, Read};
use std::sync::Arc;

use crate::line::{decode_line_sharing_topic, LineError};
use crate::record::Record;

/// Why reading a file failed, with the 1-based line number where it happened.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader or decompressor failed (a truncated or corrupt object).
    #[error("line {line}: cannot read: {source}")]
    Io {
        /// Line being read.
        line: u64,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is longer than [`MAX_LINE_BYTES`]: no line this service writes is (a corrupt or
    /// hostile object, e.g. a small compressed object that expands to one huge line).
    #[error("line {line}: longer than {} MiB; not an archive line", MAX_LINE_BYTES >> 20)]
    TooLong {
        /// Offending line.
        line: u64,
    },
    /// The object holds more than the reader's byte limit once decompressed (a decompression bomb,
    /// or a limit set lower than the archive's files).
    #[error(
        "line {line}: more than {limit} bytes once decompressed; over the limit of one object"
    )]
    TooLarge {
        /// Line being read when the limit was passed.
        line: u64,
        /// The limit.
        limit: u64,
    },
    /// A line is not a valid record.
    #[error("line {line}: {source}")]
    Line {
        /// Offending line.
        line: u64,
        /// Cause.
        source: LineError,
    },
}

/// The longest line read back: a 10 MiB value whose every byte needs a 6-byte JSON escape still
/// fits; reading stops at this size, so a hostile object costs at most this much memory per reader.
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// Streams the records of one file, line by line: memory use is one line, whatever the file size.
///
/// Reads this crate's files and Mia-Platform's `.txt` files alike; blank lines are skipped.
pub struct RecordReader<R> {
    input: R,
    default_topic: Option<String>,
    /// The topic of the last record, shared with the next ones of the same topic.
    last_topic: Option<Arc<str>>,
    buffer: Vec<u8>,
    line: u64,
    failed: bool,
    /// Decompressed bytes still allowed.
    remaining: u64,
    limit: u64,
}

impl<R: BufRead> RecordReader<R> {
    /// `default_topic` fills in records whose line has no `topic` (Mia files: take it from the name).
    pub fn new(input: R, default_topic: Option<String>) -> Self {
        Self {
            input,
            default_topic,
            last_topic: None,
            buffer: Vec::with_capacity(4096),
            line: 0,
            failed: false,
            remaining: u64::MAX,
            limit: u64::MAX,
        }
    }

    /// Stops with [`ReadError::TooLarge`] once more than `limit` decompressed bytes were read.
    pub fn with_byte_limit(mut self, limit: u64) -> Self {
        self.remaining = limit;
        self.limit = limit;
        self
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        // After an error the position in the stream is meaningless: stop instead of guessing.
        if self.failed {
            return None;
        }
        loop {
            self.buffer.clear();
            self.line += 1;
            let cap = MAX_LINE_BYTES.min(self.remaining);
            let mut bounded = (&mut self.input).take(cap + 1);
            match bounded.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(read) if read as u64 > cap => {
                    self.failed = true;
                    self.buffer = Vec::new();
                    return Some(Err(if cap == MAX_LINE_BYTES {
                        ReadError::TooLong { line: self.line }
                    } else {
                        ReadError::TooLarge {
                            line: self.line,
                            limit: self.limit,
                        }
                    }));
                }
                Ok(read) => self.remaining -= read as u64,
                Err(source) => {
                    self.failed = true;
                    return Some(Err(ReadError::Io {
                        line: self.line,
                        source,
                    }));
                }
            }
            let trimmed = self.buffer.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let decoded = decode_line_sharing_topic(
                trimmed,
                self.default_topic.as_deref(),
                &mut self.last_topic,
            );
            if decoded.is_err() {
                self.failed = true;
            }
            return Some(decoded.map_err(|source| ReadError::Line {
                line: self.line,
                source,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_line, Compression, TimestampType};

    fn sample(offset: i64) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp_ms: Some(offset * 1000),
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{offset}").into_bytes()),
            payload: Some(vec![offset as u8, 0xff]),
            headers: vec![],
        }
    }

    #[test]
    fn streams_every_record_of_a_compressed_file() {
        let records: Vec<_> = (0..1000).map(sample).collect();
        let mut plain = Vec::new();
        records.iter().for_each(|r| encode_line(r, &mut plain));
        for c in Compression::ALL {
            let stored = c.compress(&plain);
            let reader = RecordReader::new(c.decompress(&stored[..]).expect("reader"), None);
            let back: Vec<_> = reader.collect::<Result<_, _>>().expect("reads");
            assert_eq!(back, records);
        }
    }

    #[test]
    fn an_object_over_the_byte_limit_is_refused_where_it_passes_it() {
        let records: Vec<_> = (0..100).map(sample).collect();
        let mut plain = Vec::new();
        records.iter().for_each(|r| encode_line(r, &mut plain));
        let whole = RecordReader::new(&plain[..], None).with_byte_limit(plain.len() as u64);
        assert_eq!(whole.count(), 100, "exactly at the limit is fine");
        let limit = plain.len() as u64 / 2;
        let results: Vec<_> = RecordReader::new(&plain[..], None)
            .with_byte_limit(limit)
            .collect();
        let (read, failed) = results.split_at(results.len() - 1);
        assert!(read.iter().all(|r| r.is_ok()) && read.len() < 100 && read.len() >= 49);
        assert!(
            matches!(failed[0], Err(ReadError::TooLarge { limit: l, .. }) if l == limit),
            "{:?}",
            failed[0]
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_refused_without_reading_it_whole() {
        // 8 KiB of zstd that expands to 80 MiB without a newline.
        let huge = vec![b'a'; 80 << 20];
        let stored = Compression::Zstd.compress(&huge);
        assert!(stored.len() < 16 << 10, "{}", stored.len());
        let mut reader = RecordReader::new(
            Compression::Zstd.decompress(&stored[..]).expect("reader"),
            None,
        );
        let error = reader.next().expect("an item").expect_err("too long");
        assert!(matches!(error, ReadError::TooLong { line: 1 }), "{error}");
        assert!(error.to_string().contains("longer than 64 MiB"), "{error}");
        assert!(reader.next().is_none(), "stops after the error");
    }

    #[test]
    fn reports_the_line_of_a_corrupt_record_and_stops() {
        let mut plain = Vec::new();
        encode_line(&sample(1), &mut plain);
        plain.extend_from_slice(b"\n{not json}\n");
        encode_line(&sample(2), &mut plain);
        let results: Vec<_> = RecordReader::new(&plain[..], None).collect();
        assert_eq!(results.len(), 2);
        let error = results[1].as_ref().expect_err("an error").to_string();
        assert!(error.starts_with("line 3:"), "{error}");
    }

    #[test]
    fn reports_a_truncated_compressed_file() {
        let mut plain = Vec::new();
        (0..100).for_each(|o| encode_line(&sample(o), &mut plain));
        let stored = Compression::Gzip.compress(&plain);
        let truncated = &stored[..stored.len() / 2];
        let reader = RecordReader::new(
            Compression::Gzip.decompress(truncated).expect("reader"),
            None,
        );
        assert!(reader.into_iter().any(|r| r.is_err()));
    }
}
