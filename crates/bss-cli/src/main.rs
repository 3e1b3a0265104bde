//! `bss`: the operations toolkit. Argument parsing and dispatch only; each command lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use bss_cli::{
    catalog, dump, erase, inspect, load, offsets, organize, prune, verify, Context, Outcome,
};
use clap::{Parser, Subcommand};

// The Parquet organizer encodes on blocking threads: with the system allocator each thread's arena
// kept freed memory: peak RSS 534 MiB with glibc, 328 MiB with mimalloc in the analytics benchmark
// (files at their size limit), and whole-archive reads run faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Operations on a Bucket Storage Support deployment. Reads the storer's configuration (the same file
/// and environment variables), so it runs next to the storer with its ConfigMap and Secrets.
#[derive(Parser)]
#[command(name = "bss", version = bss_telemetry::VERSION_TEXT)]
struct Cli {
    /// The storer's configuration file [default: /app/config/application.yaml when it exists].
    #[arg(long, global = true, env = "BSS_CONFIG")]
    config: Option<PathBuf>,
    /// Log level of the JSON logs written to stderr.
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show or reset the storer's consumer group offsets.
    #[command(subcommand)]
    Offsets(offsets::OffsetsCommand),
    /// Load a System-of-Record dump (NDJSON, CSV or archive records) into a topic.
    Load(load::LoadArgs),
    /// Rebuild a dump from the archive: the latest value of every key as of a time.
    Dump(dump::DumpArgs),
    /// List archived topics and objects, print archived records.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Check the archive: no gaps or duplicates, every object decodes and matches its event.
    Verify(verify::VerifyArgs),
    /// Write a compacted, latest-per-key copy of a topic's archive under a separate prefix.
    Organize(organize::OrganizeArgs),
    /// Build, compact or show the archive catalog (what readers use instead of listing the bucket).
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Retention: delete the oldest objects whose records are all older than a time (catalog first).
    Prune(prune::PruneArgs),
    /// Right to erasure: rewrite the objects holding a key without its records (audited).
    Erase(erase::EraseArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = bss_telemetry::init_logging_to_stderr(&cli.log_level) {
        eprintln!("bss: {message}");
        return ExitCode::from(2);
    }
    let result = async {
        let context = Context::load(cli.config)?;
        match cli.command {
            Command::Offsets(command) => offsets::run(&context, command).await,
            Command::Load(args) => load::run(&context, args).await,
            Command::Dump(args) => dump::run(&context, args).await,
            Command::Inspect(command) => inspect::run(&context, command).await,
            Command::Verify(args) => verify::run(&context, args).await,
            Command::Organize(args) => organize::run(&context, args).await,
            Command::Catalog(command) => catalog::run(&context, command).await,
            Command::Prune(args) => prune::run(&context, args).await,
            Command::Erase(args) => erase::run(&context, args).await,
        }
    }
    .await;
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::ProblemsFound) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(error) => {
            eprintln!("bss: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
