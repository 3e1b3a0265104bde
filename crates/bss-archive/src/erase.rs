//! Erasure of one key from a folder's archive (right to erasure), without ever rewriting an object
//! or a catalog segment in place:
//!
//! 1. **Plan**: the catalog's key index names the candidate objects; each is read, and the offsets
//!    holding the key are recorded with a new name for the object without them in an erasure record
//!    (`.bss-catalog/<folder>/_erasures/<id>.json`, state `planned`). The record keeps the key's
//!    hash, never the key.
//! 2. **Write** the new objects (and sidecars) under names no reader selects yet.
//! 3. **Repoint**: per partition, every catalog segment that lists an old object is superseded by a
//!    copy one level up that lists the new one instead (or nothing, when every record had the key);
//!    repeated until no live segment lists an old object (a concurrent compaction may have copied
//!    one). State `repointed`, with the time after which the old objects may go.
//! 4. **Delete** the old objects and sidecars once no reader that selected them before the repoint
//!    can still be reading them (the grace period). State `complete`.
//!
//! A crash leaves each object in its old or its new state, never a mix: until its segment is
//! superseded readers see the old object, after it the new one. The next erasure of the folder
//! finishes every unfinished one first, from its record.

use std::collections::BTreeMap;
use std::time::Duration;

use bss_catalog::{Catalog, Replacement};
use bss_format::time::{format_iso_ms, parse_iso_ms};
use bss_format::{encode_line, Record};
use bss_layout::catalog::{CatalogEntry, CATALOG_ROOT};
use bss_layout::index::{index_path, key_hash, IndexBuilder};
use bss_layout::ObjectName;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::{Archive, ArchiveError, ArchivedObject};

/// A repoint that still finds old entries after this many passes gives up (and says so).
const REPOINT_PASSES: usize = 5;

/// The prefix of a folder's erasure records.
pub fn erasures_prefix(folder: &str) -> String {
    format!("{CATALOG_ROOT}/{folder}/_erasures")
}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErasureState {
    /// Recorded; new objects may be partly written; readers see the old objects.
    Planned,
    /// Readers see the new objects; the old ones are deleted after `deleteAfter`.
    Repointed,
    /// Old objects deleted.
    Complete,
}

/// The erasure record: the plan, its progress, and the audit trail (who, when, what).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// Unique id (start time and key hash).
    pub id: String,
    /// Archive folder.
    pub folder: String,
    /// The erased key's hash (`bss_layout::index::key_hash`, hex); the key itself is not kept.
    pub key_hash: String,
    /// Who asked for it.
    pub requested_by: String,
    /// Why (free text, e.g. a ticket number).
    pub reason: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Where it stands.
    pub state: ErasureState,
    /// When the old objects may be deleted (RFC 3339), once repointed.
    pub delete_after: Option<String>,
    /// When it completed (RFC 3339).
    pub completed_at: Option<String>,
    /// Records erased.
    pub records: u64,
    /// The objects rewritten.
    pub objects: Vec<RewrittenObject>,
}

/// One object of an erasure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewrittenObject {
    /// Its catalog entry before the erasure.
    pub old: CatalogEntry,
    /// The object without the erased records; `None` when every record had the key.
    pub new_path: Option<String>,
    /// The offsets erased from it: intentional gaps for `bss verify`.
    pub erased_offsets: Vec<i64>,
}

/// What to erase.
#[derive(Debug, Clone)]
pub struct EraseRequest {
    /// The erasure's id (from its start time and the key's hash).
    pub id: String,
    /// When it was asked for, epoch ms.
    pub started_ms: i64,
    /// Archive folder.
    pub folder: String,
    /// The key, byte for byte.
    pub key: Vec<u8>,
    /// Who asks (recorded).
    pub requested_by: String,
    /// Why (recorded).
    pub reason: Option<String>,
    /// How long readers that selected an old object before the repoint may keep reading it.
    pub grace: Duration,
    /// Plan only: write nothing.
    pub dry_run: bool,
}

impl EraseRequest {
    /// A request starting now; its id is known before it runs (a service answers with it).
    pub fn new(folder: &str, key: Vec<u8>, requested_by: &str, reason: Option<String>) -> Self {
        let started_ms = now_ms();
        Self {
            id: format!("{started_ms}-{:016x}", key_hash(&key)),
            started_ms,
            folder: folder.to_owned(),
            key,
            requested_by: requested_by.to_owned(),
            reason,
            grace: Duration::from_secs(600),
            dry_run: false,
        }
    }
}

impl Archive {
    /// Every erasure record of `folder`, oldest first.
    pub async fn erasures(&self, folder: &str) -> Result<Vec<Erasure>, ArchiveError> {
        let prefix = Path::from(erasures_prefix(folder));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut erasures = Vec::new();
        for meta in metas {
            let bytes = self.store.get(&meta.location).await?.bytes().await?;
            let erasure = serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Corrupt {
                path: meta.location.to_string(),
                reason: format!("not an erasure record: {e}"),
            })?;
            erasures.push(erasure);
        }
        erasures.sort_by(|a: &Erasure, b| a.started_at.cmp(&b.started_at));
        Ok(erasures)
    }

    /// Erases `request.key` from the folder (see the module documentation), after finishing any
    /// unfinished erasure of the folder. Returns the erasure's record (only the plan on a dry run).
    pub async fn erase(&self, request: &EraseRequest) -> Result<Erasure, ArchiveError> {
        let catalog = Catalog::new(self.store.clone());
        let folder = &request.folder;
        if !catalog.is_complete(folder).await? {
            // Without it, the objects holding the key cannot all be found.
            return Err(ArchiveError::NoCatalog(folder.clone()));
        }
        if !request.dry_run {
            for unfinished in self.erasures(folder).await? {
                if unfinished.state != ErasureState::Complete {
                    tracing::warn!(erasure = %unfinished.id, state = ?unfinished.state, "finishing an interrupted erasure first");
                    self.carry_out(&catalog, unfinished, request.grace).await?;
                }
            }
        }
        let erasure = self.plan(&catalog, request).await?;
        if request.dry_run || erasure.objects.is_empty() {
            return Ok(erasure);
        }
        self.save(&erasure).await?;
        bss_failpoint::reached("erase-planned");
        self.carry_out(&catalog, erasure, request.grace).await
    }

    async fn plan(
        &self,
        catalog: &Catalog,
        request: &EraseRequest,
    ) -> Result<Erasure, ArchiveError> {
        let started = request.started_ms;
        let hash = format!("{:016x}", key_hash(&request.key));
        let (mut candidates, _) = catalog
            .select(&request.folder, None, None, Some(&request.key))
            .await?;
        candidates.sort_by_key(|e| (e.partition, e.first_offset));
        let mut objects = Vec::new();
        for entry in candidates {
            let old = self.cataloged_object(&entry)?;
            let records = self.read_all(&old).await?;
            let (erased, kept): (Vec<&Record>, Vec<&Record>) = records
                .iter()
                .partition(|r| r.key.as_deref() == Some(request.key.as_slice()));
            if erased.is_empty() {
                continue; // A false positive of the key index.
            }
            let new_path = kept.first().map(|first| {
                ObjectName {
                    first_timestamp_ms: ObjectName::name_timestamp(first.timestamp_ms),
                    first_offset: first.offset,
                    // The erasure's time where our names repeat the first record's: a new name,
                    // distinct from the object it replaces even when its first record stays.
                    tail_ms: started,
                    ..old.name.clone()
                }
                .path()
            });
            objects.push(RewrittenObject {
                old: entry,
                new_path,
                erased_offsets: erased.iter().map(|r| r.offset).collect(),
            });
        }
        Ok(Erasure {
            id: request.id.clone(),
            folder: request.folder.clone(),
            key_hash: hash,
            requested_by: request.requested_by.clone(),
            reason: request.reason.clone(),
            started_at: format_iso_ms(started),
            state: ErasureState::Planned,
            delete_after: None,
            completed_at: None,
            records: objects.iter().map(|o| o.erased_offsets.len() as u64).sum(),
            objects,
        })
    }

    /// Takes an erasure from its recorded state to complete.
    async fn carry_out(
        &self,
        catalog: &Catalog,
        mut erasure: Erasure,
        grace: Duration,
    ) -> Result<Erasure, ArchiveError> {
        if erasure.state == ErasureState::Planned {
            let mut by_partition: BTreeMap<(String, i32), Vec<_>> = BTreeMap::new();
            for object in &erasure.objects {
                let replacement = match &object.new_path {
                    Some(path) => Some(self.write_without(object, path).await?),
                    None => None,
                };
                by_partition
                    .entry((object.old.topic.clone(), object.old.partition))
                    .or_default()
                    .push((object.old.clone(), replacement));
            }
            bss_failpoint::reached("erase-written");
            for ((topic, partition), replacements) in &by_partition {
                self.repoint(catalog, &erasure.folder, topic, *partition, replacements)
                    .await?;
            }
            erasure.state = ErasureState::Repointed;
            erasure.delete_after = Some(format_iso_ms(now_ms() + grace.as_millis() as i64));
            self.save(&erasure).await?;
            bss_failpoint::reached("erase-repointed");
        }
        if erasure.state == ErasureState::Repointed {
            let due = erasure
                .delete_after
                .as_deref()
                .and_then(parse_iso_ms)
                .unwrap_or(0);
            let wait = due - now_ms();
            if wait > 0 {
                tracing::info!(erasure = %erasure.id, wait_s = wait / 1000, "waiting for readers of the old objects before deleting them");
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            for object in &erasure.objects {
                for path in [index_path(&object.old.path), object.old.path.clone()] {
                    match self.store.delete(&Path::from(path)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            erasure.state = ErasureState::Complete;
            erasure.completed_at = Some(format_iso_ms(now_ms()));
            self.save(&erasure).await?;
        }
        tracing::info!(
            audit = "erasure",
            erasure = %erasure.id,
            folder = %erasure.folder,
            key_hash = %erasure.key_hash,
            requested_by = %erasure.requested_by,
            reason = erasure.reason.as_deref().unwrap_or(""),
            objects = erasure.objects.len(),
            records = erasure.records,
            "key erased from the archive"
        );
        Ok(erasure)
    }

    /// Writes the object without the erased offsets (and its sidecar), and returns its catalog
    /// entry and key hashes, read back from what was written.
    async fn write_without(
        &self,
        object: &RewrittenObject,
        new_path: &str,
    ) -> Result<(CatalogEntry, Vec<u64>), ArchiveError> {
        let old = self.cataloged_object(&object.old)?;
        let mut plain = Vec::new();
        let mut index = IndexBuilder::default();
        for record in self.read_all(&old).await? {
            if object.erased_offsets.binary_search(&record.offset).is_err() {
                encode_line(&record, &mut plain);
                index.add(record.offset, record.timestamp_ms, record.key.as_deref());
            }
        }
        let new = ObjectName::parse(new_path).map_err(|e| ArchiveError::Corrupt {
            path: new_path.to_owned(),
            reason: e.to_string(),
        })?;
        let stored = new.compression.compress(&plain);
        let size = stored.len() as u64;
        self.store
            .put(&Path::from(new_path), bytes::Bytes::from(stored).into())
            .await?;
        self.store
            .put(
                &Path::from(index_path(new_path)),
                bytes::Bytes::from(index.finish()).into(),
            )
            .await?;
        self.describe(&ArchivedObject {
            path: Path::from(new_path),
            name: new,
            size,
        })
        .await
    }

    /// Supersedes the partition's segments until none lists an old object.
    async fn repoint(
        &self,
        catalog: &Catalog,
        folder: &str,
        topic: &str,
        partition: i32,
        replacements: &[Replacement],
    ) -> Result<(), ArchiveError> {
        for _ in 0..REPOINT_PASSES {
            if catalog
                .supersede(folder, topic, partition, replacements)
                .await?
                == 0
            {
                return Ok(());
            }
        }
        Err(ArchiveError::Corrupt {
            path: format!("catalog of {folder}/{topic}/{partition}"),
            reason: format!(
                "old entries still listed after {REPOINT_PASSES} passes (a compaction keeps copying them?); run the erasure again"
            ),
        })
    }

    async fn save(&self, erasure: &Erasure) -> Result<(), ArchiveError> {
        let path = format!("{}/{}.json", erasures_prefix(&erasure.folder), erasure.id);
        let bytes = serde_json::to_vec_pretty(erasure).map_err(|e| ArchiveError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.store
            .put(&Path::from(path), bytes::Bytes::from(bytes).into())
            .await?;
        Ok(())
    }

    fn cataloged_object(&self, entry: &CatalogEntry) -> Result<ArchivedObject, ArchiveError> {
        let name = ObjectName::parse(&entry.path).map_err(|e| ArchiveError::Corrupt {
            path: entry.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(ArchivedObject {
            path: Path::from(entry.path.as_str()),
            name,
            size: entry.bytes,
        })
    }

    async fn read_all(&self, object: &ArchivedObject) -> Result<Vec<Record>, ArchiveError> {
        let mut records = Vec::new();
        let mut chunks = self.read(object).await?;
        while let Some(chunk) = chunks.recv().await {
            records.extend(chunk?);
        }
        Ok(records)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
