//! What every binary of the project does around its work: wait for a stop signal, run on a Tokio
//! runtime, and exit with a status that says how it ended.

use std::future::Future;
use std::process::ExitCode;

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs a service's main future on a multi-threaded runtime (`workers` threads, else one per core)
/// and logs how it stopped: success (exit 0) or the error with its causes (exit 1).
pub fn run(
    name: &str,
    workers: Option<usize>,
    service: impl Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service) {
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

/// `--check-config` passed: says so, exit 0.
pub fn config_is_valid(name: &str) -> ExitCode {
    println!("{name}: configuration is valid");
    ExitCode::SUCCESS
}

/// A setting or a credential file is wrong: printed as `<name>: <error>`, exit 2.
pub fn bad_config(name: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{name}: {error}");
    ExitCode::from(2)
}
