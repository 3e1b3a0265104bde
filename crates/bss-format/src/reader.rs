use std::io::BufRead;

use crate::line::{decode_line, LineError};
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
    /// A line is not a valid record.
    #[error("line {line}: {source}")]
    Line {
        /// Offending line.
        line: u64,
        /// Cause.
        source: LineError,
    },
}

/// Streams the records of one file, line by line: memory use is one line, whatever the file size.
///
/// Reads this crate's files and Mia-Platform's `.txt` files alike; blank lines are skipped.
pub struct RecordReader<R> {
    input: R,
    default_topic: Option<String>,
    buffer: Vec<u8>,
    line: u64,
    failed: bool,
}

impl<R: BufRead> RecordReader<R> {
    /// `default_topic` fills in records whose line has no `topic` (Mia files: take it from the name).
    pub fn new(input: R, default_topic: Option<String>) -> Self {
        Self {
            input,
            default_topic,
            buffer: Vec::with_capacity(4096),
            line: 0,
            failed: false,
        }
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
            match self.input.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
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
            let decoded = decode_line(trimmed, self.default_topic.as_deref());
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
