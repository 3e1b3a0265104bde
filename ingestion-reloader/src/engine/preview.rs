//! `dryRun: true` on a reingestion route: what the job would do, without publishing. The objects and
//! bytes it would read, per source partition; the records in those objects from the catalog (exact
//! when the whole of each object is selected, otherwise an upper bound); and a few sample records
//! as they would be published, headers included.

use std::collections::HashMap;

use bss_archive::Archive;
use bss_catalog::Catalog;
use bss_format::encode_line;
use bss_layout::catalog::CatalogEntry;

use serde::Serialize;

use super::error::{promptly, EngineError};
use super::plan::Plan;
use super::replay::{select_objects, ReplaySpec, Source};
use super::replica::Engine;
use bss_archive::Selection;

/// Sample records shown.
const SAMPLES: usize = 5;
/// Objects read at most to find them (a preview stays quick whatever the selection).
const SAMPLE_OBJECTS: usize = 10;

/// What a job would do.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Always `true`: nothing was published.
    pub dry_run: bool,
    /// The target topic.
    pub target: String,
    /// Objects it would read.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Records in them, from the catalog (`None` without a complete catalog).
    pub records: Option<u64>,
    /// Whether `records` is exact (whole objects selected) rather than an upper bound.
    pub records_exact: bool,
    /// The same per source partition.
    pub partitions: Vec<PartitionPreview>,
    /// A few records as they would be published (archive lines).
    pub samples: Vec<serde_json::Value>,
}

/// One source partition of a [`Preview`].
#[derive(Debug, Serialize)]
pub struct PartitionPreview {
    /// Source partition.
    pub partition: i32,
    /// Objects it would read.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Records in them (see [`Preview::records`]).
    pub records: Option<u64>,
}

impl Engine {
    /// What a planned job would do, without publishing.
    pub async fn preview(&self, plan: &Plan) -> Result<Preview, EngineError> {
        preview(&self.archive, &plan.spec).await
    }
}

/// The preview of `spec`.
async fn preview(archive: &Archive, spec: &ReplaySpec) -> Result<Preview, EngineError> {
    let partitions = promptly(select_objects(archive, spec)).await?;
    let cataloged = cataloged_entries(archive, spec).await?;
    let whole_objects = spec.selection.key.is_none() && spec.filter.is_none() && !spec.latest_only;
    let mut exact = cataloged.is_some();
    let mut rows = Vec::new();
    for (partition, objects) in &partitions {
        let records = cataloged.as_ref().and_then(|entries| {
            objects
                .iter()
                .map(|o| {
                    let entry = entries.get(o.path.as_ref())?;
                    exact &= whole_objects && inside(entry, &spec.selection);
                    Some(entry.records)
                })
                .sum::<Option<u64>>()
        });
        exact &= records.is_some();
        rows.push(PartitionPreview {
            partition: *partition,
            objects: objects.len() as u64,
            bytes: objects.iter().map(|o| o.size).sum(),
            records,
        });
    }
    let mut samples = Vec::new();
    'objects: for object in partitions.values().flatten().take(SAMPLE_OBJECTS) {
        let mut chunks = archive.read(object).await?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk? {
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
    Ok(Preview {
        dry_run: true,
        target: spec.target.clone(),
        objects: rows.iter().map(|r| r.objects).sum(),
        bytes: rows.iter().map(|r| r.bytes).sum(),
        records: cataloged
            .as_ref()
            .map(|_| rows.iter().filter_map(|r| r.records).sum()),
        records_exact: exact,
        partitions: rows,
        samples,
    })
}

/// The catalog entries of the selection, by path, when the folder has a complete catalog.
async fn cataloged_entries(
    archive: &Archive,
    spec: &ReplaySpec,
) -> Result<Option<HashMap<String, CatalogEntry>>, EngineError> {
    let Source::Folder(folder) = &spec.source else {
        return Ok(None);
    };
    let catalog = Catalog::new(archive.store().clone());
    promptly(async {
        if !catalog.is_complete(folder).await? {
            return Ok::<_, EngineError>(None);
        }
        let (entries, _) = catalog
            .select(folder, &spec.selection)
            .await
            .map_err(bss_archive::ArchiveError::from)?;
        Ok(Some(
            entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
        ))
    })
    .await
}

/// Whether every record of the object is selected by the window and offsets.
fn inside(entry: &CatalogEntry, selection: &Selection) -> bool {
    let offsets_inside = selection.partition.is_none_or(|p| p == entry.partition)
        && selection
            .from_offset
            .is_none_or(|f| entry.first_offset >= f)
        && selection.to_offset.is_none_or(|t| entry.last_offset <= t);
    if !offsets_inside {
        return false;
    }
    if !selection.has_window() {
        return true;
    }
    match (entry.min_timestamp, entry.max_timestamp) {
        (Some(min), Some(max)) => selection.in_window(Some(min)) && selection.in_window(Some(max)),
        _ => false,
    }
}
