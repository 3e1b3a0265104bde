//! The holes between objects, classified by the broker: offsets that never held a committed record
//! (transaction markers, aborted or compacted records) are expected; a record there is missing.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::continuity::Gap;
use super::{Finding, Report};
use crate::Context;

/// What the broker says about a gap.
pub(super) enum GapVerdict {
    /// No committed record in the range: markers, aborted or compacted records.
    Undelivered,
    /// The broker delivers a record at this offset of the range: it is missing from the archive.
    Missing(i64),
    /// The broker cannot tell (why).
    Unknown(String),
}

/// Asks the source topic, as a `read_committed` consumer, what each gap held: the first record it
/// delivers from the gap's start says whether the gap lost a record or only spans offsets that
/// consumers never see.
pub(super) async fn check(context: &Context, gaps: Vec<Gap>) -> anyhow::Result<Vec<GapVerdict>> {
    // The storer's settings, so `isolation.level` is the one it archived with (read_committed unless
    // the user changed it).
    let group = format!("bss-verify-{}", std::process::id());
    let consumer = bss_kafka::tool_consumer(&context.config.kafka, &group, true)
        .context("creating the Kafka client")?;
    let task = tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        gaps.iter()
            .map(|gap| {
                let low = match consumer.fetch_watermarks(&gap.topic, gap.partition, timeout) {
                    Ok((low, _)) => low,
                    Err(e) => {
                        return GapVerdict::Unknown(format!(
                            "reading {}/{}: {e}",
                            gap.topic, gap.partition
                        ))
                    }
                };
                if gap.from < low {
                    return GapVerdict::Unknown(format!(
                        "the topic now starts at offset {low} (retention)"
                    ));
                }
                let mut assignment = TopicPartitionList::new();
                if let Err(e) = assignment.add_partition_offset(
                    &gap.topic,
                    gap.partition,
                    Offset::Offset(gap.from),
                ) {
                    return GapVerdict::Unknown(e.to_string());
                }
                if let Err(e) = consumer.assign(&assignment) {
                    return GapVerdict::Unknown(e.to_string());
                }
                let deadline = Instant::now() + timeout;
                while Instant::now() < deadline {
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(message)) if message.offset() <= gap.to => {
                            return GapVerdict::Missing(message.offset())
                        }
                        Some(Ok(_)) => return GapVerdict::Undelivered,
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                            return GapVerdict::Undelivered
                        }
                        Some(Err(e)) => return GapVerdict::Unknown(e.to_string()),
                        None => {}
                    }
                }
                GapVerdict::Unknown(format!(
                    "no answer from {}/{} within {timeout:?}",
                    gap.topic, gap.partition
                ))
            })
            .collect()
    });
    task.await.context("gap check task")
}

/// Reports every gap as a warning, unchecked (`--allow-gaps`).
pub(super) fn accept(gaps: Vec<Gap>, report: &mut Report) {
    report.warnings.extend(gaps.into_iter().map(|gap| Finding {
        kind: "gap",
        folder: gap.folder,
        partition: Some(gap.partition),
        object: Some(gap.object),
        detail: format!(
            "offsets {}..={} are in no object (between {} and this one); not checked on the broker (--allow-gaps)",
            gap.from, gap.to, gap.previous
        ),
    }));
}

/// Adds what the broker said of each gap to the report: undelivered offsets are counted in the
/// partition's summary, a delivered record or no answer is a problem.
pub(super) fn apply(gaps: &[Gap], verdicts: Vec<GapVerdict>, report: &mut Report) {
    for (gap, verdict) in gaps.iter().zip(verdicts) {
        let finding = |kind, detail| Finding {
            kind,
            folder: gap.folder.clone(),
            partition: Some(gap.partition),
            object: Some(gap.object.clone()),
            detail,
        };
        let range = format!("offsets {}..={}", gap.from, gap.to);
        match verdict {
            GapVerdict::Undelivered => {
                if let Some(summary) = report
                    .partitions
                    .iter_mut()
                    .find(|p| p.folder == gap.folder && p.partition == gap.partition)
                {
                    summary.undelivered_offsets += gap.to - gap.from + 1;
                }
            }
            GapVerdict::Missing(offset) => report.problems.push(finding(
                "gap",
                format!(
                    "{range} are in no object (between {} and this one), and the broker holds a record at offset {offset}",
                    gap.previous
                ),
            )),
            GapVerdict::Unknown(why) => report.problems.push(finding(
                "gap",
                format!(
                    "{range} are in no object (between {} and this one); the broker cannot tell whether they held records ({why}); --allow-gaps accepts such gaps",
                    gap.previous
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::kinds;
    use super::super::PartitionSummary;
    use super::*;

    fn gap(partition: i32, from: i64, to: i64) -> Gap {
        Gap {
            folder: "f".into(),
            topic: "orders".into(),
            partition,
            from,
            to,
            object: format!("f/object-{partition}-{to}"),
            previous: "f/previous".into(),
        }
    }

    #[test]
    fn undelivered_offsets_are_counted_and_anything_else_is_a_problem() {
        let mut report = Report::default();
        report.partitions.push(PartitionSummary {
            folder: "f".into(),
            partition: 0,
            objects: 2,
            records: 10,
            first_offset: Some(0),
            last_offset: Some(12),
            undelivered_offsets: 0,
            erased_offsets: 0,
        });
        let gaps = [gap(0, 5, 7), gap(0, 9, 9), gap(1, 3, 4)];
        let verdicts = vec![
            GapVerdict::Undelivered,
            GapVerdict::Missing(9),
            GapVerdict::Unknown("retention".into()),
        ];
        apply(&gaps, verdicts, &mut report);
        assert_eq!(report.partitions[0].undelivered_offsets, 3);
        assert_eq!(kinds(&report.problems), ["gap", "gap"]);
        assert!(report.problems[0].detail.contains("record at offset 9"));
        assert!(report.problems[1].detail.contains("retention"));

        let mut report = Report::default();
        accept(gaps.to_vec(), &mut report);
        assert!(report.problems.is_empty());
        assert_eq!(report.warnings.len(), 3);
        assert!(report.warnings[0].detail.contains("--allow-gaps"));
    }
}
