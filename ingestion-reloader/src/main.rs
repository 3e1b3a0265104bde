//! `ingestion-reloader [--config PATH] [--check-config] [--version]`: see the README and `docs/configuration.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bss_telemetry::{service, Health};
use ingestion_reloader::config::ReloaderConfig;
use ingestion_reloader::http::auth::Authenticator;
use ingestion_reloader::metrics::Metrics;
use tokio_util::sync::CancellationToken;

// Replay allocates and frees several buffers per record (decoded fields, librdkafka's copies and
// delivery handles) across threads; mimalloc's per-thread free lists cut the reloader's CPU per
// record by ~8 % and raised replay throughput ~12 % in `tests/bench/reloader.sh`, for ~50 MiB more
// peak RSS (docs/benchmarks.md). The storer keeps glibc with bounded arenas: its memory budget
// matters more there, and mimalloc held more memory in its many-partition test.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Replays archived Kafka records from a bucket over a REST API.
///
/// Settings come from the configuration file and environment variables; see
/// docs/configuration.md.
#[derive(clap::Parser)]
#[command(name = "ingestion-reloader", version = bss_telemetry::VERSION_TEXT)]
struct Args {
    /// The configuration file [default: /app/config/application.yaml when it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate the settings and the credential files, then exit (0 when valid).
    #[arg(long)]
    check_config: bool,
}

const NAME: &str = "ingestion-reloader";

/// What the service starts with, checked.
struct StartUp {
    config: ReloaderConfig,
    auth: Authenticator,
    tls: Option<bss_telemetry::Tls>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match start_up(args) {
        Ok(Some(StartUp { config, auth, tls })) => service::run(NAME, None, async move {
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                service::stop_signal().await;
                tracing::info!("stop signal received");
                signal.cancel();
            });
            let metrics = Metrics::new();
            bss_telemetry::register_standard_metrics(&metrics.registry, NAME);
            ingestion_reloader::run(config, auth, tls, Health::default(), metrics, shutdown).await
        }),
        Ok(None) => service::config_is_valid(NAME),
        Err(error) => service::bad_config(NAME, &error),
    }
}

/// The validated settings and credential files (`None` for `--check-config`), with logging started.
fn start_up(args: Args) -> Result<Option<StartUp>, Box<dyn std::error::Error>> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = ReloaderConfig::load(bss_config::config_path(args.config).as_deref(), &env)?;
    let auth = Authenticator::load(&config.auth)?;
    let tls =
        match &config.tls {
            Some((cert, key)) => Some(bss_telemetry::Tls::load(cert, key).map_err(|error| {
                format!("RELOADER_TLS_CERT_FILE/RELOADER_TLS_KEY_FILE: {error}")
            })?),
            None => None,
        };
    // Refuse what librdkafka would refuse when the producer is created, naming the setting.
    bss_kafka::check_settings(&config.kafka)?;
    if args.check_config {
        return Ok(None);
    }
    bss_telemetry::init_logging(&config.log_level)?;
    Ok(Some(StartUp { config, auth, tls }))
}
