//! `bss offsets`: the storer's consumer group offsets, shown or reset (to a time, the beginning, the
//! end, or explicit offsets). A reset shows its plan first, refuses while the group has members, and
//! reads back what it committed.

use bss_kafka::ErrorCapture;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::time::parse_time;
use crate::{Context, Outcome};

const KAFKA_TIMEOUT: Duration = Duration::from_secs(15);

/// Offsets commands.
#[derive(Subcommand)]
pub enum OffsetsCommand {
    /// Committed offsets, watermarks and lag of the group.
    Show {
        /// Consumer group [default: the storer's `kafka.group.id`].
        #[arg(long)]
        group: Option<String>,
        /// Topic; repeat for several [default: the storer's ingestion topics].
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
    /// Set the group's offsets; the storer must be stopped (scaled to zero) first.
    Reset(ResetArgs),
}

/// Arguments of `bss offsets reset`.
#[derive(clap::Args)]
pub struct ResetArgs {
    /// Consumer group [default: the storer's `kafka.group.id`].
    #[arg(long)]
    group: Option<String>,
    /// Topic; repeat for several [default: the storer's ingestion topics].
    #[arg(long = "topic")]
    topics: Vec<String>,
    #[command(flatten)]
    target: Target,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Where to move the group.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// The first offset whose timestamp is at or after this time (e.g. just after the projections
    /// snapshot); the end where there is none.
    #[arg(long, value_parser = parse_time)]
    to_datetime: Option<i64>,
    /// The earliest retained offset.
    #[arg(long)]
    to_earliest: bool,
    /// The end (only new messages).
    #[arg(long)]
    to_latest: bool,
    /// Explicit `TOPIC:PARTITION=OFFSET`; repeat for several. Other partitions are left alone.
    #[arg(long, value_parser = parse_explicit)]
    to_offset: Vec<(String, i32, i64)>,
}

fn parse_explicit(text: &str) -> Result<(String, i32, i64), String> {
    let fail = || format!("{text:?} is not TOPIC:PARTITION=OFFSET");
    let (place, offset) = text.rsplit_once('=').ok_or_else(fail)?;
    let (topic, partition) = place.rsplit_once(':').ok_or_else(fail)?;
    if topic.is_empty() {
        return Err(fail());
    }
    Ok((
        topic.to_owned(),
        partition.parse().map_err(|_| fail())?,
        offset.parse().map_err(|_| fail())?,
    ))
}

/// One partition of the plan.
#[derive(Debug, Clone)]
struct Row {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    low: i64,
    high: i64,
    target: Option<i64>,
}

/// Runs an `offsets` command.
pub async fn run(context: &Context, command: OffsetsCommand) -> anyhow::Result<Outcome> {
    let (group, topics) = match &command {
        OffsetsCommand::Show { group, topics }
        | OffsetsCommand::Reset(ResetArgs { group, topics, .. }) => (group.clone(), topics.clone()),
    };
    let group = group.unwrap_or_else(|| context.group().to_owned());
    let topics = if topics.is_empty() {
        match &command {
            OffsetsCommand::Reset(ResetArgs { target, .. }) if !target.to_offset.is_empty() => {
                let mut named: Vec<String> =
                    target.to_offset.iter().map(|(t, _, _)| t.clone()).collect();
                named.sort();
                named.dedup();
                named
            }
            _ => context.ingestion_topics(),
        }
    } else {
        topics
    };
    let consumer = context.consumer(&group)?;
    // librdkafka calls block: run the whole command on a blocking thread.
    tokio::task::spawn_blocking(move || match command {
        OffsetsCommand::Show { .. } => {
            let rows = current(&consumer, &topics)?;
            print_rows(&format!("Group {group}"), &rows, false);
            Ok(Outcome::Done)
        }
        OffsetsCommand::Reset(args) => reset(&consumer, &group, &topics, &args),
    })
    .await
    .context("offsets task")?
}

/// Committed offsets and watermarks of every partition of `topics`.
fn current(consumer: &BaseConsumer<ErrorCapture>, topics: &[String]) -> anyhow::Result<Vec<Row>> {
    let mut list = TopicPartitionList::new();
    let mut rows = Vec::new();
    for topic in topics {
        let partitions = bss_kafka::partition_count(consumer.client(), topic, KAFKA_TIMEOUT)
            .with_context(|| format!("reading the metadata of topic {topic}"))?
            .with_context(|| format!("topic {topic} does not exist"))?;
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, KAFKA_TIMEOUT)
                .with_context(|| format!("reading the watermarks of {topic}/{partition}"))?;
            list.add_partition(topic, partition);
            rows.push(Row {
                topic: topic.clone(),
                partition,
                committed: None,
                low,
                high,
                target: None,
            });
        }
    }
    let committed = consumer
        .committed_offsets(list, KAFKA_TIMEOUT)
        .context("reading the group's committed offsets")?;
    for row in &mut rows {
        row.committed = committed
            .find_partition(&row.topic, row.partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|&o| o >= 0);
    }
    Ok(rows)
}

fn reset(
    consumer: &BaseConsumer<ErrorCapture>,
    group: &str,
    topics: &[String],
    args: &ResetArgs,
) -> anyhow::Result<Outcome> {
    let mut rows = current(consumer, topics)?;
    let target = &args.target;
    if let Some(time) = target.to_datetime {
        let mut query = TopicPartitionList::new();
        for row in &rows {
            query.add_partition_offset(&row.topic, row.partition, Offset::Offset(time))?;
        }
        let found = consumer
            .offsets_for_times(query, KAFKA_TIMEOUT)
            .context("looking up offsets by time")?;
        for row in &mut rows {
            let element = found
                .find_partition(&row.topic, row.partition)
                .with_context(|| format!("no answer for {}/{}", row.topic, row.partition))?;
            element
                .error()
                .with_context(|| format!("looking up {}/{} by time", row.topic, row.partition))?;
            // No record at or after the time: the end.
            row.target = Some(match element.offset() {
                Offset::Offset(o) if o >= 0 => o,
                _ => row.high,
            });
        }
    } else if target.to_earliest {
        rows.iter_mut().for_each(|r| r.target = Some(r.low));
    } else if target.to_latest {
        rows.iter_mut().for_each(|r| r.target = Some(r.high));
    } else {
        for (topic, partition, offset) in &target.to_offset {
            let row = rows
                .iter_mut()
                .find(|r| &r.topic == topic && r.partition == *partition)
                .with_context(|| {
                    format!("{topic}/{partition} is not a partition of the topics being reset")
                })?;
            // Outside the log the storer would fall back to auto.offset.reset and skip or repeat data.
            if *offset < row.low || *offset > row.high {
                bail!(
                    "offset {offset} for {topic}/{partition} is outside the log ({}..={})",
                    row.low,
                    row.high
                );
            }
            row.target = Some(*offset);
        }
    }
    print_rows(&format!("Plan for group {group}"), &rows, true);

    let members = active_members(consumer, group)?;
    if args.dry_run {
        if !members.is_empty() {
            println!(
                "Note: the group has active members ({}); a real reset would be refused.",
                members.join(", ")
            );
        }
        println!("Dry run: nothing committed.");
        return Ok(Outcome::Done);
    }
    if !members.is_empty() {
        bail!(
            "group {group} has {} active member(s): {}; stop the storer (scale it to 0 replicas) and retry",
            members.len(),
            members.join(", ")
        );
    }
    let mut commit = TopicPartitionList::new();
    for row in &rows {
        if let Some(target) = row.target {
            commit.add_partition_offset(&row.topic, row.partition, Offset::Offset(target))?;
        }
    }
    consumer
        .commit(&commit, CommitMode::Sync)
        .with_context(|| format!("committing the new offsets of group {group}"))?;
    let after = current(consumer, topics)?;
    print_rows(&format!("Committed for group {group}"), &after, false);
    for row in rows.iter().filter(|r| r.target.is_some()) {
        let committed = after
            .iter()
            .find(|a| a.topic == row.topic && a.partition == row.partition)
            .and_then(|a| a.committed);
        if committed != row.target {
            bail!(
                "{}/{}: committed {committed:?} reads back instead of {:?}",
                row.topic,
                row.partition,
                row.target
            );
        }
    }
    Ok(Outcome::Done)
}

/// Members of the group, as `client-id@host`; empty when the group is empty or unknown.
fn active_members(
    consumer: &BaseConsumer<ErrorCapture>,
    group: &str,
) -> anyhow::Result<Vec<String>> {
    let groups = consumer
        .fetch_group_list(Some(group), KAFKA_TIMEOUT)
        .with_context(|| format!("checking whether group {group} has active members"))?;
    Ok(groups
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| g.members())
        .map(|m| format!("{}@{}", m.client_id(), m.client_host()))
        .collect())
}

fn print_rows(title: &str, rows: &[Row], with_target: bool) {
    println!("{title}:");
    println!(
        "  {:<40} {:>4} {:>12} {:>12} {:>12} {:>12}{}",
        "TOPIC",
        "PART",
        "COMMITTED",
        "LOW",
        "HIGH",
        "LAG",
        if with_target {
            format!(" {:>12} {:>12}", "NEW", "LAG AFTER")
        } else {
            String::new()
        }
    );
    let show = |o: Option<i64>| o.map_or_else(|| "-".to_owned(), |o| o.to_string());
    for row in rows {
        let lag = |o: Option<i64>| o.map(|o| row.high - o);
        let extra = if with_target {
            format!(" {:>12} {:>12}", show(row.target), show(lag(row.target)))
        } else {
            String::new()
        };
        println!(
            "  {:<40} {:>4} {:>12} {:>12} {:>12} {:>12}{extra}",
            row.topic,
            row.partition,
            show(row.committed),
            row.low,
            row.high,
            show(lag(row.committed)),
        );
    }
}
