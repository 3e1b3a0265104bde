//! `bss` benchmark (run by `tests/bench/toolkit.sh`, release builds), on a local-folder bucket:
//!
//! - baseline: `bss inspect read` of the whole archive to /dev/null (download, decode and re-encode of
//!   every record: the least any full pass can do);
//! - `bss dump` with a small memory budget (spilling) and with a large one, as wall time, ratio to the
//!   baseline, and peak RSS against the archive's uncompressed size;
//! - `bss organize` as of 90 % of the history, then an incremental `dump` starting from it against a
//!   `dump --full`.

use anyhow::Context as _;
use bss_format::{Header, Record, TimestampType};
use bss_testkit::bench::{local_archive, timed_command, LocalArchive};

const PARTITIONS: i32 = 8;
const BASE_MS: i64 = 1_763_700_000_000;

fn partition_records(topic: &str, partition: i32, count: i64, keys: i64) -> Vec<Record> {
    (0..count)
        .map(|offset| {
            let n = (offset * 7919 + i64::from(partition)) % keys;
            Record {
                topic: topic.into(),
                partition,
                offset,
                timestamp_ms: Some(BASE_MS + offset),
                timestamp_type: TimestampType::CreateTime,
                key: Some(format!("customer-{n:07}").into_bytes()),
                payload: (offset % 50 != 49).then(|| format!(
                    "{{\"id\":{n},\"customer\":\"customer-{n:07}\",\"status\":\"CONFIRMED\",\"amount\":{}.{:02},\"currency\":\"EUR\",\"items\":[{{\"sku\":\"SKU-{:05}\",\"qty\":{}}}],\"updatedAt\":\"2026-11-21T10:00:00.000Z\",\"source\":\"orders-db\"}}",
                    offset % 1000, offset % 100, offset % 50_000, offset % 9 + 1
                ).into_bytes()),
                headers: vec![Header { key: "source".into(), value: Some(b"bench".to_vec()) }],
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bss = args
        .next()
        .context("usage: bench-toolkit BSS_BINARY [RECORDS] [KEYS]")?;
    let total: i64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let keys: i64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let topic = "orders";
    let LocalArchive {
        dir,
        env,
        plain_bytes,
        ..
    } = local_archive(
        topic,
        (0..PARTITIONS).map(|p| partition_records(topic, p, total / i64::from(PARTITIONS), keys)),
    )
    .await?;
    let work = dir.path().to_string_lossy().into_owned();
    let out = dir
        .path()
        .join("dump.ndjson")
        .to_string_lossy()
        .into_owned();
    let plain_mib = plain_bytes as f64 / 1048576.0;
    println!("archive: {total} records, {keys} keys, {PARTITIONS} partitions, {plain_mib:.0} MiB uncompressed (zstd objects of 20,000)");

    let (base_s, base_rss) = timed_command(&bss, &env, &["inspect", "read", "--topic", topic])?;
    println!("baseline  inspect read (decode + encode all):  {base_s:6.2} s  {:8.0} rec/s  peak RSS {base_rss:5.0} MiB", total as f64 / base_s);
    for memory in ["32MiB", "1GiB"] {
        let (s, rss) = timed_command(
            &bss,
            &env,
            &[
                "dump",
                "--topic",
                topic,
                "--output",
                &out,
                "--memory",
                memory,
                "--work-dir",
                &work,
                "--full",
            ],
        )?;
        println!(
            "dump --memory {memory:<6}                        {s:6.2} s  {:8.0} rec/s  peak RSS {rss:5.0} MiB  ratio to baseline {:.2}",
            total as f64 / s,
            base_s / s
        );
    }
    let cut = (BASE_MS + total / i64::from(PARTITIONS) * 9 / 10).to_string();
    let (organize_s, _) = timed_command(
        &bss,
        &env,
        &[
            "organize",
            "--topic",
            topic,
            "--as-of",
            &cut,
            "--work-dir",
            &work,
        ],
    )?;
    println!("organize as of 90 %                          {organize_s:6.2} s");
    let (full_s, _) = timed_command(
        &bss,
        &env,
        &[
            "dump",
            "--topic",
            topic,
            "--output",
            &out,
            "--work-dir",
            &work,
            "--full",
        ],
    )?;
    let (incremental_s, _) = timed_command(
        &bss,
        &env,
        &[
            "dump",
            "--topic",
            topic,
            "--output",
            &out,
            "--work-dir",
            &work,
        ],
    )?;
    println!(
        "dump from the organized copy                 {incremental_s:6.2} s  vs --full {full_s:.2} s: {:.1}x faster",
        full_s / incremental_s
    );
    Ok(())
}
