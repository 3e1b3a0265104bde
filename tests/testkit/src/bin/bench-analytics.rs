//! Parquet organizer benchmark (run by `tests/bench/analytics.sh`, release builds), on a local-folder
//! bucket holding 1M CDC-like records over ~35 hours in 8 partitions (or one hour, `STEP_MS` 1):
//!
//! - baseline: `bss inspect read` of the whole archive (download, decode and re-encode every record);
//! - `bss organize --format parquet` of the whole archive, as wall time, ratio to the baseline and
//!   peak RSS, then `bss verify --parquet`;
//! - the Parquet copy's size against the zstd archive's;
//! - DuckDB, "one key's history over the whole topic" (the docs' query) on the Parquet copy against
//!   the same question asked of the JSON-lines archive objects.

use anyhow::Context as _;
use bss_format::{Header, Record, TimestampType};
use bss_testkit::bench::{cdc_value, local_archive, timed_command, LocalArchive};

const PARTITIONS: i64 = 8;
const BASE_MS: i64 = 1_763_700_000_000;

/// One partition's records, one every `step_ms`; key `customer-<n>` lives in partition `n % 8`.
fn partition_records(partition: i64, count: i64, keys: i64, step_ms: i64) -> Vec<Record> {
    (0..count)
        .map(|offset| {
            let n = (offset * 7919) % (keys / PARTITIONS) * PARTITIONS + partition;
            Record {
                topic: "orders".into(),
                partition: partition as i32,
                offset,
                timestamp_ms: Some(BASE_MS + offset * step_ms),
                timestamp_type: TimestampType::CreateTime,
                key: Some(format!("customer-{n:07}").into_bytes()),
                payload: (offset % 50 != 49).then(|| cdc_value((offset << 3 | partition) as u64)),
                headers: vec![Header {
                    key: "trace-id".into(),
                    value: Some(format!("{offset:016x}").into_bytes()),
                }],
            }
        })
        .collect()
}

fn size_of(dir: &std::path::Path, suffix: &str) -> anyhow::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let (b, f) = size_of(&entry.path(), suffix)?;
            bytes += b;
            files += f;
        } else if entry.file_name().to_string_lossy().ends_with(suffix) {
            bytes += entry.metadata()?.len();
            files += 1;
        }
    }
    Ok((bytes, files))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench-analytics BSS_BINARY PYTHON [RECORDS] [KEYS] [STEP_MS]";
    let bss = args.next().context(usage)?;
    let python = args.next().context(usage)?;
    let total: i64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let keys: i64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    // 1000: ~35 hours of records, small hourly files; 1: one hour, files at their size limit.
    let step_ms: i64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let LocalArchive {
        dir: _dir,
        bucket,
        env,
        plain_bytes,
    } = local_archive(
        "orders",
        (0..PARTITIONS).map(|p| partition_records(p, total / PARTITIONS, keys, step_ms)),
    )
    .await?;
    println!(
        "archive: {total} records, {keys} keys, {PARTITIONS} partitions, {:.0} MiB uncompressed, {:.1} hours (zstd objects of 20,000)",
        plain_bytes as f64 / 1048576.0,
        (total / PARTITIONS * step_ms) as f64 / 3_600_000.0
    );

    let rate = |s: f64| total as f64 / s;
    let (base_s, base_rss) = timed_command(&bss, &env, &["inspect", "read", "--topic", "orders"])?;
    println!(
        "baseline  inspect read (decode + encode all)   {base_s:6.2} s  {:8.0} rec/s  peak RSS {base_rss:4.0} MiB",
        rate(base_s)
    );
    let (organize_s, organize_rss) =
        timed_command(&bss, &env, &["organize", "--format", "parquet"])?;
    println!(
        "organize --format parquet                      {organize_s:6.2} s  {:8.0} rec/s  peak RSS {organize_rss:4.0} MiB  ratio to baseline {:.2}",
        rate(organize_s),
        base_s / organize_s
    );
    let (verify_s, _) = timed_command(&bss, &env, &["verify", "--parquet"])?;
    println!(
        "verify --parquet                               {verify_s:6.2} s  {:8.0} rec/s",
        rate(verify_s)
    );

    let (archive_bytes, objects) = size_of(&bucket.join("orders"), ".txt.zst")?;
    let parquet_root = bucket.join(".bss-parquet");
    let (parquet_bytes, files) = size_of(&parquet_root, ".parquet")?;
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "size: zstd archive {:.1} MiB in {objects} objects; Parquet copy {:.1} MiB in {files} files: {:.2}x the archive",
        mib(archive_bytes),
        mib(parquet_bytes),
        parquet_bytes as f64 / archive_bytes as f64
    );

    let key = format!("customer-{:07}", keys / 2 + 3);
    let output = std::process::Command::new(&python)
        .arg("tests/bench/duckdb_key_history.py")
        .arg(&parquet_root)
        .arg(bucket.join("orders"))
        .arg(&key)
        .output()
        .context("running DuckDB")?;
    anyhow::ensure!(
        output.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}
