//! Turning a batch into a durable, write-once object, and reading back an object that already exists.

use std::sync::Arc;
use std::time::Instant;

use bss_format::{checksum, Compression, FileSummary, RecordReader};
use bss_layout::index::IndexBuilder;
use bss_layout::ObjectName;

use crate::batch::Batch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

/// Part size of multipart uploads: above S3's 5 MiB minimum, small enough to keep memory flat.
const MULTIPART_PART_BYTES: usize = 8 << 20;

/// A batch encoded as stored bytes, with what its event needs.
pub struct EncodedFile {
    /// Stored (compressed) bytes.
    pub stored: Bytes,
    /// Size before compression.
    pub uncompressed_bytes: u64,
    /// Offsets, counts, timestamps.
    pub summary: FileSummary,
    /// `crc32c:…` of `stored`.
    pub checksum: String,
    /// The key-index sidecar of the object.
    pub index: Bytes,
    /// Hashes of its distinct keys, for the catalog.
    pub key_hashes: Vec<u64>,
}

/// Compresses a batch's lines and finishes its sidecar (CPU-bound: run it off the async workers).
pub fn encode(batch: &mut Batch, compression: Compression) -> EncodedFile {
    let stored = match compression {
        Compression::None => batch.shared_lines(),
        _ => Bytes::from(compression.compress(batch.lines())),
    };
    EncodedFile {
        checksum: checksum(&stored),
        uncompressed_bytes: batch.lines().len() as u64,
        stored,
        summary: batch.summary().clone(),
        key_hashes: batch.index().key_hashes(),
        index: Bytes::from(batch.index().finish()),
    }
}

/// Outcome of a write-once put.
pub enum PutOutcome {
    /// The object is now durable.
    Written,
    /// An object already has this name: written before a crash or by the previous owner.
    AlreadyExists,
}

/// Writes `stored` at `path` only if nothing is there yet.
///
/// Single puts use `PutMode::Create`, atomic on S3, GCS and local folders. Multipart uploads have no
/// conditional form in object_store, so a HEAD runs first: only a zombie writer racing between the HEAD
/// and the completion could then overwrite, which the rebalance protocol prevents.
pub async fn put_once(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    stored: Bytes,
    multipart_threshold_bytes: u64,
) -> Result<PutOutcome, object_store::Error> {
    if (stored.len() as u64) <= multipart_threshold_bytes {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        return match store
            .put_opts(path, PutPayload::from_bytes(stored), options)
            .await
        {
            Ok(_) => Ok(PutOutcome::Written),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(e),
        };
    }
    match store.head(path).await {
        Ok(_) => return Ok(PutOutcome::AlreadyExists),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
    for chunk in stored.chunks(MULTIPART_PART_BYTES) {
        writer.wait_for_capacity(2).await?;
        writer.write(chunk);
    }
    // On error `finish` aborts the upload, leaving no visible object.
    writer.finish().await?;
    Ok(PutOutcome::Written)
}

/// An existing object's content summary, for adopting it after a crash.
pub struct ExistingObject {
    /// Offsets, counts, timestamps.
    pub summary: FileSummary,
    /// Stored size.
    pub stored_bytes: u64,
    /// Size before compression.
    pub uncompressed_bytes: u64,
    /// `crc32c:…` of the stored bytes.
    pub checksum: String,
    /// Its key-index sidecar, rebuilt from its content.
    pub index: Bytes,
    /// Hashes of its distinct keys, for the catalog.
    pub key_hashes: Vec<u64>,
    /// The partitions its records belong to (one, for an object the storer wrote).
    pub partitions: Vec<i32>,
}

impl ExistingObject {
    /// Whether this is the object the storer writes at `name` for `partition`: that partition's
    /// records, starting at the name's first offset. Anything else at that name is foreign.
    pub fn continues(&self, name: &ObjectName, partition: i32) -> bool {
        self.summary.first_offset == name.first_offset
            && self.summary.last_offset >= self.summary.first_offset
            && self.partitions == [partition]
    }

    /// What the object holds, for an error message.
    pub fn describe(&self) -> String {
        format!(
            "{} records of partition(s) {:?}, offsets {}..={}",
            self.summary.records,
            self.partitions,
            self.summary.first_offset,
            self.summary.last_offset
        )
    }
}

/// Why an existing object could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The bucket failed.
    #[error(transparent)]
    Bucket(#[from] object_store::Error),
    /// The object does not decode.
    #[error("object {path} is corrupt: {reason}")]
    Corrupt {
        /// Object path.
        path: String,
        /// Decoder error.
        reason: String,
    },
}

/// Reads and decodes an existing object to learn its offsets. Objects are at most one file's size, so
/// the stored bytes are fetched whole; decoding streams.
pub async fn read_existing(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    name: &ObjectName,
) -> Result<ExistingObject, ReadBackError> {
    let stored = store.get(path).await?.bytes().await?;
    let compression = name.compression;
    let topic = name.topic.clone();
    let path_text = path.to_string();
    let corrupt = |reason: String| ReadBackError::Corrupt {
        path: path_text.clone(),
        reason,
    };
    let decoded = tokio::task::spawn_blocking(move || -> Result<ExistingObject, String> {
        let started = Instant::now();
        let plain = compression
            .decompress(&stored[..])
            .map_err(|e| e.to_string())?;
        let mut counter = CountingReader {
            inner: plain,
            count: 0,
        };
        let mut summary = FileSummary::default();
        let mut index = IndexBuilder::default();
        let mut partitions = Vec::new();
        for record in RecordReader::new(std::io::BufReader::new(&mut counter), Some(topic)) {
            let record = record.map_err(|e| e.to_string())?;
            if !partitions.contains(&record.partition) {
                partitions.push(record.partition);
            }
            summary.add(&record);
            index.add(record.offset, record.timestamp_ms, record.key.as_deref());
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "existing object decoded"
        );
        Ok(ExistingObject {
            stored_bytes: stored.len() as u64,
            uncompressed_bytes: counter.count,
            checksum: checksum(&stored),
            summary,
            key_hashes: index.key_hashes(),
            index: Bytes::from(index.finish()),
            partitions,
        })
    })
    .await
    .map_err(|e| corrupt(e.to_string()))?
    .map_err(corrupt)?;
    if decoded.summary.records == 0 {
        return Err(corrupt("it holds no records".into()));
    }
    Ok(decoded)
}

/// Counts the decompressed bytes read through it.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use bss_format::{encode_line, Record, TimestampType};
    use object_store::memory::InMemory;

    use super::*;

    fn batch(range: std::ops::Range<i64>) -> Batch {
        let now = std::time::Instant::now();
        let mut batch = Batch::new(now);
        for offset in range {
            let record = Record {
                topic: "t_x".into(),
                partition: 2,
                offset,
                timestamp_ms: Some(1_700_000_000_000 + offset),
                timestamp_type: TimestampType::CreateTime,
                key: Some(vec![0xff, offset as u8]),
                payload: Some(b"{\"v\":1}".to_vec()),
                headers: vec![],
            };
            let mut line = Vec::new();
            encode_line(&record, &mut line);
            batch.push(
                &line,
                offset,
                record.timestamp_ms,
                record.key.as_deref(),
                now,
            );
        }
        batch
    }

    #[tokio::test]
    async fn writes_once_then_reports_the_existing_object_and_reads_it_back() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let file = encode(&mut batch(5..25), Compression::Zstd);
        let name = ObjectName::for_batch(
            "f",
            "t_x",
            2,
            5,
            file.summary.first_timestamp_ms,
            Compression::Zstd,
        );
        let path = Path::from(name.path());
        assert!(matches!(
            put_once(&store, &path, file.stored.clone(), 16 << 20).await,
            Ok(PutOutcome::Written)
        ));
        let again = encode(&mut batch(5..8), Compression::Zstd);
        assert!(matches!(
            put_once(&store, &path, again.stored, 16 << 20).await,
            Ok(PutOutcome::AlreadyExists)
        ));
        let existing = read_existing(&store, &path, &name).await.expect("reads");
        // What is read back is what was built while the records arrived.
        assert_eq!(existing.summary, file.summary);
        assert_eq!(existing.index, file.index);
        assert_eq!(existing.uncompressed_bytes, file.uncompressed_bytes);
        assert_eq!(existing.checksum, file.checksum);
    }

    #[test]
    fn an_uncompressed_file_is_the_batch_s_lines_and_the_batch_still_splits_after_it() {
        let mut records = batch(5..25);
        let plain = records.lines().to_vec();
        let file = encode(&mut records, Compression::None);
        assert_eq!(file.stored, plain);
        assert_eq!(file.uncompressed_bytes, plain.len() as u64);
        // A retry after adopting an object that covers part of the batch reads the shared lines.
        let covered = records.split_off_through(9).expect("offsets 5..=9 covered");
        assert_eq!(covered.len(), 5);
        assert_eq!((records.first_offset(), records.len()), (10, 15));
        assert_eq!(records.records()[0].offset, 10);
    }

    #[tokio::test]
    async fn multipart_uploads_are_write_once_too() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let stored = Bytes::from(vec![7u8; 12 << 20]);
        let path = Path::from("f/big");
        assert!(matches!(
            put_once(&store, &path, stored.clone(), 5 << 20).await,
            Ok(PutOutcome::Written)
        ));
        assert_eq!(
            store
                .get(&path)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes"),
            stored
        );
        assert!(matches!(
            put_once(&store, &path, stored, 5 << 20).await,
            Ok(PutOutcome::AlreadyExists)
        ));
    }

    #[tokio::test]
    async fn a_corrupt_existing_object_is_reported_with_its_path() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let name = ObjectName::for_batch("f", "t", 0, 0, Some(0), Compression::Gzip);
        let path = Path::from(name.path());
        store
            .put(&path, PutPayload::from_static(b"not gzip"))
            .await
            .expect("put");
        let error = read_existing(&store, &path, &name)
            .await
            .err()
            .expect("corrupt");
        assert!(error.to_string().contains(&name.path()), "{error}");
    }
}
