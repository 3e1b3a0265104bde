//! `dryRun: true` on a reingestion route: what the job would do, without publishing. The objects and
//! bytes it would read, per source partition; the records in those objects from the catalog (exact
//! when the whole of each object is selected, otherwise an upper bound); and a few sample records
//! as they would be published, headers included.

use std::collections::HashMap;

use bss_archive::Archive;
use bss_catalog::Catalog;
use bss_format::encode_line;
use bss_layout::catalog::CatalogEntry;

use crate::error::ApiError;
use crate::replay::{select_objects, ReplaySpec};
use crate::{archive_error, bucket_answer};

/// Sample records shown.
const SAMPLES: usize = 5;
/// Objects read at most to find them (a preview stays quick whatever the selection).
const SAMPLE_OBJECTS: usize = 10;

/// The preview of `spec`.
pub async fn preview(archive: &Archive, spec: &ReplaySpec) -> Result<serde_json::Value, ApiError> {
    let partitions =
        bucket_answer(async { select_objects(archive, spec).await.map_err(archive_error) }).await?;
    let cataloged = cataloged_entries(archive, spec).await?;
    let whole_objects = spec.key.is_none() && spec.filter.is_none() && !spec.latest_only;
    let mut exact = cataloged.is_some();
    let mut rows = Vec::new();
    for (partition, objects) in &partitions {
        let records = cataloged.as_ref().and_then(|entries| {
            objects
                .iter()
                .map(|o| {
                    let entry = entries.get(o.path.as_ref())?;
                    exact &= whole_objects && inside(entry, spec.from_ms, spec.to_ms);
                    Some(entry.records)
                })
                .sum::<Option<u64>>()
        });
        exact &= records.is_some();
        rows.push(serde_json::json!({
            "partition": partition,
            "objects": objects.len(),
            "bytes": objects.iter().map(|o| o.size).sum::<u64>(),
            "records": records,
        }));
    }
    let mut samples = Vec::new();
    'objects: for object in partitions.values().flatten().take(SAMPLE_OBJECTS) {
        let mut chunks = archive.read(object).await.map_err(archive_error)?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk.map_err(archive_error)? {
                if spec.selects(&record) {
                    let mut line = Vec::new();
                    encode_line(&record, &mut line);
                    samples.push(
                        serde_json::from_slice::<serde_json::Value>(&line).unwrap_or_default(),
                    );
                    if samples.len() == SAMPLES {
                        break 'objects;
                    }
                }
            }
        }
    }
    let total = |field: &str| rows.iter().filter_map(|r| r[field].as_u64()).sum::<u64>();
    Ok(serde_json::json!({
        "dryRun": true,
        "target": spec.target,
        "objects": total("objects"),
        "bytes": total("bytes"),
        "records": cataloged.as_ref().map(|_| total("records")),
        "recordsExact": exact,
        "partitions": rows,
        "samples": samples,
    }))
}

/// The catalog entries of the selection, by path, when the folder has a complete catalog.
async fn cataloged_entries(
    archive: &Archive,
    spec: &ReplaySpec,
) -> Result<Option<HashMap<String, CatalogEntry>>, ApiError> {
    let Some(folder) = &spec.folder else {
        return Ok(None);
    };
    let catalog = Catalog::new(archive.store().clone());
    bucket_answer(async {
        if !catalog.is_complete(folder).await.map_err(ApiError::from)? {
            return Ok::<_, ApiError>(None);
        }
        let (entries, _) = catalog
            .select(folder, spec.from_ms, spec.to_ms, spec.key.as_deref())
            .await
            .map_err(|e| archive_error(e.into()))?;
        Ok(Some(
            entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        ))
    })
    .await
}

/// Whether every record of the object is inside the window.
fn inside(entry: &CatalogEntry, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
    if from_ms.is_none() && to_ms.is_none() {
        return true;
    }
    match (entry.min_timestamp, entry.max_timestamp) {
        (Some(min), Some(max)) => {
            from_ms.is_none_or(|f| min >= f) && to_ms.is_none_or(|t| max <= t)
        }
        _ => false,
    }
}
