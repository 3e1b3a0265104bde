//! A folder's listing sorted out: what is checked, and what is reported as it is (an empty folder,
//! files that are not archive objects, objects of an unfinished erasure, objects left by a prune),
//! plus the per-object findings folded into the report.

use std::collections::{BTreeSet, HashMap, HashSet};

use bss_archive::erase::{Erasure, ErasureState};
use bss_archive::ArchivedObject;
use bss_layout::catalog::Retention;

use super::objects::ObjectFacts;
use super::{Finding, Report};

/// What `bss erase` did to the verified folders.
#[derive(Debug, Default)]
pub(super) struct Erasures {
    /// Offsets removed on purpose, per source topic and partition.
    pub(super) erased: HashMap<(String, i32), BTreeSet<i64>>,
    /// Objects an unfinished erasure has written but not cataloged yet, or uncataloged but not
    /// deleted yet: they hold the same offsets as their counterparts.
    pub(super) in_flight: HashSet<String>,
    /// Every object an erasure wrote or replaced (the storer announced none of the new ones).
    pub(super) rewritten: HashSet<String>,
}

impl Erasures {
    /// Adds an erasure record.
    pub(super) fn add(&mut self, erasure: &Erasure) {
        for object in &erasure.objects {
            self.erased
                .entry((object.old.topic.clone(), object.old.partition))
                .or_default()
                .extend(&object.erased_offsets);
            match erasure.state {
                ErasureState::Planned => self.in_flight.extend(object.new_path.clone()),
                ErasureState::Repointed => {
                    self.in_flight.insert(object.old.path.clone());
                }
                ErasureState::Complete => {}
            }
            self.rewritten.extend(object.new_path.clone());
            self.rewritten.insert(object.old.path.clone());
        }
    }
}

/// What a folder's listing holds.
pub(super) struct Listing {
    /// Archive objects.
    pub(super) objects: Vec<ArchivedObject>,
    /// Files that are not archive objects, with why.
    pub(super) strays: Vec<(String, String)>,
    /// Whether its catalog lists nothing (or it has none).
    pub(super) catalog_empty: bool,
}

/// Reports what is not checked and returns the objects to check.
pub(super) fn sort_out(
    folder: &str,
    listing: Listing,
    retention: &Retention,
    erasures: &Erasures,
    report: &mut Report,
) -> Vec<ArchivedObject> {
    let finding = |kind, detail| Finding {
        kind,
        folder: folder.to_owned(),
        partition: None,
        object: None,
        detail,
    };
    let object_finding = |kind, object: &ArchivedObject, detail: &str| Finding {
        partition: Some(object.name.partition),
        object: Some(object.path.to_string()),
        ..finding(kind, detail.to_owned())
    };
    let (objects, leftovers): (Vec<_>, Vec<_>) = listing
        .objects
        .into_iter()
        .partition(|o| retention.keeps(&o.name.topic, o.name.partition, o.name.first_offset));
    if objects.is_empty() && listing.strays.is_empty() && listing.catalog_empty {
        report.problems.push(finding(
            "empty-folder",
            format!("no archive object in folder {folder:?}: is the topic or folder name right?"),
        ));
    }
    // An organized generation's manifest is the one other file an archive folder may hold.
    for (path, reason) in listing
        .strays
        .iter()
        .filter(|(path, _)| !path.ends_with("/manifest.json"))
    {
        report.problems.push(Finding {
            object: Some(path.clone()),
            ..finding(
                "unknown-object",
                format!("not an archive object name, so no reader ever selects it: {reason}"),
            )
        });
    }
    // Left out of the checks until the erasure finishes.
    let (pending, objects): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| erasures.in_flight.contains(o.path.as_ref()));
    for object in &pending {
        report.warnings.push(object_finding(
            "erasure-pending",
            object,
            "an unfinished `bss erase` wrote or replaced this object; the next erasure of the folder finishes it",
        ));
    }
    for object in &leftovers {
        report.warnings.push(object_finding(
            "pruned",
            object,
            "before its partition's retention start: an interrupted `bss prune` left it; the next run deletes it",
        ));
    }
    objects
}

/// The objects' own findings: problems, except a missing sidecar, a warning folded into one line
/// for the folder (Mia-Platform's storer writes none).
pub(super) fn report_objects(folder: &str, facts: &[ObjectFacts], report: &mut Report) {
    let mut without_sidecar = Vec::new();
    for fact in facts {
        for finding in &fact.findings {
            match finding.kind {
                "missing-index" => without_sidecar.push(finding.clone()),
                _ => report.problems.push(finding.clone()),
            }
        }
    }
    match without_sidecar.len() {
        0 => {}
        1 => report.warnings.append(&mut without_sidecar),
        n => report.warnings.push(Finding {
            kind: "missing-index",
            folder: folder.to_owned(),
            partition: None,
            object: None,
            detail: format!(
                "{n} of {} objects have no key-index sidecar (written by Mia-Platform's storer or before sidecars existed; first: {}); the catalog indexes their keys once `bss catalog rebuild` ran",
                facts.len(),
                without_sidecar[0].object.as_deref().unwrap_or("?")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bss_archive::erase::RewrittenObject;
    use bss_layout::catalog::{CatalogEntry, PartitionStart};

    use super::super::fixtures::{facts, kinds, object, TOPIC};
    use super::*;

    fn listing(objects: Vec<ArchivedObject>, strays: &[&str]) -> Listing {
        Listing {
            objects,
            strays: strays
                .iter()
                .map(|s| ((*s).to_owned(), "not a name".to_owned()))
                .collect(),
            catalog_empty: false,
        }
    }

    #[test]
    fn an_empty_folder_and_files_that_are_not_objects_are_problems() {
        let mut report = Report::default();
        let empty = Listing {
            catalog_empty: true,
            ..listing(Vec::new(), &[])
        };
        sort_out(
            "f",
            empty,
            &Retention::default(),
            &Erasures::default(),
            &mut report,
        );
        assert_eq!(kinds(&report.problems), ["empty-folder"]);

        let mut report = Report::default();
        let kept = sort_out(
            "f",
            listing(
                vec![object(0, 0, 1)],
                &["f/notes.txt", "f/gen-1/manifest.json"],
            ),
            &Retention::default(),
            &Erasures::default(),
            &mut report,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kinds(&report.problems), ["unknown-object"]);
        assert_eq!(report.problems[0].object.as_deref(), Some("f/notes.txt"));
    }

    #[test]
    fn pruned_objects_and_objects_of_an_unfinished_erasure_are_warnings_not_checked() {
        let retention = Retention {
            partitions: vec![PartitionStart {
                topic: TOPIC.into(),
                partition: 0,
                start_offset: 10,
                pruned_before: "2024-01-01T00:00:00Z".into(),
            }],
        };
        let replaced = object(0, 20, 1);
        let fact = facts(0, 20, 29);
        let mut erasures = Erasures::default();
        erasures.add(&Erasure {
            id: "1-ab".into(),
            folder: "f".into(),
            key_hash: "ab".into(),
            key_hash_scheme: "hmac-sha256".into(),
            requested_by: "ops".into(),
            reason: None,
            started_at: "2024-01-01T00:00:00Z".into(),
            state: ErasureState::Repointed,
            delete_after: None,
            completed_at: None,
            records: 1,
            objects: vec![RewrittenObject {
                old: CatalogEntry {
                    path: replaced.path.to_string(),
                    topic: TOPIC.into(),
                    partition: 0,
                    first_offset: 20,
                    last_offset: 29,
                    records: 10,
                    min_timestamp: fact.min_timestamp,
                    max_timestamp: fact.max_timestamp,
                    bytes: 1,
                    checksum: "x".into(),
                    index_path: None,
                },
                new_path: Some("f/new".into()),
                erased_offsets: vec![25],
            }],
        });
        assert_eq!(
            erasures.erased[&(TOPIC.to_owned(), 0)],
            BTreeSet::from([25])
        );
        assert!(erasures.rewritten.contains("f/new"));
        let mut report = Report::default();
        let kept = sort_out(
            "f",
            listing(vec![object(0, 0, 1), object(0, 10, 1), replaced], &[]),
            &retention,
            &erasures,
            &mut report,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name.first_offset, 10);
        let mut found = kinds(&report.warnings);
        found.sort_unstable();
        assert_eq!(found, ["erasure-pending", "pruned"]);
        assert!(report.problems.is_empty());
    }

    #[test]
    fn objects_without_sidecars_are_one_warning_for_the_folder() {
        let mut with_findings = vec![facts(0, 0, 9), facts(0, 10, 19), facts(0, 20, 29)];
        for fact in &mut with_findings {
            fact.findings.push(Finding {
                kind: "missing-index",
                folder: "f".into(),
                partition: Some(0),
                object: Some(fact.object.path.to_string()),
                detail: "no sidecar".into(),
            });
        }
        with_findings[2].findings.push(Finding {
            kind: "corrupt",
            folder: "f".into(),
            partition: Some(0),
            object: None,
            detail: "bad".into(),
        });
        let mut report = Report::default();
        report_objects("f", &with_findings, &mut report);
        assert_eq!(kinds(&report.problems), ["corrupt"]);
        assert_eq!(kinds(&report.warnings), ["missing-index"]);
        assert!(report.warnings[0].detail.starts_with("3 of 3 objects"));
    }
}
