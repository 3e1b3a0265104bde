//! `ingestion-reloader [--config PATH] [--check-config] [--version]`: see the README and `docs/configuration.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bss_telemetry::Health;
use ingestion_reloader::config::ReloaderConfig;
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

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match ReloaderConfig::load(bss_config::config_path(args.config).as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ingestion-reloader: {error}");
            return ExitCode::from(2);
        }
    };
    let auth = match ingestion_reloader::http::auth::Authenticator::load(&config.auth) {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("ingestion-reloader: {error}");
            return ExitCode::from(2);
        }
    };
    let tls = match &config.tls {
        Some((cert, key)) => match bss_telemetry::Tls::load(cert, key) {
            Ok(tls) => Some(tls),
            Err(error) => {
                eprintln!(
                    "ingestion-reloader: RELOADER_TLS_CERT_FILE/RELOADER_TLS_KEY_FILE: {error}"
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    // Refuse what librdkafka would refuse when the producer is created, naming the setting.
    if let Err(error) = bss_kafka::check_settings(&config.kafka) {
        eprintln!("ingestion-reloader: {error}");
        return ExitCode::from(2);
    }
    if args.check_config {
        println!("ingestion-reloader: configuration is valid");
        return ExitCode::SUCCESS;
    }
    if let Err(error) = bss_telemetry::init_logging(&config.log_level) {
        eprintln!("ingestion-reloader: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ingestion-reloader: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop signal received");
            signal.cancel();
        });
        let metrics = Metrics::new();
        bss_telemetry::register_standard_metrics(&metrics.registry, "ingestion-reloader");
        ingestion_reloader::run(config, auth, tls, Health::default(), metrics, shutdown).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
