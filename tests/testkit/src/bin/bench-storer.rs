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
use bss_layout::FileWrittenEvent;
use bss_testkit::bench::{self, proc_stat, Run};
use bss_testkit::kafka::{create_topic, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::{kafka_brokers, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

/// Partitions of the benchmark topic (`BENCH_PARTITIONS`, default 8).
fn partitions() -> i32 {
    std::env::var("BENCH_PARTITIONS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8)
}

/// Value size (`BENCH_VALUE_BYTES`; by default one CDC-like value, about 220 bytes).
fn value(n: u64) -> Vec<u8> {
    match std::env::var("BENCH_VALUE_BYTES")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        Some(size) => bench::cdc_value_of_size(n, size),
        None => bench::cdc_value(n),
    }
}

async fn load(topic: &str, messages: u64) -> anyhow::Result<u64> {
    let partitions = partitions();
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
            (n % partitions as u64) as i32,
            n,
            1_763_700_000_000 + n as i64,
        );
        let value = value(n);
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

/// Closes a consumer without waiting: leaving the group can hang on some brokers (see test-world
/// notes), but a consumer kept alive would go on fetching and heartbeating through the next rounds.
fn leave_in_background(consumer: BaseConsumer) {
    std::thread::spawn(move || {
        consumer.unsubscribe();
        drop(consumer);
    });
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
    leave_in_background(consumer);
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
    let mut storer = start_storer(storer_binary, topic, events, &bucket)?;
    storer.wait_log("partitions assigned", 1, Duration::from_secs(120));
    wait_written(&mut storer, messages).await
}

/// Starts the storer on `topic` from the start, into a local-folder bucket in `bucket`.
fn start_storer(
    storer_binary: &str,
    topic: &str,
    events: &str,
    bucket: &tempfile::TempDir,
) -> anyhow::Result<Service> {
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
    Ok(bench::start_service(
        storer_binary,
        "bench-storer",
        &env,
        &["--config", config_arg],
    ))
}

async fn wait_written(storer: &mut Service, messages: u64) -> anyhow::Result<Run> {
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

/// Produce → object durable and event acknowledged, at `rate` messages/s for `seconds`: for each
/// object, from its oldest record's producer timestamp to the arrival of its event here (an upper
/// bound of the latency of each of its records). Returns the latencies in milliseconds.
async fn latencies(storer_binary: &str, rate: f64, seconds: u64) -> anyhow::Result<Vec<i64>> {
    let (topic, events) = (unique("bench-latency"), unique("bench-latency-events"));
    create_topic(&topic, partitions()).await;
    create_topic(&events, 1).await;
    let bucket = tempfile::tempdir()?;
    let mut storer = start_storer(storer_binary, &topic, &events, &bucket)?;
    storer.wait_log("partitions assigned", 1, Duration::from_secs(120));

    let total = (rate * seconds as f64) as u64;
    let events_topic = events.clone();
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    // Each event's arrival time and object: the records' own timestamps are read back after the run,
    // so that measuring does not take CPU from the storer.
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i64, String)>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .set("group.id", unique("bench-latency"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        consumer.subscribe(&[&events_topic])?;
        let mut joined = Some(joined_tx);
        let (mut arrivals, mut records) = (Vec::new(), 0u64);
        let give_up = Instant::now() + Duration::from_secs(seconds + 120);
        while records < total && Instant::now() < give_up {
            let Some(message) = consumer.poll(Duration::from_millis(50)) else {
                if joined.is_some() && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                    joined.take().map(|tx| tx.send(()));
                }
                continue;
            };
            let arrived = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let event: FileWrittenEvent =
                serde_json::from_slice(message?.payload().unwrap_or_default())?;
            records += event.batch_size;
            arrivals.push((arrived, event.file_path));
        }
        leave_in_background(consumer);
        Ok(arrivals)
    });
    joined_rx.recv_timeout(Duration::from_secs(60))?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "5")
        .create()?;
    let started = Instant::now();
    let mut sent = 0u64;
    let partitions = partitions() as u64;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate) as u64).min(total);
        while sent < due {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let (key, value) = (sent.to_string(), value(sent));
            let record = FutureRecord::to(&topic)
                .partition((sent % partitions) as i32)
                .key(&key)
                .payload(&value)
                .timestamp(now_ms);
            match producer.send_result(record) {
                // Delivery is not awaited: the event says when the record is archived.
                Ok(_delivery) => sent += 1,
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    producer.flush(Duration::from_secs(30))?;
    let arrivals = reader.await??;
    if let Some((_, metrics)) = storer.get("/-/metrics") {
        let seals: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("bss_batches_sealed_total{"))
            .collect();
        println!("latency run, files by seal reason: {}", seals.join(", "));
    }
    let _ = storer.terminate(Duration::from_secs(60));
    let mut latencies = Vec::with_capacity(total as usize);
    for (arrived, path) in arrivals {
        let stored = std::fs::read(bucket.path().join("archive").join(&path))
            .with_context(|| format!("reading {path}"))?;
        let plain = bss_format::Compression::Zstd.decompress(stored.as_slice())?;
        for record in bss_format::RecordReader::new(plain, None) {
            if let Some(produced) = record?.timestamp_ms {
                latencies.push(arrived - produced);
            }
        }
    }
    Ok(latencies)
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
    create_topic(&topic, partitions()).await;
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
        "messages: {messages} over {} partitions, {:.0} bytes per value on average",
        partitions(),
        bytes as f64 / messages as f64
    );
    println!(
        "bare rdkafka consumer: {:>10.0} msg/s {:>8.1} MB/s ({:.2?})",
        rate(bare),
        mbps(bare),
        bare
    );
    println!(
        "ingestion-storer:      {:>10.0} msg/s {:>8.1} MB/s ({:.2?}, {}, local folder)",
        rate(storer_elapsed),
        mbps(storer_elapsed),
        storer_elapsed,
        std::env::var("BSS_COMPRESSION").unwrap_or_else(|_| "zstd".to_owned())
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
    if std::env::var("BENCH_LATENCY").as_deref() != Ok("0") {
        let half = rate(storer_elapsed) / 2.0;
        let mut latencies = latencies(&storer_binary, half, 20).await?;
        anyhow::ensure!(!latencies.is_empty(), "no event arrived");
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "produce -> durable + event at {half:.0} msg/s (half the storer's rate) for 20 s, each of {} records: p50 {} ms, p99 {} ms, max {} ms (target p99 <= flush interval + 1 s = 2000 ms)",
            latencies.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    println!(
        "storer peak RSS:       {:>10.1} MiB (memory budget {} MiB; target <= budget + 64 MiB = {} MiB)",
        peak_rss as f64 / (1 << 20) as f64,
        budget >> 20,
        (budget >> 20) + 64
    );
    Ok(())
}
