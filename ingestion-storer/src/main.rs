//! `ingestion-storer [--config PATH] [--check-config] [--version]`: see the README and `docs/configuration.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bss_telemetry::Health;
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

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match StorerConfig::load(bss_config::config_path(args.config).as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ingestion-storer: {error}");
            return ExitCode::from(2);
        }
    };
    // The clients are created long after start-up checks; refuse what librdkafka would refuse now,
    // naming the setting, so that a configuration that passes --check-config also starts.
    if let Err(error) = bss_kafka::check_settings(&config.kafka) {
        eprintln!("ingestion-storer: {error}");
        return ExitCode::from(2);
    }
    if args.check_config {
        println!("ingestion-storer: configuration is valid");
        return ExitCode::SUCCESS;
    }
    if let Err(error) = bss_telemetry::init_logging(&config.log_level) {
        eprintln!("ingestion-storer: {error}");
        return ExitCode::from(2);
    }
    bound_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // librdkafka callbacks may block one worker briefly during a rebalance: keep spares.
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ingestion-storer: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
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
        wait_for_signal().await;
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

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
