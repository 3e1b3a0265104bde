//! Storer throughput benchmark (run by `tests/bench/storer.sh`, which builds everything in release mode).
//!
//! Loads N CDC-like JSON messages of about 220 bytes (random ids, amounts, words; a key and a header
//! each) over 8 partitions, then measures in the same run, in interleaved rounds (`BENCH_ROUNDS`,
//! default 3) whose medians are printed:
//! - a bare rdkafka consumer (subscribe, count messages, nothing else): the baseline;
//! - the storer (release binary), writing zstd files into a local-folder bucket;
//! - OSO kafka-backup's engine (`oso-runner backup`, from `../shared/peers/oso-runner`, built by
//!   `tests/bench/storer.sh` into `target/peers`; or `OSO_RUNNER`), backing the topic up to local
//!   files with zstd and 8 MiB segments, timed as a whole process (it has no assignment to start a
//!   clock at). Its row is left out where the peer is not built.
//!
//! Both clocks start at the first delivered message / the first assignment, so group-join time (which
//! depends on the broker) is excluded from both. Prints messages/s, MB/s, the ratio storer/bare, the
//! storer's CPU seconds per million messages and its peak RSS.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bss_testkit::bench::{self, proc_stat, Run};
use bss_testkit::kafka::{create_topic, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::{kafka_brokers, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 8;

async fn load(topic: &str, messages: u64) -> anyhow::Result<u64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut bytes = 0u64;
    let mut pending = Vec::with_capacity(10_000);
    for n in 0..messages {
        let record = TestRecord::json(
            (n % PARTITIONS as u64) as i32,
            n,
            1_763_700_000_000 + n as i64,
        );
        let value = bench::cdc_value(n);
        bytes += value.len() as u64;
        let key = record.key.unwrap_or_default();
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("orders-db"),
        });
        let mut future_record = FutureRecord::to(topic)
            .partition(record.partition)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .timestamp(record.timestamp_ms);
        loop {
            match producer.send_result(future_record) {
                Ok(delivery) => break pending.push(delivery),
                Err((_, returned)) => {
                    future_record = returned;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        if pending.len() == 10_000 {
            for delivery in futures::future::join_all(pending.drain(..)).await {
                delivery
                    .context("delivery")?
                    .map_err(|(e, _)| e)
                    .context("produce")?;
            }
        }
    }
    for delivery in futures::future::join_all(pending).await {
        delivery
            .context("delivery")?
            .map_err(|(e, _)| e)
            .context("produce")?;
    }
    Ok(bytes)
}

fn bare_consumer(topic: &str, messages: u64) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("bench-bare"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "2000")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut count = 0u64;
    let mut first = None;
    let give_up = Instant::now() + Duration::from_secs(600);
    while count < messages {
        anyhow::ensure!(Instant::now() < give_up, "bare consumer stalled at {count}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            first.get_or_insert_with(Instant::now);
            count += 1;
        }
    }
    let elapsed = first.map(|f| f.elapsed()).unwrap_or_default();
    // Leaving the group can hang on some brokers (see test-world notes): do not wait for it.
    std::mem::forget(consumer);
    Ok(elapsed)
}

/// Backs `topic` up with OSO's engine into a temporary folder; `None` when the peer is not built.
fn oso_backup(topic: &str) -> anyhow::Result<Option<Run>> {
    let Some(runner) = bench::oso_runner() else {
        return Ok(None);
    };
    let folder = tempfile::tempdir()?;
    let config = bench::oso_backup_config(
        &unique("bench"),
        &kafka_brokers(),
        topic,
        &folder.path().join("backup").to_string_lossy(),
    );
    bench::run_oso(&runner, "backup", &config).map(Some)
}

/// Runs the storer over `topic` from the start into a fresh local-folder bucket, from its first
/// assignment until every message is written.
async fn storer_run(
    storer_binary: &str,
    topic: &str,
    events: &str,
    messages: u64,
) -> anyhow::Result<Run> {
    let bucket = tempfile::tempdir()?;
    let config = bucket.path().join("application.yaml");
    std::fs::write(
        &config,
        format!(
            "bss:\n  compression: zstd\n  flush-interval: 1s\n  topics-config:\n    data-topics-mapping:\n      - ingestion: {topic}\nkafka:\n  session.timeout.ms: 6000\n  heartbeat.interval.ms: 2000\n{}",
            std::env::var("BENCH_EXTRA_KAFKA").unwrap_or_default()
        ),
    )?;
    let env: Vec<(String, String)> = [
        ("KAFKA_BROKERS", kafka_brokers()),
        ("KAFKA_GROUP_ID", unique("bench-storer")),
        ("KAFKA_DEQUEUE_STRATEGY", "earliest".to_owned()),
        ("BSS_EVENTS_TOPIC", events.to_owned()),
        ("BUCKET_TYPE", "local".to_owned()),
        (
            "BUCKET_NAME",
            bucket.path().join("archive").to_string_lossy().into_owned(),
        ),
        ("LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    // BSS_* settings of the bench's own environment reach the storer, to measure other settings.
    .chain(std::env::vars().filter(|(k, _)| k.starts_with("BSS_")))
    .collect();
    let config_arg = config.to_str().context("path")?;
    // BENCH_WRAPPER (e.g. "perf record -g -o perf.data --") runs the storer under a profiler.
    let wrapper = std::env::var("BENCH_WRAPPER").unwrap_or_default();
    let mut command: Vec<&str> = wrapper.split_whitespace().collect();
    command.extend([storer_binary, "--config", config_arg]);
    let mut storer = Service::start(command[0], "bench-storer", &env, &command[1..]);
    storer.wait_log("partitions assigned", 1, Duration::from_secs(120));
    let assigned = Instant::now();
    let give_up = assigned + Duration::from_secs(900);
    loop {
        let written = storer
            .metric("bss_bucket_messages_written_total")
            .unwrap_or(0.0) as u64;
        if written >= messages {
            break;
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "storer stalled at {written} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storer_elapsed = assigned.elapsed();
    let (cpu_seconds, peak_rss) = proc_stat(storer.pid()).context("reading /proc")?;
    let _ = storer.terminate(Duration::from_secs(60));
    Ok(Run {
        elapsed: storer_elapsed,
        cpu_seconds,
        peak_rss,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let storer_binary = args
        .next()
        .context("usage: bench-storer STORER_BINARY [MESSAGES]")?;
    let messages: u64 = args.next().map_or(Ok(1_000_000), |m| m.parse())?;
    let topic = unique("bench");
    let events = unique("bench-events");
    create_topic(&topic, PARTITIONS).await;
    create_topic(&events, 1).await;
    let started = Instant::now();
    let bytes = load(&topic, messages).await?;
    eprintln!(
        "loaded {messages} messages ({:.1} MB of values) in {:.1?}",
        bytes as f64 / 1e6,
        started.elapsed()
    );

    // Interleaved rounds (bare, OSO, storer, then again), so that a slow moment of the machine or the
    // broker weighs on every contender alike; medians are reported.
    let rounds: usize = std::env::var("BENCH_ROUNDS").map_or(Ok(3), |r| r.parse())?;
    let (mut bares, mut osos, mut storers) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let bare_topic = topic.clone();
        let bare =
            tokio::task::spawn_blocking(move || bare_consumer(&bare_topic, messages)).await??;
        let oso_topic = topic.clone();
        let oso = tokio::task::spawn_blocking(move || oso_backup(&oso_topic)).await??;
        let storer = storer_run(&storer_binary, &topic, &events, messages).await?;
        eprintln!(
            "round {round}: bare {:.2?}, OSO {:?}, storer {:.2?}",
            bare,
            oso.as_ref().map(|o| o.elapsed),
            storer.elapsed
        );
        bares.push(bare);
        osos.extend(oso);
        storers.push(storer);
    }
    let bare = bench::median(bares.clone());
    let oso = (!osos.is_empty()).then(|| Run::median(&osos));
    let storer = Run::median(&storers);
    let (storer_elapsed, cpu_seconds, peak_rss) =
        (storer.elapsed, storer.cpu_seconds, storer.peak_rss);
    let budget = 64u64 << 20;

    let rate = |d: Duration| messages as f64 / d.as_secs_f64();
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "messages: {messages} over {PARTITIONS} partitions, {:.0} bytes per value on average",
        bytes as f64 / messages as f64
    );
    println!(
        "bare rdkafka consumer: {:>10.0} msg/s {:>8.1} MB/s ({:.2?})",
        rate(bare),
        mbps(bare),
        bare
    );
    println!(
        "ingestion-storer:      {:>10.0} msg/s {:>8.1} MB/s ({:.2?}, zstd, local folder)",
        rate(storer_elapsed),
        mbps(storer_elapsed),
        storer_elapsed
    );
    if let Some(oso) = &oso {
        println!(
            "OSO kafka-backup:      {:>10.0} msg/s {:>8.1} MB/s ({:.2?}, zstd, local files, whole process; {:.2} CPU-s per million, peak RSS {:.1} MiB)",
            rate(oso.elapsed),
            mbps(oso.elapsed),
            oso.elapsed,
            oso.cpu_seconds / (messages as f64 / 1e6),
            oso.peak_rss as f64 / (1 << 20) as f64
        );
    }
    println!(
        "ratio storer/bare:     {:>10.2}   (target >= 0.90)",
        rate(storer_elapsed) / rate(bare)
    );
    if let Some(oso) = &oso {
        println!(
            "ratio storer/OSO:      {:>10.2}   (target >= 1.10); CPU per message storer/OSO {:.2} (target <= 1)",
            rate(storer_elapsed) / rate(oso.elapsed),
            cpu_seconds / oso.cpu_seconds.max(f64::EPSILON)
        );
    }
    println!(
        "storer CPU:            {:>10.2} s per million messages",
        cpu_seconds / (messages as f64 / 1e6)
    );
    println!(
        "storer peak RSS:       {:>10.1} MiB (memory budget {} MiB; target <= budget + 64 MiB = {} MiB)",
        peak_rss as f64 / (1 << 20) as f64,
        budget >> 20,
        (budget >> 20) + 64
    );
    Ok(())
}
