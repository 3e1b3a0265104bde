//! `ingestion-storer [--config PATH] [--check-config] [--version]`: see the README and `docs/configuration.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bss_telemetry::{service, Health};
use ingestion_storer::config::StorerConfig;
use ingestion_storer::metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// Archives Kafka ingestion topics into a bucket.
///
/// Settings come from the configuration file and environment variables; see
/// docs/configuration.md.
#[derive(clap::Parser)]
#[command(name = "ingestion-storer", version = bss_telemetry::VERSION_TEXT)]
struct Args {
    /// The configuration file [default: /app/config/application.yaml when it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate the settings and exit (0 when valid) without connecting to anything.
    #[arg(long)]
    check_config: bool,
}

const NAME: &str = "ingestion-storer";

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match start_up(args) {
        Ok(Some(config)) => {
            bound_allocator();
            // librdkafka callbacks may block one worker briefly during a rebalance: keep spares.
            service::run(NAME, Some(4), serve(config))
        }
        Ok(None) => service::config_is_valid(NAME),
        Err(error) => service::bad_config(NAME, &error),
    }
}

/// The validated settings (`None` for `--check-config`), with logging started.
fn start_up(args: Args) -> Result<Option<StorerConfig>, Box<dyn std::error::Error>> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = StorerConfig::load(bss_config::config_path(args.config).as_deref(), &env)?;
    // The clients are created long after start-up checks; refuse what librdkafka would refuse now,
    // naming the setting, so that a configuration that passes --check-config also starts.
    bss_kafka::check_settings(&config.kafka)?;
    if args.check_config {
        return Ok(None);
    }
    bss_telemetry::init_logging(&config.log_level)?;
    Ok(Some(config))
}

async fn serve(config: StorerConfig) -> anyhow::Result<()> {
    let health = Health::default();
    let metrics = Metrics::new();
    bss_telemetry::register_standard_metrics(&metrics.registry, "ingestion-storer");
    let shutdown = CancellationToken::new();
    let router = bss_telemetry::operational_router(
        health.clone(),
        metrics.registry.clone(),
        config.metrics_port,
    );
    let metrics_server = config.metrics_port.map(|metrics_port| {
        bss_telemetry::spawn_metrics_server(
            metrics.registry.clone(),
            metrics_port,
            shutdown.clone().cancelled_owned(),
        )
    });
    let http_shutdown = shutdown.clone();
    let port = config.http_port;
    let http = tokio::spawn(async move {
        bss_telemetry::serve(router, port, None, http_shutdown.cancelled_owned()).await
    });
    let signal_shutdown = shutdown.clone();
    tokio::spawn(async move {
        service::stop_signal().await;
        tracing::info!("stop signal received");
        signal_shutdown.cancel();
    });
    let outcome = ingestion_storer::run(config, health, metrics, shutdown.clone()).await;
    shutdown.cancel();
    match http.await {
        Ok(Err(e)) => tracing::warn!(error = %e, port, "health and metrics server failed"),
        Err(e) => tracing::warn!(error = %e, "health and metrics server task failed"),
        Ok(Ok(())) => {}
    }
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    outcome
}

/// Keeps glibc's allocator close to what the storer really holds, so that a pod sized from the
/// memory budget (docs/operations.md) is not killed: by default each thread that frees a large
/// record or file buffer may keep it in its own arena, and the threshold above which buffers are
/// mapped (and given back on free) rises as they are freed. Two arenas and a fixed 256 KiB
/// threshold cut the peak of 64 partitions of 1 MiB records from ~110 to ~80 MiB (32 MiB budget).
/// `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` in the environment win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_allocator() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before the runtime's
        // threads start.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator() {}
