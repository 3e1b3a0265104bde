//! `bss dump`: a System-of-Record dump rebuilt from the archive ("Raw Data dump generation"): the
//! latest value of every key as of a time, tombstones removing keys, as NDJSON in a file or the bucket.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bss_format::encode_line;
use bss_format::time::format_iso_ms;
use clap::ValueEnum;
use object_store::buffered::BufWriter as ObjectWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::compact::{self, Merged, Stats};
use crate::time::parse_time;
use crate::{Context, Outcome};

/// Arguments of `bss dump`.
#[derive(clap::Args)]
pub struct DumpArgs {
    /// Ingestion topic (its configured folder is read) or folder.
    #[arg(long)]
    topic: String,
    /// Latest values as of this time (inclusive) [default: now].
    #[arg(long, value_parser = parse_time)]
    as_of: Option<i64>,
    /// Output file; `-` writes to stdout.
    #[arg(
        long,
        required_unless_present = "output_prefix",
        conflicts_with = "output_prefix"
    )]
    output: Option<PathBuf>,
    /// Write to the bucket instead: `<prefix>/<folder>-<as-of>.ndjson` and a `.manifest.json` beside it.
    #[arg(long)]
    output_prefix: Option<String>,
    /// `records`: archive lines with key, value, headers and timestamp (`bss load --format records`
    /// reads them back exactly). `values`: the JSON values only, one per line, like a database export
    /// (`bss load --key …` reads them back when the key is a field of the value).
    #[arg(long, value_enum, default_value = "records")]
    format: DumpFormat,
    /// Memory for the merge; the archive beyond it is spilled to disk.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory: u64,
    /// Directory for spill files (they need up to the archive's uncompressed size) [default: the
    /// system temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where `bss organize` writes; its newest generation not after `--as-of` is used as a base.
    #[arg(long, default_value = ".bss-organized")]
    organized_prefix: String,
    /// Read the whole archive even when an organized generation could serve as a base.
    #[arg(long)]
    full: bool,
    /// List what would be read and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Output line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// Archive lines.
    Records,
    /// JSON values.
    Values,
}

/// Parses a size such as `256MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    bss_config::parse_byte_size(text)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 512MiB, 2GiB)"))
}

/// Runs `bss dump`.
pub async fn run(context: &Context, args: DumpArgs) -> anyhow::Result<Outcome> {
    let as_of = args.as_of.unwrap_or_else(now_ms);
    let archive = context.archive()?;
    let folder = context.folder(&args.topic);
    let inputs = compact::select_inputs(
        &archive,
        archive.store().as_ref(),
        &folder,
        &args.organized_prefix,
        as_of,
        args.full,
    )
    .await?;
    let bytes: u64 = inputs.objects.iter().map(|o| o.size).sum();
    let base = inputs.base.map_or_else(String::new, |b| {
        format!(", from the organized copy as of {}", format_iso_ms(b))
    });
    eprintln!(
        "bss: dump of {folder} as of {}: {} objects, {bytes} bytes to read{base}",
        format_iso_ms(as_of),
        inputs.objects.len()
    );
    if inputs.objects.is_empty() {
        bail!(
            "folder {folder} holds no archived object up to {}",
            format_iso_ms(as_of)
        );
    }
    if args.dry_run {
        println!(
            "Dry run: {} objects, {bytes} bytes would be read; nothing written.",
            inputs.objects.len()
        );
        return Ok(Outcome::Done);
    }
    let mut output = Output::open(&args, archive.store().clone(), &folder, as_of).await?;
    let spilled = match compact::spill(
        &archive,
        &inputs.objects,
        as_of,
        args.memory,
        args.work_dir.as_deref(),
    )
    .await
    {
        Ok(spilled) => spilled,
        Err(e) => {
            output.abort().await;
            return Err(e);
        }
    };
    let stats = spilled.stats.clone();
    let mut merged = spilled.merge();
    let (mut keys, mut deleted) = (0u64, 0u64);
    let mut line = Vec::new();
    let result: anyhow::Result<()> = async {
        while let Some(batch) = merged.recv().await {
            let Merged {
                records,
                deleted: gone,
            } = batch?;
            deleted += gone;
            line.clear();
            for record in &records {
                match args.format {
                    DumpFormat::Records => encode_line(record, &mut line),
                    DumpFormat::Values => value_line(record, &mut line)?,
                }
            }
            keys += records.len() as u64;
            output.write(&line).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        output.abort().await;
        return Err(e);
    }
    let summary = Summary {
        folder: &folder,
        as_of: format_iso_ms(as_of),
        keys,
        deleted_keys: deleted,
        read: stats,
    };
    let location = output.finish(&summary).await?;
    println!(
        "Wrote {keys} keys ({deleted} deleted keys left out) to {location}; read {} records from {} objects ({} newer than --as-of and {} without a key left out).",
        summary.read.records, summary.read.objects, summary.read.after_as_of, summary.read.without_key
    );
    Ok(Outcome::Done)
}

/// The value of `record` as one JSON line.
fn value_line(record: &bss_format::Record, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let payload = record.payload.as_deref().unwrap_or_default();
    let key = || String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
    let value: serde_json::Value = serde_json::from_slice(payload).with_context(|| {
        format!(
            "the value of key {:?} ({}/{} offset {}) is not JSON: use --format records",
            key(),
            record.topic,
            record.partition,
            record.offset
        )
    })?;
    if payload.contains(&b'\n') {
        serde_json::to_writer(&mut *out, &value)?;
    } else {
        out.extend_from_slice(payload.trim_ascii());
    }
    out.push(b'\n');
    Ok(())
}

/// What a dump holds, written beside a bucket dump.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    folder: &'a str,
    as_of: String,
    keys: u64,
    deleted_keys: u64,
    read: Stats,
}

enum Output {
    Stdout,
    File {
        path: PathBuf,
        partial: PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
    Bucket {
        store: std::sync::Arc<dyn ObjectStore>,
        path: ObjectPath,
        writer: ObjectWriter,
    },
}

impl Output {
    async fn open(
        args: &DumpArgs,
        store: std::sync::Arc<dyn ObjectStore>,
        folder: &str,
        as_of: i64,
    ) -> anyhow::Result<Self> {
        if let Some(prefix) = &args.output_prefix {
            let name = format!(
                "{}-{}.ndjson",
                folder.replace('/', "_"),
                format_iso_ms(as_of)
            );
            let path = ObjectPath::from(format!("{}/{name}", prefix.trim_end_matches('/')));
            match store.head(&path).await {
                Ok(_) => {
                    bail!("{path} already exists in the bucket; choose another --output-prefix")
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).context("checking the output location"),
            }
            let writer = ObjectWriter::new(store.clone(), path.clone());
            return Ok(Self::Bucket {
                store,
                path,
                writer,
            });
        }
        match &args.output {
            Some(path) if path.as_os_str() == "-" => Ok(Self::Stdout),
            Some(path) => {
                // Written aside and renamed at the end: a dump file is complete or absent.
                let mut partial = path.clone().into_os_string();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                Ok(Self::File {
                    path: path.clone(),
                    partial,
                    file: std::io::BufWriter::with_capacity(1 << 20, file),
                })
            }
            None => bail!("give --output or --output-prefix"),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Self::Stdout => std::io::stdout()
                .lock()
                .write_all(bytes)
                .context("writing to stdout"),
            Self::File { partial, file, .. } => file
                .write_all(bytes)
                .with_context(|| format!("writing {}", partial.display())),
            Self::Bucket { path, writer, .. } => writer
                .write_all(bytes)
                .await
                .with_context(|| format!("writing {path}")),
        }
    }

    async fn abort(self) {
        match self {
            Self::Stdout => {}
            Self::File { partial, .. } => {
                let _ = std::fs::remove_file(partial);
            }
            Self::Bucket { mut writer, .. } => {
                let _ = writer.abort().await;
            }
        }
    }

    /// Completes the output; returns where it is.
    async fn finish(self, summary: &Summary<'_>) -> anyhow::Result<String> {
        match self {
            Self::Stdout => {
                std::io::stdout().flush().context("writing to stdout")?;
                Ok("stdout".into())
            }
            Self::File {
                path,
                partial,
                mut file,
            } => {
                file.flush()
                    .with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, &path)
                    .with_context(|| format!("renaming to {}", path.display()))?;
                Ok(path.display().to_string())
            }
            Self::Bucket {
                store,
                path,
                mut writer,
            } => {
                writer
                    .shutdown()
                    .await
                    .with_context(|| format!("completing {path}"))?;
                let manifest = ObjectPath::from(format!(
                    "{}.manifest.json",
                    path.as_ref().trim_end_matches(".ndjson")
                ));
                store
                    .put(&manifest, serde_json::to_vec_pretty(summary)?.into())
                    .await
                    .with_context(|| format!("writing {manifest}"))?;
                Ok(format!("{path} (summary in {manifest})"))
            }
        }
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
