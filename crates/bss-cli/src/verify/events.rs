//! Objects against the storer's "file written" events: every object announced, every announcement
//! true, no announced object missing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bss_layout::FileWrittenEvent;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::objects::ObjectFacts;
use super::{Finding, Report};
use crate::progress::Progress;
use crate::Context;

/// How long reading the events topic up to its end may take.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(120);

/// Every event of the events topic, from its beginning to the end it had when reading started.
pub(super) async fn read(context: &Context) -> anyhow::Result<Vec<FileWrittenEvent>> {
    let topic = context.config.events_topic.clone();
    let consumer = context.consumer(&format!("bss-verify-{}", std::process::id()))?;
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<FileWrittenEvent>> {
        let timeout = Duration::from_secs(10);
        let partitions = bss_kafka::partition_count(consumer.client(), &topic, timeout)
            .with_context(|| format!("reading the metadata of the events topic {topic}"))?
            .with_context(|| format!("the events topic {topic} does not exist"))?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, timeout)
                .with_context(|| format!("reading the end of {topic}/{partition}"))?;
            if high > low {
                ends.insert(partition, high);
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + EVENTS_TIMEOUT;
        let mut events = Vec::new();
        let mut progress = Progress::new("events", "events", None);
        while !ends.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the events topic {topic} was not read to its end within {EVENTS_TIMEOUT:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.with_context(|| format!("reading {topic}"))?;
            if let Some(payload) = message.payload() {
                match serde_json::from_slice::<FileWrittenEvent>(payload) {
                    Ok(event) => events.push(event),
                    Err(e) => tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        error = %e,
                        "skipping a message of the events topic that is not a file-written event"
                    ),
                }
            }
            progress.inc(1);
            if ends
                .get(&message.partition())
                .is_some_and(|&end| message.offset() + 1 >= end)
            {
                ends.remove(&message.partition());
            }
        }
        progress.finish();
        Ok(events)
    });
    task.await.context("events reader task")?
}

/// Every object has an event that agrees with it; every event of a verified folder has its object.
pub(super) fn compare(
    checked: &[ObjectFacts],
    events: &[FileWrittenEvent],
    rewritten: &HashSet<String>,
    report: &mut Report,
) {
    let mut by_path: HashMap<&str, Vec<&FileWrittenEvent>> = HashMap::new();
    for event in events {
        by_path
            .entry(event.file_path.as_str())
            .or_default()
            .push(event);
    }
    let folders: std::collections::HashSet<&str> = checked
        .iter()
        .map(|f| f.object.name.folder.as_str())
        .collect();
    for fact in checked {
        let path = fact.object.path.as_ref();
        let finding = |kind, detail| Finding {
            kind,
            folder: fact.object.name.folder.clone(),
            partition: Some(fact.object.name.partition),
            object: Some(path.to_owned()),
            detail,
        };
        let Some(announced) = by_path.remove(path) else {
            if rewritten.contains(path) {
                continue; // Written by `bss erase`, not announced by the storer.
            }
            report.problems.push(finding(
                "missing-event",
                "no file-written event names this object".into(),
            ));
            continue;
        };
        // A batch re-announced after a crash has identical events; each must agree.
        for event in announced {
            let mut differences = Vec::new();
            if event.checksum != fact.checksum {
                differences.push(format!("checksum {} vs {}", event.checksum, fact.checksum));
            }
            if event.batch_size != fact.records {
                differences.push(format!(
                    "batchSize {} vs {} records",
                    event.batch_size, fact.records
                ));
            }
            if event.byte_size != fact.object.size {
                differences.push(format!(
                    "byteSize {} vs {} bytes",
                    event.byte_size, fact.object.size
                ));
            }
            if Some(event.batch_offset_start) != fact.first_offset
                || Some(event.batch_offset_end) != fact.last_offset
            {
                differences.push(format!(
                    "offsets {}..={} vs {:?}..={:?}",
                    event.batch_offset_start,
                    event.batch_offset_end,
                    fact.first_offset,
                    fact.last_offset
                ));
            }
            if !differences.is_empty() {
                report.problems.push(finding(
                    "event-mismatch",
                    format!("event and object differ: {}", differences.join(", ")),
                ));
            }
        }
    }
    for (path, _) in by_path {
        let folder = path.rsplit_once('/').map_or("", |(f, _)| f);
        if folders.contains(folder) && !rewritten.contains(path) {
            report.problems.push(Finding {
                kind: "orphan-event",
                folder: folder.to_owned(),
                partition: None,
                object: Some(path.to_owned()),
                detail: "an event announces this object but it is not in the bucket".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{facts, kinds};
    use super::*;

    fn event(fact: &ObjectFacts) -> FileWrittenEvent {
        FileWrittenEvent {
            file_path: fact.object.path.to_string(),
            batch_time_start: None,
            batch_time_end: None,
            batch_offset_start: fact.first_offset.unwrap_or_default(),
            batch_offset_end: fact.last_offset.unwrap_or_default(),
            batch_size: fact.records,
            bucket: "b".into(),
            topic: fact.object.name.topic.clone(),
            partition: fact.object.name.partition,
            byte_size: fact.object.size,
            uncompressed_byte_size: 0,
            checksum: fact.checksum.clone(),
            compression: "zstd".into(),
            format_version: 1,
            min_timestamp: None,
            max_timestamp: None,
            index_path: None,
            catalog_segment: None,
        }
    }

    #[test]
    fn every_object_is_announced_truly_and_every_announced_object_exists() {
        let objects = [facts(0, 0, 9), facts(0, 10, 19), facts(0, 20, 29)];
        let mut report = Report::default();
        // Announced twice (a batch re-announced after a crash): both agree.
        let mut events: Vec<_> = objects.iter().map(event).collect();
        events.push(event(&objects[0]));
        compare(&objects, &events, &HashSet::new(), &mut report);
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        let mut lying = event(&objects[1]);
        lying.batch_size = 3;
        let gone = event(&facts(0, 30, 39));
        let events = vec![event(&objects[0]), lying, gone];
        let mut report = Report::default();
        compare(&objects, &events, &HashSet::new(), &mut report);
        let mut found = kinds(&report.problems);
        found.sort_unstable();
        assert_eq!(found, ["event-mismatch", "missing-event", "orphan-event"]);

        // An object `bss erase` wrote has no event, and that is right.
        let rewritten = HashSet::from([objects[2].object.path.to_string()]);
        let mut report = Report::default();
        compare(
            &objects,
            &[event(&objects[0]), event(&objects[1])],
            &rewritten,
            &mut report,
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
