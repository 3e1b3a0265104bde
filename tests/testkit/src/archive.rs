//! Writes archive fixtures straight into a bucket, in the storer's format (objects and sidecars) or in
//! Mia-Platform's (five-field `.txt` lines, no sidecar), so reader tests need no storer run.

use std::sync::Arc;

use bss_format::{encode_line, Compression, Record};
use bss_layout::index::{index_path, IndexBuilder};
use bss_layout::ObjectName;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Writes `records` (one partition, offset order) as objects of `per_object` records with sidecars;
/// returns the object paths.
pub async fn write_objects(
    store: &Arc<dyn ObjectStore>,
    folder: &str,
    records: &[Record],
    per_object: usize,
    compression: Compression,
) -> Vec<String> {
    let mut paths = Vec::new();
    for chunk in records.chunks(per_object) {
        let first = &chunk[0];
        let name = ObjectName::for_batch(
            folder,
            &first.topic,
            first.partition,
            first.offset,
            first.timestamp_ms,
            compression,
        );
        let mut plain = Vec::new();
        let mut index = IndexBuilder::default();
        for record in chunk {
            encode_line(record, &mut plain);
            index.add(record.offset, record.timestamp_ms, record.key.as_deref());
        }
        let path = name.path();
        store
            .put(
                &Path::from(path.as_str()),
                PutPayload::from(compression.compress(&plain)),
            )
            .await
            .expect("put object");
        store
            .put(
                &Path::from(index_path(&path)),
                PutPayload::from(index.finish()),
            )
            .await
            .expect("put sidecar");
        paths.push(path);
    }
    paths
}

/// Writes one object exactly as Mia-Platform's storer does: five fields per line, key and payload as
/// JSON strings, a consumption time as the name's last field, no sidecar. Returns its path.
pub async fn write_mia_object(
    store: &Arc<dyn ObjectStore>,
    folder: &str,
    topic: &str,
    partition: i32,
    lines: &[(i64, i64, &str, &str)],
) -> String {
    let (first_offset, first_ts, _, _) = lines[0];
    let name = ObjectName {
        folder: folder.to_owned(),
        first_timestamp_ms: first_ts,
        topic: topic.to_owned(),
        partition,
        first_offset,
        tail_ms: first_ts + 1234,
        compression: Compression::None,
    };
    let mut text = String::new();
    for (offset, ts, key, payload) in lines {
        text.push_str(
            &serde_json::json!({
                "timestamp": bss_format::time::format_iso_ms(*ts),
                "partition": partition,
                "offset": offset,
                "key": key,
                "payload": payload,
            })
            .to_string(),
        );
        text.push('\n');
    }
    let path = name.path();
    store
        .put(
            &Path::from(path.as_str()),
            PutPayload::from(text.into_bytes()),
        )
        .await
        .expect("put mia object");
    path
}

/// Catalogs every object of `folder` (one level-1 segment per partition) and marks the catalog
/// complete, as `bss catalog rebuild` does, so readers select from it instead of listing.
pub async fn catalog_folder(store: &Arc<dyn ObjectStore>, folder: &str) {
    let archive = bss_archive::Archive::new(Arc::clone(store), Arc::new(bss_archive::NoObserver));
    let catalog = bss_catalog::Catalog::new(Arc::clone(store));
    let mut by_partition: std::collections::BTreeMap<i32, Vec<_>> = Default::default();
    for object in archive.list(folder).await.expect("list") {
        let described = archive.describe(&object).await.expect("describe");
        by_partition
            .entry(described.0.partition)
            .or_default()
            .push(described);
    }
    for mut described in by_partition.into_values() {
        described.sort_by_key(|(entry, _)| entry.first_offset);
        let (entries, hashes): (Vec<_>, Vec<_>) = described.into_iter().unzip();
        catalog
            .write_segment(folder, 1, &entries, hashes)
            .await
            .expect("write segment");
    }
    catalog
        .mark_complete(folder, "test fixture")
        .await
        .expect("mark complete");
}
