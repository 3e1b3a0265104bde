//! One object examined: downloaded, checksummed and decoded, and compared with its name and sidecar.

use std::sync::Arc;

use anyhow::Context as _;
use bss_archive::ArchivedObject;
use bss_format::{checksum, RecordReader};
use bss_layout::index::{index_path, IndexHeader, HEADER_BYTES};
use bss_layout::ObjectName;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::Finding;

/// What one object turned out to hold.
#[derive(Debug, Clone)]
pub(super) struct ObjectFacts {
    pub(super) object: ArchivedObject,
    pub(super) checksum: String,
    pub(super) records: u64,
    pub(super) first_offset: Option<i64>,
    pub(super) last_offset: Option<i64>,
    pub(super) min_timestamp: Option<i64>,
    pub(super) max_timestamp: Option<i64>,
    /// Problems found inside the object.
    pub(super) findings: Vec<Finding>,
}

/// Downloads, checksums and decodes one object, comparing it with its name and sidecar.
pub(super) async fn examine(
    store: Arc<dyn ObjectStore>,
    object: ArchivedObject,
) -> anyhow::Result<ObjectFacts> {
    let stored = store
        .get(&object.path)
        .await
        .with_context(|| format!("reading {}", object.path))?
        .bytes()
        .await
        .with_context(|| format!("reading {}", object.path))?;
    let header = match store
        .get_range(
            &Path::from(index_path(object.path.as_ref())),
            0..HEADER_BYTES,
        )
        .await
    {
        Ok(bytes) => Some(IndexHeader::parse(&bytes)),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(e).with_context(|| format!("reading the sidecar of {}", object.path)),
    };
    tokio::task::spawn_blocking(move || decode(object, &stored, header))
        .await
        .context("decoder task")
}

pub(super) fn decode(
    object: ArchivedObject,
    stored: &[u8],
    header: Option<Option<IndexHeader>>,
) -> ObjectFacts {
    let mut facts = ObjectFacts {
        checksum: checksum(stored),
        records: 0,
        first_offset: None,
        last_offset: None,
        min_timestamp: None,
        max_timestamp: None,
        findings: Vec::new(),
        object,
    };
    let name = facts.object.name.clone();
    let path = facts.object.path.to_string();
    let finding = |kind, detail: String| Finding {
        kind,
        folder: name.folder.clone(),
        partition: Some(name.partition),
        object: Some(path.clone()),
        detail,
    };
    let reader = match name.compression.decompress(stored) {
        Ok(reader) => reader,
        Err(e) => {
            facts.findings.push(finding("corrupt", e.to_string()));
            return facts;
        }
    };
    let mut first_timestamp = None;
    for record in RecordReader::new(reader, Some(name.topic.clone())) {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                facts.findings.push(finding("corrupt", e.to_string()));
                return facts;
            }
        };
        if record.partition != name.partition || *record.topic != *name.topic {
            facts.findings.push(finding(
                "name-mismatch",
                format!(
                    "record at offset {} is from {}/{}, the name says {}/{}",
                    record.offset, record.topic, record.partition, name.topic, name.partition
                ),
            ));
        }
        if let Some(last) = facts.last_offset {
            if record.offset <= last {
                facts.findings.push(finding(
                    "duplicate",
                    format!(
                        "offset {} follows offset {last} inside the object",
                        record.offset
                    ),
                ));
            }
        } else {
            facts.first_offset = Some(record.offset);
            first_timestamp = Some(record.timestamp_ms.unwrap_or(0));
        }
        if let Some(ts) = record.timestamp_ms {
            facts.min_timestamp = Some(facts.min_timestamp.map_or(ts, |m| m.min(ts)));
            facts.max_timestamp = Some(facts.max_timestamp.map_or(ts, |m| m.max(ts)));
        }
        facts.last_offset = Some(record.offset);
        facts.records += 1;
    }
    if facts.first_offset != Some(name.first_offset) {
        facts.findings.push(finding(
            "name-mismatch",
            format!(
                "the name says the first offset is {}, the object starts at {:?}",
                name.first_offset, facts.first_offset
            ),
        ));
    }
    // Our names repeat the first record's time in the last field; Mia-Platform's hold a wall clock.
    if name.tail_ms == name.first_timestamp_ms
        && first_timestamp
            .is_some_and(|t| ObjectName::name_timestamp(Some(t)) != name.first_timestamp_ms)
    {
        facts.findings.push(finding(
            "name-mismatch",
            format!(
                "the name says the first record's time is {}, it is {:?}",
                name.first_timestamp_ms, first_timestamp
            ),
        ));
    }
    match header {
        None => facts.findings.push(finding(
            "missing-index",
            "no key-index sidecar: key lookups read this object".into(),
        )),
        Some(None) => facts.findings.push(finding(
            "index-mismatch",
            "the sidecar header does not parse".into(),
        )),
        Some(Some(h)) => {
            if h.records != facts.records
                || Some(h.first_offset) != facts.first_offset
                || Some(h.last_offset) != facts.last_offset
            {
                facts.findings.push(finding(
                    "index-mismatch",
                    format!(
                        "sidecar says {} records, offsets {}..={}; object has {} records, offsets {:?}..={:?}",
                        h.records, h.first_offset, h.last_offset, facts.records, facts.first_offset, facts.last_offset
                    ),
                ));
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use bss_format::{encode_line, Compression};
    use bss_layout::index::IndexBuilder;

    use super::super::fixtures::{kinds, object, record};
    use super::*;

    /// The stored bytes and sidecar header of an object holding `records`.
    fn stored(records: &[bss_format::Record]) -> (Vec<u8>, Option<IndexHeader>) {
        let mut plain = Vec::new();
        let mut index = IndexBuilder::default();
        for record in records {
            encode_line(record, &mut plain);
            index.add(record.offset, record.timestamp_ms, record.key.as_deref());
        }
        let sidecar = index.finish();
        (
            Compression::Zstd.compress(&plain),
            IndexHeader::parse(&sidecar[..HEADER_BYTES as usize]),
        )
    }

    #[test]
    fn a_sound_object_gives_its_facts_and_no_finding() {
        let records: Vec<_> = (10..20).map(|o| record(0, o)).collect();
        let (bytes, header) = stored(&records);
        let facts = decode(object(0, 10, bytes.len() as u64), &bytes, Some(header));
        assert!(facts.findings.is_empty(), "{:?}", facts.findings);
        assert_eq!(
            (facts.records, facts.first_offset, facts.last_offset),
            (10, Some(10), Some(19))
        );
        assert_eq!(facts.checksum, checksum(&bytes));
        assert_eq!(facts.min_timestamp, Some(1_700_000_000_010));
    }

    #[test]
    fn corruption_names_and_sidecars_that_disagree_are_found() {
        let records: Vec<_> = (10..20).map(|o| record(0, o)).collect();
        let (bytes, header) = stored(&records);
        let corrupt = decode(object(0, 10, 5), b"not zstd", Some(header));
        assert_eq!(kinds(&corrupt.findings), ["corrupt"]);
        // Named after partition 1 and offset 12: both disagree with the content.
        let misnamed = decode(object(1, 12, 0), &bytes, Some(header));
        assert!(kinds(&misnamed.findings)
            .iter()
            .all(|k| *k == "name-mismatch"));
        assert!(misnamed.findings.len() >= 2, "{:?}", misnamed.findings);
        let (_, other_header) = stored(&records[..5]);
        let wrong_sidecar = decode(object(0, 10, 0), &bytes, Some(other_header));
        assert_eq!(kinds(&wrong_sidecar.findings), ["index-mismatch"]);
        let no_sidecar = decode(object(0, 10, 0), &bytes, None);
        assert_eq!(kinds(&no_sidecar.findings), ["missing-index"]);
        let unreadable_sidecar = decode(object(0, 10, 0), &bytes, Some(None));
        assert_eq!(kinds(&unreadable_sidecar.findings), ["index-mismatch"]);
        // Offsets going back inside one object.
        let mut repeated = records.clone();
        repeated.push(record(0, 15));
        let (bytes, _) = stored(&repeated);
        let duplicated = decode(object(0, 10, 0), &bytes, None);
        assert!(kinds(&duplicated.findings).contains(&"duplicate"));
    }
}
