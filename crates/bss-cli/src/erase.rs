//! `bss erase --topic T --key K`: the right to erasure. The engine and its crash safety are in
//! [`bss_archive::erase`]; this prints the plan or the erasure record.

use std::time::Duration;

use anyhow::Context as _;
use bss_archive::erase::{EraseRequest, ErasureHashKey};

use crate::{Context, Outcome};

/// Arguments of `bss erase`.
#[derive(clap::Args)]
pub struct EraseArgs {
    /// Topic (or folder) to erase the key from.
    #[arg(long)]
    topic: String,
    /// The key, as its UTF-8 bytes (the key of the Kafka record, e.g. `{"id":42}`).
    #[arg(long)]
    key: String,
    /// Who asks for it, recorded in the erasure record and the audit log [default: $USER].
    #[arg(long, env = "USER", default_value = "unknown")]
    requested_by: String,
    /// Why (e.g. a ticket number), recorded in the erasure record and the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// How long to let readers that selected an old object before the repoint keep reading it,
    /// before it is deleted (longer than your longest replay of one object takes).
    #[arg(long, default_value = "10m", value_parser = parse_grace)]
    grace: Duration,
    /// Show which objects and how many records would be erased; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// File holding the secret (32+ bytes) that keys the erased key's hash in the erasure record,
    /// the reloader's RELOADER_ERASURE_HASH_KEY_FILE; without one, the hash is keyed by a random
    /// secret that is forgotten, so the record links to no key.
    #[arg(long, env = "BSS_ERASURE_HASH_KEY_FILE", value_name = "PATH")]
    hash_key_file: Option<String>,
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    bss_config::parse_duration_ms(text)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 30s, 10m, 1h)"))
}

/// Runs `bss erase`.
pub async fn run(context: &Context, args: EraseArgs) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    let hash_key = args
        .hash_key_file
        .as_deref()
        .map(ErasureHashKey::load)
        .transpose()
        .context("--hash-key-file")?;
    let request = EraseRequest {
        grace: args.grace,
        dry_run: args.dry_run,
        ..EraseRequest::new(
            &context.folder(&args.topic),
            args.key.into_bytes(),
            hash_key.as_ref(),
            &args.requested_by,
            args.reason,
        )
    };
    let erasure = archive.erase(&request).await?;
    let objects: Vec<_> = erasure
        .objects
        .iter()
        .map(|o| {
            serde_json::json!({
                "object": o.old.path,
                "replacedBy": o.new_path,
                "erasedOffsets": o.erased_offsets,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "erasure": erasure.id,
            "folder": erasure.folder,
            "state": erasure.state,
            "records": erasure.records,
            "objects": objects,
            "dryRun": args.dry_run,
        })
    );
    Ok(Outcome::Done)
}
