//! What the benchmarks share: their data (CDC-like values), the process figures they report, and the
//! closest peer, OSO kafka-backup's engine, run as a separate process (`oso-runner`, built by the
//! bench scripts from `../shared/peers/oso-runner` into `target/peers`, or named by `OSO_RUNNER`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process::Service;

/// What a measured run cost: wall time, CPU seconds, peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Wall-clock time.
    pub elapsed: Duration,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
    /// Peak resident set size, bytes.
    pub peak_rss: u64,
}

impl Run {
    /// The median of each figure over `runs`, and the highest peak RSS.
    pub fn median(runs: &[Run]) -> Run {
        Run {
            elapsed: median(runs.iter().map(|r| r.elapsed).collect()),
            cpu_seconds: median(runs.iter().map(|r| r.cpu_seconds).collect()),
            peak_rss: runs.iter().map(|r| r.peak_rss).max().unwrap_or(0),
        }
    }
}

/// The median of `values` (the upper one of an even count).
pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// CPU seconds so far and peak RSS of a live process.
pub fn proc_stat(pid: u32) -> Option<(f64, u64)> {
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

/// The peer's binary, if it is built.
pub fn oso_runner() -> Option<PathBuf> {
    let path = std::env::var("OSO_RUNNER").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/release/oso-runner"),
        PathBuf::from,
    );
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "OSO kafka-backup: {} is not built; its row is left out",
            path.display()
        );
        None
    }
}

/// The YAML of an OSO backup of `topic` into `folder` (zstd, 8 MiB segments, up to the offsets
/// current at its start).
pub fn oso_backup_config(backup_id: &str, brokers: &str, topic: &str, folder: &str) -> String {
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{brokers}\"]\n  topics:\n    include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {folder}\nbackup:\n  compression: zstd\n  segment_max_bytes: 8388608\n  stop_at_current_offsets: true\n  continuous: false\n"
    )
}

/// The YAML of an OSO restore of backup `backup_id` in `folder` from `topic` into `target`.
pub fn oso_restore_config(
    backup_id: &str,
    brokers: &str,
    topic: &str,
    target: &str,
    folder: &str,
) -> String {
    format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [\"{brokers}\"]\nstorage:\n  backend: filesystem\n  path: {folder}\nrestore:\n  topic_mapping:\n    \"{topic}\": \"{target}\"\n  consumer_group_strategy: skip\n"
    )
}

/// Runs `oso-runner MODE CONFIG` with `config` as its YAML, timed as a whole process and sampled every
/// 20 ms for CPU and RSS (so CPU is short by at most one interval).
pub fn run_oso(runner: &std::path::Path, mode: &str, config: &str) -> anyhow::Result<Run> {
    let folder = tempfile::tempdir()?;
    let path = folder.path().join(format!("oso-{mode}.yaml"));
    std::fs::write(&path, config)?;
    let started = Instant::now();
    let mut child = std::process::Command::new(runner)
        .arg(mode)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", runner.display()))?;
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
            "OSO {mode} stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(status.success(), "OSO {mode} failed: {status}");
    Ok(Run {
        elapsed: started.elapsed(),
        cpu_seconds: last.0,
        peak_rss: last.1,
    })
}

/// SplitMix64: a cheap, well-mixed pseudo-random stream, the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// About 220 bytes of CDC-like JSON with realistic entropy: random ids, amounts, words and times.
pub fn cdc_value(n: u64) -> Vec<u8> {
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

/// A value of exactly `size` bytes made of distinct CDC-like values one after the other (cut at
/// `size`), so that large values keep the entropy of small ones.
pub fn cdc_value_of_size(n: u64, size: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(size + 256);
    let mut part = 0u64;
    while value.len() < size {
        value.extend_from_slice(&cdc_value(n.wrapping_mul(1_000_003).wrapping_add(part)));
        part += 1;
    }
    value.truncate(size);
    value
}

/// Starts a service under `BENCH_WRAPPER` when it is set (e.g. `perf record -g -o perf.data --`, to
/// profile it); stop it with `terminate`, which the wrapper passes on, so its output is complete.
pub fn start_service(binary: &str, name: &str, env: &[(String, String)], args: &[&str]) -> Service {
    let wrapper = std::env::var("BENCH_WRAPPER").unwrap_or_default();
    let mut command: Vec<&str> = wrapper.split_whitespace().collect();
    command.push(binary);
    command.extend(args);
    Service::start(command[0], name, env, &command[1..])
}

/// Runs `program` (quietly: `LOG_LEVEL=warn`, stdout discarded) under GNU time; returns (seconds,
/// peak RSS in MiB).
pub fn timed_command(
    program: &str,
    env: &[(&str, String)],
    args: &[&str],
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let output = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(program)
        .args(args)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .output()
        .context("running under /usr/bin/time (GNU time)")?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        anyhow::bail!("{program} {args:?} failed: {stderr}");
    }
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("no peak RSS from /usr/bin/time")?;
    Ok((seconds, kib / 1024.0))
}

/// An archive in a local-folder bucket, and what `bss` needs to read it.
pub struct LocalArchive {
    /// Holds the bucket and the configuration; free for work files.
    pub dir: tempfile::TempDir,
    /// The bucket's folder.
    pub bucket: PathBuf,
    /// `bss`'s environment: the configuration (one ingestion topic), the bucket, a dummy broker.
    pub env: Vec<(&'static str, String)>,
    /// The records' size as uncompressed archive lines.
    pub plain_bytes: u64,
}

/// Archives each partition's records as zstd objects of 20,000 (with sidecars) under the folder
/// `topic` of a new local-folder bucket.
pub async fn local_archive(
    topic: &str,
    partitions: impl IntoIterator<Item = Vec<bss_format::Record>>,
) -> anyhow::Result<LocalArchive> {
    let dir = tempfile::tempdir()?;
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket)?;
    let store: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(&bucket)?,
    );
    let mut plain_bytes = 0u64;
    let mut line = Vec::new();
    for records in partitions {
        for record in &records {
            line.clear();
            bss_format::encode_line(record, &mut line);
            plain_bytes += line.len() as u64;
        }
        crate::archive::write_objects(
            &store,
            topic,
            &records,
            20_000,
            bss_format::Compression::Zstd,
        )
        .await;
    }
    let config = dir.path().join("application.yaml");
    std::fs::write(
        &config,
        format!("bss:\n  topics-config:\n    data-topics-mapping:\n      - ingestion: {topic}\n"),
    )?;
    let env = vec![
        ("KAFKA_BROKERS", "127.0.0.1:1".to_owned()),
        ("KAFKA_GROUP_ID", "bench".to_owned()),
        ("BSS_EVENTS_TOPIC", "bench-events".to_owned()),
        ("BUCKET_TYPE", "local".to_owned()),
        ("BUCKET_NAME", bucket.to_string_lossy().into_owned()),
        ("BSS_CONFIG", config.to_string_lossy().into_owned()),
    ];
    Ok(LocalArchive {
        dir,
        bucket,
        env,
        plain_bytes,
    })
}
