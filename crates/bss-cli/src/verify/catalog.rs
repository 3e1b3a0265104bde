//! The catalog against the bucket: it lists exactly the folder's objects, each as it is.

use std::collections::HashMap;

use bss_layout::catalog::CatalogEntry;

use super::objects::ObjectFacts;
use super::{Finding, Report};

/// The catalog lists exactly the folder's objects, each as it is: an object missing from it is never
/// selected by a reader, an entry without its object fails every replay that selects it.
pub(super) fn compare(
    folder: &str,
    facts: &[ObjectFacts],
    entries: Vec<CatalogEntry>,
    report: &mut Report,
) {
    let mut by_path: HashMap<String, CatalogEntry> =
        entries.into_iter().map(|e| (e.path.clone(), e)).collect();
    for fact in facts {
        let path = fact.object.path.to_string();
        let finding = |kind, detail| Finding {
            kind,
            folder: folder.to_owned(),
            partition: Some(fact.object.name.partition),
            object: Some(path.clone()),
            detail,
        };
        let Some(entry) = by_path.remove(&path) else {
            report.problems.push(finding(
                "uncataloged",
                "the catalog does not list this object, so no reader selects it: run `bss catalog rebuild`".into(),
            ));
            continue;
        };
        if !fact.findings.is_empty() && fact.first_offset.is_none() {
            continue; // Undecodable: already a problem of its own.
        }
        let span = |low: Option<i64>, high: Option<i64>| {
            let show = |v: Option<i64>| v.map_or("none".to_owned(), |v| v.to_string());
            format!("{}..={}", show(low), show(high))
        };
        let compared = [
            (
                "records",
                entry.records.to_string(),
                fact.records.to_string(),
            ),
            (
                "bytes",
                entry.bytes.to_string(),
                fact.object.size.to_string(),
            ),
            ("checksum", entry.checksum.clone(), fact.checksum.clone()),
            (
                "offsets",
                span(Some(entry.first_offset), Some(entry.last_offset)),
                span(fact.first_offset, fact.last_offset),
            ),
            (
                "timestamps",
                span(entry.min_timestamp, entry.max_timestamp),
                span(fact.min_timestamp, fact.max_timestamp),
            ),
        ];
        let differences: Vec<String> = compared
            .into_iter()
            .filter(|(_, cataloged, actual)| cataloged != actual)
            .map(|(what, cataloged, actual)| format!("{what} {cataloged} vs {actual}"))
            .collect();
        if !differences.is_empty() {
            report.problems.push(finding(
                "catalog-mismatch",
                format!(
                    "catalog entry and object differ (catalog vs object): {}",
                    differences.join(", ")
                ),
            ));
        }
    }
    for (path, entry) in by_path {
        report.problems.push(Finding {
            kind: "dangling-entry",
            folder: folder.to_owned(),
            partition: Some(entry.partition),
            object: Some(path),
            detail: "the catalog lists this object but it is not in the bucket: replays that select it fail".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{facts, kinds};
    use super::*;

    fn entry(fact: &ObjectFacts) -> CatalogEntry {
        CatalogEntry {
            path: fact.object.path.to_string(),
            topic: fact.object.name.topic.clone(),
            partition: fact.object.name.partition,
            first_offset: fact.first_offset.unwrap_or_default(),
            last_offset: fact.last_offset.unwrap_or_default(),
            records: fact.records,
            min_timestamp: fact.min_timestamp,
            max_timestamp: fact.max_timestamp,
            bytes: fact.object.size,
            checksum: fact.checksum.clone(),
            index_path: None,
        }
    }

    #[test]
    fn the_catalog_must_list_exactly_the_objects_as_they_are() {
        let objects = [facts(0, 0, 9), facts(0, 10, 19), facts(0, 20, 29)];
        let mut report = Report::default();
        compare(
            "f",
            &objects,
            objects.iter().map(entry).collect(),
            &mut report,
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        let mut wrong = entry(&objects[1]);
        wrong.records = 7;
        wrong.checksum = "other".into();
        let gone = entry(&facts(0, 30, 39));
        let entries = vec![entry(&objects[0]), wrong, gone];
        let mut report = Report::default();
        compare("f", &objects, entries, &mut report);
        let mut found = kinds(&report.problems);
        found.sort_unstable();
        assert_eq!(found, ["catalog-mismatch", "dangling-entry", "uncataloged"]);
        let mismatch = &report.problems[0];
        assert!(
            mismatch.detail.contains("records 7 vs 10") && mismatch.detail.contains("checksum"),
            "{mismatch:?}"
        );
    }
}
