//! Reading the archive, shared by the reloader and the `bss` tool: selecting the objects of a time window
//! or a key (from the catalog, or by listing the folder and reading the key-index sidecars when the
//! folder has no complete catalog), and streaming an object's records.
#![warn(missing_docs)]

pub mod erase;

use std::collections::BTreeMap;
use std::sync::Arc;

use bss_catalog::{Catalog, CatalogError, ReadCost};
use bss_format::{Record, RecordReader};
use bss_layout::catalog::CatalogEntry;
use bss_layout::index::{block_may_contain, index_path, IndexBuilder, IndexHeader, HEADER_BYTES};
use bss_layout::ObjectName;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

pub use bss_layout::Selection;

/// Told about every read, so a service can count GETs and bytes (the reloader exports them).
pub trait ReadObserver: Send + Sync {
    /// A GET of a whole object (`ok`) or its failure, with the bytes received.
    fn object_read(&self, _ok: bool, _bytes: u64) {}
    /// A ranged GET of a sidecar.
    fn index_read(&self, _bytes: u64) {}
    /// A selection answered from the catalog, at this cost.
    fn catalog_read(&self, _cost: &ReadCost) {}
    /// A selection in a folder without a complete catalog: the folder was listed.
    fn listing_fallback(&self, _folder: &str) {}
}

/// Observes nothing.
pub struct NoObserver;
impl ReadObserver for NoObserver {}

/// Sidecar checks run concurrently: each is one small ranged GET, latency-bound.
const PRUNE_CONCURRENCY: usize = 16;

/// One archived object.
#[derive(Debug, Clone)]
pub struct ArchivedObject {
    /// Path in the bucket.
    pub path: Path,
    /// Parsed name.
    pub name: ObjectName,
    /// Stored size.
    pub size: u64,
}

/// Why the archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The object does not exist.
    #[error("object {0} does not exist")]
    NotFound(String),
    /// The bucket failed.
    #[error("bucket error: {0}")]
    Bucket(#[from] object_store::Error),
    /// The catalog cannot be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The operation needs the folder's complete catalog (`bss catalog rebuild` makes it).
    #[error("folder {0:?} has no complete catalog: run `bss catalog rebuild` first")]
    NoCatalog(String),
    /// The object does not decode.
    #[error("object {path} is corrupt: {reason}")]
    Corrupt {
        /// Object path.
        path: String,
        /// Decoder error with its line.
        reason: String,
    },
}

/// Records are handed over in chunks of this many, so memory stays flat whatever the object size.
const RECORDS_PER_CHUNK: usize = 1000;
/// Bytes (keys, values, headers) after which a chunk is handed over even when it holds fewer
/// records: a reader holds a few chunks of an object at most, so large records stay bounded too.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Read access to the archive.
#[derive(Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    observer: Arc<dyn ReadObserver>,
    max_object_bytes: u64,
}

/// The default cap of one object read back, stored or decompressed: far above any file the storer
/// writes (`bss.max-bytes-per-file`, 8 MiB by default), far below what would exhaust a pod.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 4 << 30;

impl Archive {
    /// Wraps a store; `observer` is told about every read.
    pub fn new(store: Arc<dyn ObjectStore>, observer: Arc<dyn ReadObserver>) -> Self {
        Self {
            store,
            observer,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }

    /// Refuses (as corrupt) objects larger than `limit` bytes, stored or once decompressed.
    pub fn with_max_object_bytes(mut self, limit: u64) -> Self {
        self.max_object_bytes = limit;
        self
    }

    /// The store (jobs are kept in it too).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Every object directly in `folder`, sorted by name.
    pub async fn list(&self, folder: &str) -> Result<Vec<ArchivedObject>, ArchiveError> {
        Ok(self.list_with_strays(folder).await?.0)
    }

    /// Every object directly in `folder`, sorted by name, and the other files directly in it with
    /// why their names are not archive names (readers never select those).
    pub async fn list_with_strays(
        &self,
        folder: &str,
    ) -> Result<(Vec<ArchivedObject>, Vec<(String, String)>), ArchiveError> {
        let prefix = Path::from(folder);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut objects = Vec::new();
        let mut strays = Vec::new();
        for meta in metas {
            let path = meta.location.as_ref();
            let directly_inside = path
                .strip_prefix(folder)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|file| !file.contains('/'));
            if !directly_inside {
                continue;
            }
            match ObjectName::parse(path) {
                Ok(name) => objects.push(ArchivedObject {
                    path: meta.location,
                    name,
                    size: meta.size,
                }),
                Err(e) => strays.push((path.to_owned(), e.to_string())),
            }
        }
        // Local folders list in directory order; S3 and GCS sort already.
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((objects, strays))
    }

    /// The objects of `folder` that may hold selected records: in the window (inclusive, either
    /// open, by each object's real smallest and largest timestamps, whatever its name says), with the
    /// key, of the partition and in the offset range; grouped by source partition, each group in
    /// offset order.
    ///
    /// From the catalog when the folder's catalog is complete: no listing of data objects, a few
    /// segment reads. Otherwise (archives written before the catalog, or by Mia-Platform's storer)
    /// the folder is listed and each object's sidecar read, which the observer and a log line report.
    pub async fn select(
        &self,
        folder: &str,
        selection: &Selection,
    ) -> Result<BTreeMap<i32, Vec<ArchivedObject>>, ArchiveError> {
        let catalog = Catalog::new(Arc::clone(&self.store));
        if !catalog.is_complete(folder).await? {
            tracing::warn!(
                folder,
                "this folder has no complete catalog: listing its objects (slow on a large archive; run `bss catalog rebuild`)"
            );
            self.observer.listing_fallback(folder);
            let retention = catalog.retention(folder).await?;
            let listed: Vec<ArchivedObject> = self
                .list(folder)
                .await?
                .into_iter()
                .filter(|o| retention.keeps(&o.name.topic, o.name.partition, o.name.first_offset))
                .collect();
            return self.prune(&listed, selection).await;
        }
        let (entries, cost) = catalog.select(folder, selection).await?;
        self.observer.catalog_read(&cost);
        let objects = entries
            .into_iter()
            .map(|entry| {
                let name = ObjectName::parse(&entry.path).map_err(|e| ArchiveError::Corrupt {
                    path: format!("catalog of {folder}"),
                    reason: e.to_string(),
                })?;
                Ok(ArchivedObject {
                    path: Path::from(entry.path),
                    name,
                    size: entry.bytes,
                })
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        Ok(by_partition(objects))
    }

    /// Whether `folder` holds any archive object: one LIST page of its catalog when the catalog is
    /// complete, else the folder's listing up to its first object.
    pub async fn has_objects(&self, folder: &str) -> Result<bool, ArchiveError> {
        let catalog = Catalog::new(Arc::clone(&self.store));
        let prefix = if catalog.is_complete(folder).await? {
            Path::from(bss_layout::catalog::folder_prefix(folder))
        } else {
            Path::from(folder)
        };
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let path = meta?.location;
            let found = ObjectName::parse(path.as_ref()).is_ok_and(|n| n.folder == folder)
                || bss_layout::catalog::SegmentName::parse(path.as_ref()).is_some();
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One object by its full path.
    pub async fn object(&self, path: &str) -> Result<ArchivedObject, ArchiveError> {
        let name = ObjectName::parse(path).map_err(|_| ArchiveError::NotFound(path.to_owned()))?;
        let location = Path::from(path);
        match self.store.head(&location).await {
            Ok(meta) => Ok(ArchivedObject {
                path: location,
                name,
                size: meta.size,
            }),
            Err(object_store::Error::NotFound { .. }) => {
                Err(ArchiveError::NotFound(path.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The sidecar header of an object; `None` when it has none (then it is a candidate for anything).
    pub async fn index_header(
        &self,
        object: &ArchivedObject,
    ) -> Result<Option<IndexHeader>, ArchiveError> {
        let path = Path::from(index_path(object.path.as_ref()));
        match self.store.get_range(&path, 0..HEADER_BYTES).await {
            Ok(bytes) => {
                self.observer.index_read(bytes.len() as u64);
                Ok(IndexHeader::parse(&bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the object may hold `key`: reads its sidecar header and the one filter block of the key.
    pub async fn may_hold_key(
        &self,
        object: &ArchivedObject,
        key: &[u8],
    ) -> Result<bool, ArchiveError> {
        let Some(header) = self.index_header(object).await? else {
            return Ok(true);
        };
        let Some(range) = header.block_range(key) else {
            return Ok(false);
        };
        let path = Path::from(index_path(object.path.as_ref()));
        let block = self.store.get_range(&path, range).await?;
        self.observer.index_read(block.len() as u64);
        Ok(block_may_contain(&block, key))
    }

    /// Streams the records of an object, in file order, in chunks. The stored bytes are fetched once;
    /// decoding runs on a blocking thread and never holds more than a few chunks of records.
    pub async fn read(
        &self,
        object: &ArchivedObject,
    ) -> Result<mpsc::Receiver<Result<Vec<Record>, ArchiveError>>, ArchiveError> {
        // The stored bytes are held in memory while decoding: refuse a huge object before fetching it.
        if object.size > self.max_object_bytes {
            return Err(ArchiveError::Corrupt {
                path: object.path.to_string(),
                reason: format!(
                    "{} bytes stored, over the limit of {} bytes per object",
                    object.size, self.max_object_bytes
                ),
            });
        }
        let fetched = match self.store.get(&object.path).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        let stored = match fetched {
            Ok(bytes) => {
                self.observer.object_read(true, bytes.len() as u64);
                bytes
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.observer.object_read(false, 0);
                return Err(ArchiveError::NotFound(object.path.to_string()));
            }
            Err(e) => {
                self.observer.object_read(false, 0);
                return Err(e.into());
            }
        };
        Ok(self.decode(object, stored))
    }

    /// Decodes stored bytes on a blocking thread, handing records over in chunks.
    fn decode(
        &self,
        object: &ArchivedObject,
        stored: bytes::Bytes,
    ) -> mpsc::Receiver<Result<Vec<Record>, ArchiveError>> {
        let (tx, rx) = mpsc::channel(2);
        let name = object.name.clone();
        let path = object.path.to_string();
        let limit = self.max_object_bytes;
        tokio::task::spawn_blocking(move || {
            let corrupt = |reason: String| ArchiveError::Corrupt {
                path: path.clone(),
                reason,
            };
            let reader = match name.compression.decompress(&stored[..]) {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = tx.blocking_send(Err(corrupt(e.to_string())));
                    return;
                }
            };
            let mut chunk = Vec::with_capacity(RECORDS_PER_CHUNK);
            let mut chunk_bytes = 0;
            let records =
                RecordReader::new(reader, Some(name.topic.clone())).with_byte_limit(limit);
            for record in records {
                match record {
                    Ok(record) => {
                        chunk_bytes += record.byte_size();
                        chunk.push(record);
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(corrupt(e.to_string())));
                        return;
                    }
                }
                if chunk.len() == RECORDS_PER_CHUNK || chunk_bytes >= CHUNK_BYTES {
                    chunk_bytes = 0;
                    if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.blocking_send(Ok(chunk));
            }
        });
        rx
    }

    /// Top-level folders of the bucket (the archive's own `.bss-*` prefixes excluded).
    pub async fn folders(&self) -> Result<Vec<String>, ArchiveError> {
        let listing = self.store.list_with_delimiter(None).await?;
        let mut folders: Vec<String> = listing
            .common_prefixes
            .into_iter()
            .map(|p| p.to_string())
            .filter(|p| !p.starts_with(".bss-"))
            .collect();
        folders.sort();
        Ok(folders)
    }

    /// Keeps only the objects that can hold selected records, by their names and sidecars (what an
    /// object without a sidecar cannot rule out, it keeps). Returns them grouped by source partition,
    /// each group in offset order.
    pub async fn prune(
        &self,
        objects: &[ArchivedObject],
        selection: &Selection,
    ) -> Result<BTreeMap<i32, Vec<ArchivedObject>>, ArchiveError> {
        let (from_ms, to_ms) = (selection.from_ms, selection.to_ms);
        let window = selection.has_window();
        let key = selection.key.as_deref();
        let by_offsets = selection.partition.is_some()
            || selection.from_offset.is_some()
            || selection.to_offset.is_some();
        let kept: Vec<Option<ArchivedObject>> = futures::stream::iter(objects.iter().cloned())
            .map(|object| async move {
                // An object whose first record is inside the window needs no check for time (names
                // clamp missing and out-of-range timestamps to the ends, which prove nothing).
                let named = object.name.first_timestamp_ms;
                let first_inside = named > 0
                    && named < bss_format::time::MAX_ISO_MS
                    && from_ms.is_none_or(|f| named >= f)
                    && to_ms.is_none_or(|t| named <= t);
                if !selection.may_hold(object.name.partition, object.name.first_offset, None) {
                    return Ok(None);
                }
                if (window && !first_inside) || by_offsets {
                    if let Some(header) = self.index_header(&object).await? {
                        if !header.may_overlap(from_ms, to_ms)
                            || !selection.may_hold(
                                object.name.partition,
                                object.name.first_offset,
                                Some(header.last_offset),
                            )
                        {
                            return Ok(None);
                        }
                    }
                }
                if let Some(key) = key {
                    if !self.may_hold_key(&object, key).await? {
                        return Ok(None);
                    }
                }
                Ok::<_, ArchiveError>(Some(object))
            })
            .buffered(PRUNE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(by_partition(kept.into_iter().flatten()))
    }

    /// What the catalog records about an object, and its key hashes, from its content (for
    /// `bss catalog rebuild`; Mia-Platform objects included).
    pub async fn describe(
        &self,
        object: &ArchivedObject,
    ) -> Result<(CatalogEntry, Vec<u64>), ArchiveError> {
        let sidecar = index_path(object.path.as_ref());
        let has_sidecar = match self.store.head(&Path::from(sidecar.as_str())).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        let stored = self.store.get(&object.path).await?.bytes().await?;
        self.observer.object_read(true, stored.len() as u64);
        let checksum = bss_format::checksum(&stored);
        let mut chunks = self.decode(object, stored);
        let mut summary = bss_format::FileSummary::default();
        let mut keys = IndexBuilder::default();
        while let Some(chunk) = chunks.recv().await {
            for record in chunk? {
                summary.add(&record);
                keys.add(record.offset, record.timestamp_ms, record.key.as_deref());
            }
        }
        if summary.records == 0 {
            return Err(ArchiveError::Corrupt {
                path: object.path.to_string(),
                reason: "it holds no records".into(),
            });
        }
        let entry = CatalogEntry {
            path: object.path.to_string(),
            topic: object.name.topic.clone(),
            partition: object.name.partition,
            first_offset: summary.first_offset,
            last_offset: summary.last_offset,
            records: summary.records,
            min_timestamp: summary.min_timestamp_ms,
            max_timestamp: summary.max_timestamp_ms,
            bytes: object.size,
            checksum,
            index_path: has_sidecar.then_some(sidecar),
        };
        Ok((entry, keys.key_hashes()))
    }

    /// Number of archive objects directly in `folder`.
    pub async fn count(&self, folder: &str) -> Result<usize, ArchiveError> {
        Ok(self.list(folder).await?.len())
    }
}

/// Objects grouped by source partition, each group in offset order.
fn by_partition(
    objects: impl IntoIterator<Item = ArchivedObject>,
) -> BTreeMap<i32, Vec<ArchivedObject>> {
    let mut grouped: BTreeMap<i32, Vec<ArchivedObject>> = BTreeMap::new();
    for object in objects {
        grouped
            .entry(object.name.partition)
            .or_default()
            .push(object);
    }
    for objects in grouped.values_mut() {
        objects.sort_by_key(|o| o.name.first_offset);
    }
    grouped
}
