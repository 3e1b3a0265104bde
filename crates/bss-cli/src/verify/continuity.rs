//! Offsets across the objects of each partition: no overlap, and every hole either erased on purpose
//! or left for the broker to classify.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::objects::ObjectFacts;
use super::{Finding, PartitionSummary, Report};

/// Offsets between two consecutive objects of a partition that no object holds.
#[derive(Debug, Clone)]
pub(super) struct Gap {
    pub(super) folder: String,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) object: String,
    pub(super) previous: String,
}

/// Checks the continuity of each partition of a folder's objects and adds its summary to the report.
pub(super) fn summarize(
    folder: &str,
    facts: &[ObjectFacts],
    gaps: &mut Vec<Gap>,
    report: &mut Report,
) {
    let mut by_partition: BTreeMap<i32, Vec<&ObjectFacts>> = BTreeMap::new();
    for fact in facts {
        by_partition
            .entry(fact.object.name.partition)
            .or_default()
            .push(fact);
    }
    for (partition, mut objects) in by_partition {
        objects.sort_by_key(|f| f.object.name.first_offset);
        continuity(folder, partition, &objects, gaps, report);
        report.partitions.push(PartitionSummary {
            folder: folder.to_owned(),
            partition,
            objects: objects.len(),
            records: objects.iter().map(|f| f.records).sum(),
            first_offset: objects.iter().find_map(|f| f.first_offset),
            last_offset: objects.iter().rev().find_map(|f| f.last_offset),
            undelivered_offsets: 0,
            erased_offsets: 0,
        });
    }
}

/// Offsets across consecutive objects of one partition: each must start right after the previous
/// (an overlap is a problem; a hole is collected in `gaps` for the broker to classify).
fn continuity(
    folder: &str,
    partition: i32,
    objects: &[&ObjectFacts],
    gaps: &mut Vec<Gap>,
    report: &mut Report,
) {
    let mut previous: Option<(&ObjectFacts, i64)> = None;
    for fact in objects {
        let (Some(first), Some(last)) = (fact.first_offset, fact.last_offset) else {
            continue;
        };
        if let Some((before, before_last)) = previous {
            if first <= before_last {
                report.problems.push(Finding {
                    kind: "duplicate",
                    folder: folder.to_owned(),
                    partition: Some(partition),
                    object: Some(fact.object.path.to_string()),
                    detail: format!(
                        "offsets {first}..={} are also in {}",
                        before_last.min(last),
                        before.object.path
                    ),
                });
            } else if first > before_last + 1 {
                gaps.push(Gap {
                    folder: folder.to_owned(),
                    topic: fact.object.name.topic.clone(),
                    partition,
                    from: before_last + 1,
                    to: first - 1,
                    object: fact.object.path.to_string(),
                    previous: before.object.path.to_string(),
                });
            }
        }
        if previous.is_none_or(|(_, l)| last > l) {
            previous = Some((fact, last));
        }
    }
}

/// The gaps minus the offsets `bss erase` removed on purpose (counted in the partition's summary).
pub(super) fn without_erased(
    gaps: Vec<Gap>,
    erased: &HashMap<(String, i32), BTreeSet<i64>>,
    report: &mut Report,
) -> Vec<Gap> {
    let mut remaining = Vec::new();
    for gap in gaps {
        let Some(offsets) = erased.get(&(gap.topic.clone(), gap.partition)) else {
            remaining.push(gap);
            continue;
        };
        let mut from = gap.from;
        let mut count = 0;
        for &offset in offsets.range(gap.from..=gap.to) {
            if offset > from {
                remaining.push(Gap {
                    from,
                    to: offset - 1,
                    ..gap.clone()
                });
            }
            from = offset + 1;
            count += 1;
        }
        if from <= gap.to {
            remaining.push(Gap {
                from,
                ..gap.clone()
            });
        }
        if let Some(summary) = report
            .partitions
            .iter_mut()
            .find(|p| p.folder == gap.folder && p.partition == gap.partition)
        {
            summary.erased_offsets += count;
        }
    }
    remaining
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{facts, kinds};
    use super::*;

    #[test]
    fn holes_become_gaps_and_overlaps_are_duplicates() {
        let mut report = Report::default();
        let mut gaps = Vec::new();
        // Partition 0 is continuous; partition 1 misses 20..=24 and repeats 28..=29.
        let objects = [
            facts(0, 0, 9),
            facts(0, 10, 19),
            facts(1, 0, 19),
            facts(1, 25, 29),
            facts(1, 28, 35),
        ];
        summarize("f", &objects, &mut gaps, &mut report);
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].partition, gaps[0].from, gaps[0].to), (1, 20, 24));
        assert_eq!(kinds(&report.problems), ["duplicate"]);
        assert!(
            report.problems[0].detail.contains("28..=29"),
            "{:?}",
            report.problems
        );
        let summaries: Vec<_> = report
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition,
                    p.objects,
                    p.records,
                    p.first_offset,
                    p.last_offset,
                )
            })
            .collect();
        assert_eq!(
            summaries,
            [(0, 2, 20, Some(0), Some(19)), (1, 3, 33, Some(0), Some(35))]
        );
    }

    #[test]
    fn erased_offsets_are_taken_out_of_gaps_and_counted() {
        let mut report = Report::default();
        let mut gaps = Vec::new();
        summarize(
            "f",
            &[facts(0, 0, 9), facts(0, 15, 19)],
            &mut gaps,
            &mut report,
        );
        let erased = HashMap::from([(
            (super::super::fixtures::TOPIC.to_owned(), 0),
            BTreeSet::from([10, 11, 14]),
        )]);
        let remaining = without_erased(gaps, &erased, &mut report);
        let ranges: Vec<_> = remaining.iter().map(|g| (g.from, g.to)).collect();
        assert_eq!(ranges, [(12, 13)]);
        assert_eq!(report.partitions[0].erased_offsets, 3);
        // Every offset of a gap erased: nothing left.
        let mut gaps = Vec::new();
        summarize(
            "f",
            &[facts(2, 0, 9), facts(2, 11, 12)],
            &mut gaps,
            &mut report,
        );
        let erased = HashMap::from([(
            (super::super::fixtures::TOPIC.to_owned(), 2),
            BTreeSet::from([10]),
        )]);
        assert!(without_erased(gaps, &erased, &mut report).is_empty());
    }
}
