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
use bss_testkit::kafka::{create_topic, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::{kafka_brokers, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 8;

/// SplitMix64: a cheap, well-mixed pseudo-random stream, the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// About 220 bytes of CDC-like JSON with realistic entropy: random ids, amounts, words and times.
fn payload(n: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "alpine", "harbor", "copper", "meadow", "signal", "timber", "violet", "canyon", "ember",
        "falcon", "glacier", "juniper", "lantern", "marble", "nectar", "orchid",
    ];
    const STATUS: [&str; 4] = ["CONFIRMED", "PENDING", "SHIPPED", "CANCELLED"];
    let r = [mix(n), mix(n ^ 0xa5a5), mix(n ^ 0x5a5a_5a5a)];
    let word = |i: u32| WORDS[((r[2] >> (i * 4)) & 15) as usize];
    format!(
        "{{\"id\":\"{:016x}\",\"customer\":\"{}-{}-{:05}\",\"status\":\"{}\",\"amount\":{}.{:02},\"currency\":\"EUR\",\"items\":[{{\"sku\":\"{}-{:04}\",\"qty\":{}}}],\"note\":\"{} {} {}\",\"updatedAt\":\"2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z\"}}",
        r[0],
        word(0), word(1), r[1] % 100_000,
        STATUS[(r[1] >> 20) as usize % 4],
        (r[1] >> 24) % 10_000, (r[1] >> 40) % 100,
        word(2), (r[0] >> 16) % 10_000, (r[0] >> 32) % 9 + 1,
        word(3), word(4), word(5),
        (r[2] >> 32) % 28 + 1, (r[2] >> 37) % 24, (r[2] >> 42) % 60, (r[2] >> 48) % 60, (r[2] >> 54) % 1000,
    )
    .into_bytes()
}

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
        let value = payload(n);
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

fn proc_stat(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / 100.0, hwm_kb * 1024))
}

/// What a peer run cost: wall time, CPU seconds, peak RSS.
struct PeerRun {
    elapsed: Duration,
    cpu_seconds: f64,
    peak_rss: u64,
}

/// Backs `topic` up with OSO's engine into a temporary folder; `None` when the peer is not built.
fn oso_backup(topic: &str) -> anyhow::Result<Option<PeerRun>> {
    let runner = std::env::var("OSO_RUNNER").unwrap_or_else(|_| {
        format!(
            "{}/../../target/peers/release/oso-runner",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if !std::path::Path::new(&runner).exists() {
        eprintln!("OSO kafka-backup: {runner} is not built; its row is left out");
        return Ok(None);
    }
    let folder = tempfile::tempdir()?;
    let config = folder.path().join("oso-backup.yaml");
    std::fs::write(
        &config,
        format!(
            "mode: backup\nbackup_id: {id}\nsource:\n  bootstrap_servers: [\"{brokers}\"]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {path}\nbackup:\n  compression: zstd\n  segment_max_bytes: 8388608\n  stop_at_current_offsets: true\n  continuous: false\n",
            id = unique("bench"),
            brokers = kafka_brokers(),
            path = folder.path().join("backup").display(),
        ),
    )?;
    let started = Instant::now();
    let mut child = std::process::Command::new(&runner)
        .arg("backup")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {runner}"))?;
    // Sampled until it exits (its /proc entry goes with it): CPU is short by at most one interval.
    let mut last = (0.0, 0);
    let status = loop {
        if let Some(sample) = proc_stat(child.id()) {
            last = sample;
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "OSO backup stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(status.success(), "OSO backup failed: {status}");
    Ok(Some(PeerRun {
        elapsed: started.elapsed(),
        cpu_seconds: last.0,
        peak_rss: last.1,
    }))
}

/// Runs the storer over `topic` from the start into a fresh local-folder bucket, from its first
/// assignment until every message is written.
async fn storer_run(
    storer_binary: &str,
    topic: &str,
    events: &str,
    messages: u64,
) -> anyhow::Result<PeerRun> {
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
    Ok(PeerRun {
        elapsed: storer_elapsed,
        cpu_seconds,
        peak_rss,
    })
}

fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

impl PeerRun {
    /// The median of each figure, and the highest peak RSS.
    fn median(runs: &[PeerRun]) -> PeerRun {
        PeerRun {
            elapsed: median(runs.iter().map(|r| r.elapsed).collect()),
            cpu_seconds: median(runs.iter().map(|r| r.cpu_seconds).collect()),
            peak_rss: runs.iter().map(|r| r.peak_rss).max().unwrap_or(0),
        }
    }
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
    let bare = median(bares.clone());
    let oso = (!osos.is_empty()).then(|| PeerRun::median(&osos));
    let storer = PeerRun::median(&storers);
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
