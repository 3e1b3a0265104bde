//! Erasure of one key from a folder's archive (right to erasure), without ever rewriting an object
//! or a catalog segment in place:
//!
//! 1. **Plan**: the catalog's key index names the candidate objects; each is read, and the offsets
//!    holding the key are recorded with a new name for the object without them in an erasure record
//!    (`.bss-catalog/<folder>/_erasures/<id>.json`, state `planned`). The record keeps a keyed hash
//!    of the key (HMAC-SHA256, see [`ErasureHashKey`]), never the key.
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
use bss_layout::index::{index_path, IndexBuilder};
use bss_layout::ObjectName;
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
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

/// The secret that keys the hash an erasure record keeps of the erased key. A plain hash of a
/// low-entropy key (an e-mail address, a customer number) could be reversed by hashing guesses; an
/// HMAC cannot without the secret. With a configured secret, whoever holds it can tell whether a given
/// key was erased (by computing [`ErasureHashKey::hash`]); without one, each erasure draws a random
/// secret and forgets it, so its record cannot be linked to any key at all.
#[derive(Clone)]
pub struct ErasureHashKey {
    secret: Vec<u8>,
    /// Drawn for one erasure and forgotten.
    unlinkable: bool,
}

impl std::fmt::Debug for ErasureHashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.unlinkable {
            "ErasureHashKey(random)"
        } else {
            "ErasureHashKey(***)"
        })
    }
}

/// Why the erasure hash key cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HashKeyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is too short to key a hash.
    #[error(
        "{path} holds {bytes} bytes; the erasure hash key needs at least {MIN_HASH_KEY_BYTES}"
    )]
    TooShort {
        /// The file.
        path: String,
        /// Its length.
        bytes: usize,
    },
}

/// The shortest secret accepted (HMAC-SHA256 wants at least its output's 32 bytes).
pub const MIN_HASH_KEY_BYTES: usize = 32;

impl ErasureHashKey {
    /// The configured secret: the contents of `path` (surrounding white space dropped).
    pub fn load(path: &str) -> Result<Self, HashKeyError> {
        let text = std::fs::read(path).map_err(|source| HashKeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let secret = text.trim_ascii().to_vec();
        if secret.len() < MIN_HASH_KEY_BYTES {
            return Err(HashKeyError::TooShort {
                path: path.to_owned(),
                bytes: secret.len(),
            });
        }
        Ok(Self {
            secret,
            unlinkable: false,
        })
    }

    /// A random secret for one erasure, never stored.
    pub fn random() -> Self {
        Self {
            secret: rand::random::<[u8; 32]>().to_vec(),
            unlinkable: true,
        }
    }

    /// HMAC-SHA256 of `key`, as 64 hex digits.
    pub fn hash(&self, key: &[u8]) -> String {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(key);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// What the record says of its hash.
    fn scheme(&self) -> &'static str {
        if self.unlinkable {
            HASH_UNLINKABLE
        } else {
            HASH_HMAC
        }
    }
}

/// `keyHashScheme` of a hash keyed by the configured secret.
pub const HASH_HMAC: &str = "hmac-sha256";
/// `keyHashScheme` of a hash keyed by a secret drawn for the erasure and forgotten.
pub const HASH_UNLINKABLE: &str = "hmac-sha256-unlinkable";
/// `keyHashScheme` of records written before keyed hashes (a plain 64-bit hash).
pub const HASH_PLAIN: &str = "fnv64";

fn plain_scheme() -> String {
    HASH_PLAIN.to_owned()
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
    /// The erased key's keyed hash (HMAC-SHA256, hex; see [`ErasureHashKey`]); the key itself is
    /// not kept.
    pub key_hash: String,
    /// How `key_hash` was made: `hmac-sha256`, `hmac-sha256-unlinkable`, or `fnv64` for records
    /// written before keyed hashes.
    #[serde(default = "plain_scheme")]
    pub key_hash_scheme: String,
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
    /// The erasure's id (from its start time and the key's keyed hash).
    pub id: String,
    /// When it was asked for, epoch ms.
    pub started_ms: i64,
    /// Archive folder.
    pub folder: String,
    /// The key, byte for byte.
    pub key: Vec<u8>,
    /// Its keyed hash (see [`ErasureHashKey`]), and how it was keyed (`keyHashScheme`).
    pub key_hash: (String, &'static str),
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
    /// A request starting now; its id is known before it runs (a service answers with it). The key
    /// is hashed with `hash_key`, or with a random secret when none is configured.
    pub fn new(
        folder: &str,
        key: Vec<u8>,
        hash_key: Option<&ErasureHashKey>,
        requested_by: &str,
        reason: Option<String>,
    ) -> Self {
        let started_ms = now_ms();
        let hash_key = hash_key.cloned().unwrap_or_else(ErasureHashKey::random);
        let hash = hash_key.hash(&key);
        Self {
            id: format!("{started_ms}-{}", &hash[..16]),
            started_ms,
            folder: folder.to_owned(),
            key,
            key_hash: (hash, hash_key.scheme()),
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
        let (mut candidates, _) = catalog
            .select(
                &request.folder,
                &bss_layout::Selection::all().with_key(Some(request.key.clone())),
            )
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
            key_hash: request.key_hash.0.clone(),
            key_hash_scheme: request.key_hash.1.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_a_keyed_hash_that_a_guess_cannot_reproduce() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").expect("write");
        let secret = ErasureHashKey::load(path.to_str().expect("utf-8")).expect("loads");
        let key = b"alice@example.com".to_vec();
        let request = EraseRequest::new("f", key.clone(), Some(&secret), "ops", None);
        let (hash, scheme) = &request.key_hash;
        assert_eq!(scheme, &HASH_HMAC);
        assert_eq!(hash.len(), 64);
        // The holder of the secret finds the record of a key; a guess without it does not.
        assert_eq!(hash, &secret.hash(&key));
        assert_ne!(hash, &format!("{:016x}", bss_layout::index::key_hash(&key)));
        assert_ne!(hash, &ErasureHashKey::random().hash(&key));
        assert!(request.id.ends_with(&hash[..16]));
        // Without a configured secret: a random one, so the record links to no key.
        let unlinked = EraseRequest::new("f", key.clone(), None, "ops", None);
        assert_eq!(unlinked.key_hash.1, HASH_UNLINKABLE);
        assert_ne!(unlinked.key_hash.0, *hash);
        assert_eq!(format!("{secret:?}"), "ErasureHashKey(***)");
    }

    #[test]
    fn a_short_secret_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("short");
        std::fs::write(&path, "guessable").expect("write");
        let error = ErasureHashKey::load(path.to_str().expect("utf-8"))
            .expect_err("too short")
            .to_string();
        assert!(error.contains("short") && error.contains("32"), "{error}");
        assert!(ErasureHashKey::load("/nonexistent/secret")
            .expect_err("missing")
            .to_string()
            .contains("/nonexistent/secret"));
    }

    #[test]
    fn records_written_before_keyed_hashes_still_read() {
        let old = r#"{"id":"1-00","folder":"f","keyHash":"00ff","requestedBy":"a","reason":null,"startedAt":"2024-01-01T00:00:00.000Z","state":"complete","deleteAfter":null,"completedAt":null,"records":0,"objects":[]}"#;
        let erasure: Erasure = serde_json::from_str(old).expect("reads");
        assert_eq!(erasure.key_hash_scheme, HASH_PLAIN);
    }
}
