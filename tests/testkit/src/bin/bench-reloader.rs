//! Reloader benchmark (run by `tests/bench/reloader.sh`, release builds).
//!
//! 1. Archives N records (about 222-byte JSON values, 8 partitions, objects of 20,000 records, zstd,
//!    with sidecars) into a local-folder bucket, then measures in the same run:
//!    - a bare rdkafka producer sending the same records from memory (idempotent, as the reloader);
//!    - the reloader binary replaying the whole topic (`POST /reingestion/topic`), from the request to
//!      the job's completion (every record acknowledged);
//!    - OSO kafka-backup's engine (`oso-runner restore`, see `bss_testkit::peer`) restoring the same
//!      records into a new topic from its own zstd backup of the bare producer's topic, timed as a
//!      whole process; left out where the peer is not built.
//!
//!    In interleaved rounds (`BENCH_ROUNDS`, default 3) whose medians are printed.
//! 2. Key pruning: 1,000 objects of 2,000 records, one key present in 1 % of them; prints the bytes read
//!    from the bucket by `POST /reingestion/key` as a fraction of the archive's bytes.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bss_format::{Compression, Header, Record, TimestampType};
use bss_testkit::archive::write_objects;
use bss_testkit::bench::{self, proc_stat, Run};
use bss_testkit::kafka::create_topic;
use bss_testkit::process::{http_request, Service};
use bss_testkit::{kafka_brokers, unique};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use rdkafka::config::ClientConfig;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 8;

fn records(
    topic: &str,
    partition: i32,
    count: i64,
    key_of: impl Fn(i64) -> Vec<u8>,
) -> Vec<Record> {
    (0..count)
        .map(|offset| Record {
            topic: topic.into(),
            partition,
            offset,
            timestamp_ms: Some(1_763_700_000_000 + offset),
            timestamp_type: TimestampType::CreateTime,
            key: Some(key_of(offset)),
            payload: Some(bench::cdc_value((offset as u64) << 3 | partition as u64)),
            headers: vec![Header {
                key: "source".into(),
                value: Some(b"bench".to_vec()),
            }],
        })
        .collect()
}

async fn bare_produce(topic: &str, all: &[Record]) -> anyhow::Result<Duration> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for record in all {
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "source",
            value: Some(&b"bench"[..]),
        });
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .key(record.key.as_deref().unwrap_or_default())
            .payload(record.payload.as_deref().unwrap_or_default())
            .timestamp(record.timestamp_ms.unwrap_or_default())
            .headers(headers);
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
    Ok(started.elapsed())
}

fn post(port: u16, path: &str, body: serde_json::Value) -> anyhow::Result<String> {
    let (status, text) = http_request(port, "POST", path, &[], Some(body.to_string().as_bytes()))
        .context("no answer")?;
    anyhow::ensure!(status == 202, "{path}: {status} {text}");
    let answer: serde_json::Value = serde_json::from_str(&text)?;
    Ok(answer["requestId"]
        .as_str()
        .context("requestId")?
        .to_owned())
}

fn wait_job(port: u16, id: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        let (_, text) = http_request(port, "GET", &format!("/reingestion/jobs/{id}"), &[], None)
            .context("no answer")?;
        let job: serde_json::Value = serde_json::from_str(&text)?;
        if job["state"] != "running" {
            anyhow::ensure!(job["state"] == "completed", "job ended as {job}");
            return Ok(job);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let reloader_binary = args
        .next()
        .context("usage: bench-reloader RELOADER_BINARY [MESSAGES]")?;
    let messages: i64 = args.next().map_or(Ok(1_000_000), |m| m.parse())?;
    let per_partition = messages / i64::from(PARTITIONS);
    let bucket_dir = tempfile::tempdir()?;
    let store: std::sync::Arc<dyn ObjectStore> =
        std::sync::Arc::new(LocalFileSystem::new_with_prefix(bucket_dir.path())?);

    // 1. Throughput.
    let topic = unique("bench-archived");
    let mut all = Vec::with_capacity(messages as usize);
    for partition in 0..PARTITIONS {
        let list = records(&topic, partition, per_partition, |o| {
            format!("{{\"id\":{}}}", o * 8 + i64::from(partition)).into_bytes()
        });
        write_objects(&store, &topic, &list, 20_000, Compression::Zstd).await;
        all.extend(list);
    }
    let total = all.len() as u64;
    let bytes: u64 = all
        .iter()
        .map(|r| r.payload.as_ref().map_or(0, Vec::len) as u64)
        .sum();
    let env: Vec<(String, String)> = [
        ("KAFKA_BROKERS", kafka_brokers()),
        ("BUCKET_TYPE", "local".to_owned()),
        (
            "BUCKET_NAME",
            bucket_dir.path().to_string_lossy().into_owned(),
        ),
        ("RELOADER_AUTH", "none".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut reloader = bench::start_service(&reloader_binary, "bench-reloader", &env, &[]);
    reloader.wait_ready(Duration::from_secs(30));

    // The peer restores from its own backup of the same records: the first bare producer's topic.
    let runner = bench::oso_runner();
    let oso_folder = tempfile::tempdir()?;
    let oso_backup_id = unique("bench-oso");
    // Interleaved rounds (bare producer, reloader, OSO restore, then again); medians are reported.
    let rounds: usize = std::env::var("BENCH_ROUNDS").map_or(Ok(3), |r| r.parse())?;
    let (mut bares, mut replays, mut osos) = (Vec::new(), Vec::new(), Vec::new());
    let mut reloader_target = String::new();
    for round in 1..=rounds {
        let bare_target = unique("bench-bare");
        reloader_target = unique("bench-replayed");
        create_topic(&bare_target, PARTITIONS).await;
        create_topic(&reloader_target, PARTITIONS).await;
        let bare = bare_produce(&bare_target, &all).await?;
        if let (Some(runner), 1) = (&runner, round) {
            let config = bench::oso_backup_config(
                &oso_backup_id,
                &kafka_brokers(),
                &bare_target,
                &oso_folder.path().to_string_lossy(),
            );
            bench::run_oso(runner, "backup", &config)?;
        }

        let (cpu_before, _) = proc_stat(reloader.pid()).context("reading /proc")?;
        let started = Instant::now();
        let id = post(
            reloader.http_port,
            "/reingestion/topic",
            serde_json::json!({"topic": topic, "reIngestionTopic": reloader_target}),
        )?;
        let job = wait_job(reloader.http_port, &id)?;
        let elapsed = started.elapsed();
        let (cpu_after, peak_rss) = proc_stat(reloader.pid()).context("reading /proc")?;
        anyhow::ensure!(
            job["messagesPublished"].as_u64() == Some(total),
            "published {job}"
        );
        let replay = Run {
            elapsed,
            cpu_seconds: cpu_after - cpu_before,
            peak_rss,
        };

        let oso = match &runner {
            Some(runner) => {
                let target = unique("bench-oso-restored");
                create_topic(&target, PARTITIONS).await;
                let config = bench::oso_restore_config(
                    &oso_backup_id,
                    &kafka_brokers(),
                    &bare_target,
                    &target,
                    &oso_folder.path().to_string_lossy(),
                );
                Some(bench::run_oso(runner, "restore", &config)?)
            }
            None => None,
        };
        eprintln!(
            "round {round}: bare {bare:.2?}, reloader {:.2?}, OSO restore {:?}",
            replay.elapsed,
            oso.map(|o| o.elapsed)
        );
        bares.push(bare);
        replays.push(replay);
        osos.extend(oso);
    }
    drop(all);
    let bare = bench::median(bares);
    let replay_run = Run::median(&replays);
    let replay = replay_run.elapsed;
    let oso = (!osos.is_empty()).then(|| Run::median(&osos));

    // 2. Key pruning: 1,000 objects of 2,000 records (about 40 KB each, small next to the storer's
    // 8 MiB default files), "needle" in 10 of them. Written 100 objects at a time to bound memory.
    let keyed = unique("bench-keyed");
    const PER_OBJECT: i64 = 2_000;
    for batch in 0..10 {
        let first = batch * 100 * PER_OBJECT;
        let mut keyed_records = records(&keyed, 0, first + 100 * PER_OBJECT, |o| {
            format!("key-{o}").into_bytes()
        })
        .split_off(first as usize);
        keyed_records[42].key = Some(b"needle".to_vec());
        write_objects(
            &store,
            &keyed,
            &keyed_records,
            PER_OBJECT as usize,
            Compression::Zstd,
        )
        .await;
    }
    let archive_bytes: u64 = std::fs::read_dir(bucket_dir.path().join(&keyed))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let read_before = reloader
        .metric("bss_reloader_bucket_bytes_read_total{kind=\"object\"}")
        .unwrap_or(0.0)
        + reloader
            .metric("bss_reloader_bucket_bytes_read_total{kind=\"index\"}")
            .unwrap_or(0.0);
    let key_started = Instant::now();
    let id = post(
        reloader.http_port,
        "/reingestion/key",
        serde_json::json!({"topic": keyed, "key": "needle", "reIngestionTopic": reloader_target}),
    )?;
    let job = wait_job(reloader.http_port, &id)?;
    let key_elapsed = key_started.elapsed();
    let read_after = reloader
        .metric("bss_reloader_bucket_bytes_read_total{kind=\"object\"}")
        .unwrap_or(0.0)
        + reloader
            .metric("bss_reloader_bucket_bytes_read_total{kind=\"index\"}")
            .unwrap_or(0.0);
    let _ = reloader.terminate(Duration::from_secs(30));

    // 3. The same topic as a job shared through a work topic, by 1, 2 and 3 replicas.
    let mut shared = Vec::new();
    for replicas in 1..=3 {
        let (work, target) = (unique("bench-work"), unique("bench-shared"));
        create_topic(&work, PARTITIONS).await;
        create_topic(&target, PARTITIONS).await;
        let mut group_env = env.clone();
        group_env.push(("RELOADER_WORK_TOPIC".into(), work));
        let mut group: Vec<Service> = (0..replicas)
            .map(|_| Service::start(&reloader_binary, "bench-reloader", &group_env, &[]))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        for member in &mut group {
            member.wait_ready(Duration::from_secs(30));
        }
        // Timed from when the group has shared the work topic out.
        while group
            .iter()
            .map(|m| m.metric("bss_reloader_work_partitions").unwrap_or(0.0))
            .sum::<f64>()
            < f64::from(PARTITIONS)
            || group
                .iter()
                .any(|m| m.metric("bss_reloader_work_partitions").unwrap_or(0.0) == 0.0)
        {
            anyhow::ensure!(Instant::now() < deadline, "the work group did not form");
            std::thread::sleep(Duration::from_millis(200));
        }
        let started = Instant::now();
        let id = post(
            group[0].http_port,
            "/reingestion/topic",
            serde_json::json!({"topic": topic, "reIngestionTopic": target}),
        )?;
        let job = wait_job(group[0].http_port, &id)?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            job["messagesPublished"].as_u64() == Some(total),
            "published {job}"
        );
        shared.push((replicas, elapsed));
    }

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    for (replicas, elapsed) in &shared {
        println!(
            "shared job, {replicas} replica(s): {:>8.0} msg/s ({:.2?}; ratio to one replica without a work topic {:.2})",
            rate(*elapsed),
            elapsed,
            rate(*elapsed) / rate(replay)
        );
    }
    println!(
        "messages: {total} over {PARTITIONS} partitions, {:.0} bytes per value on average",
        bytes as f64 / total as f64
    );
    println!(
        "bare rdkafka producer:  {:>10.0} msg/s {:>8.1} MB/s ({:.2?})",
        rate(bare),
        bytes as f64 / 1e6 / bare.as_secs_f64(),
        bare
    );
    println!("reloader topic replay:  {:>10.0} msg/s {:>8.1} MB/s ({:.2?}, from the request to the last acknowledgement; {:.2} CPU-s per million, peak RSS {:.1} MiB)", rate(replay), bytes as f64 / 1e6 / replay.as_secs_f64(), replay, replay_run.cpu_seconds / (total as f64 / 1e6), replay_run.peak_rss as f64 / (1 << 20) as f64);
    if let Some(oso) = &oso {
        println!("OSO kafka-backup restore: {:>8.0} msg/s {:>8.1} MB/s ({:.2?}, from its own zstd backup of the same records, whole process; {:.2} CPU-s per million, peak RSS {:.1} MiB)", rate(oso.elapsed), bytes as f64 / 1e6 / oso.elapsed.as_secs_f64(), oso.elapsed, oso.cpu_seconds / (total as f64 / 1e6), oso.peak_rss as f64 / (1 << 20) as f64);
    }
    println!(
        "ratio reloader/bare:    {:>10.2}   (target >= 0.90)",
        rate(replay) / rate(bare)
    );
    if let Some(oso) = &oso {
        println!(
            "ratio reloader/OSO:     {:>10.2}   (target >= 1.10)",
            rate(replay) / rate(oso.elapsed)
        );
    }
    println!("medians of {rounds} interleaved rounds");
    println!(
        "key reingestion:        {} records from {} candidate objects of 1000 in {:.2?}; read {:.0} of {} archive bytes = {:.2} % (target <= 3 %)",
        job["messagesPublished"], job["objectsTotal"], key_elapsed, read_after - read_before, archive_bytes, 100.0 * (read_after - read_before) / archive_bytes as f64
    );
    Ok(())
}
