//! Ingestion Reloader: a REST service that re-publishes archived records from the bucket to Kafka —
//! one file, a topic (optionally a time window), one key — as jobs that any replica can follow and stop.
//!
//! [`engine`] is the reloader itself (plans, jobs, replay), with no knowledge of HTTP; [`http`] is the
//! REST API on top of it (routes: `docs/reloader-api.md`). This file only wires the service.

pub mod config;
pub mod engine;
pub mod http;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use bss_kafka::Producer;
use bss_telemetry::Health;
use object_store::ObjectStore;
use rdkafka::producer::Producer as _;
use tokio_util::sync::CancellationToken;

use crate::config::ReloaderConfig;
use crate::engine::Engine;
use crate::http::auth::Authenticator;
use crate::metrics::Metrics;

/// Runs the service until `shutdown`.
pub async fn run(
    config: ReloaderConfig,
    auth: Authenticator,
    tls: Option<bss_telemetry::Tls>,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(bucket = config.bucket.name(), topics = ?config.topics, kafka = ?config.kafka, memory = ?config.memory, replica = %config.replica_id,
        version = bss_telemetry::VERSION, revision = bss_telemetry::GIT_REVISION, "starting ingestion reloader");
    if auth.is_disabled() {
        tracing::warn!("RELOADER_AUTH=none: the API accepts every request without credentials; use only locally or behind an authenticating gateway");
    }
    let bucket = bss_bucket::build(&config.bucket)?;
    let producer = bss_kafka::create_producer(&config.kafka)?;
    let (port, metrics_port) = (config.http_port, config.metrics_port);
    let engine = Arc::new(Engine::new(
        config,
        Arc::clone(&bucket.store),
        producer.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let prober = tokio::spawn(probe_forever(
        bucket.store,
        producer,
        health.clone(),
        shutdown.clone(),
    ));
    let duties = engine
        .start_duties()
        .map_err(|e| anyhow::anyhow!("cannot start the replica's duties: {e}"))?;
    let metrics_server = metrics_port.map(|metrics_port| {
        bss_telemetry::spawn_metrics_server(
            metrics.registry.clone(),
            metrics_port,
            shutdown.clone().cancelled_owned(),
        )
    });
    health.mark_started();
    tracing::info!(port, metrics_port, https = tls.is_some(), "serving the API");
    let app = http::app(
        Arc::clone(&engine),
        Arc::new(auth),
        health,
        metrics.registry.clone(),
    );
    let served = bss_telemetry::serve(app, port, tls, shutdown.clone().cancelled_owned()).await;
    engine.drain_jobs().await;
    duties.stop().await;
    prober.abort();
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    served.map_err(|e| anyhow::anyhow!("cannot serve on port {port}: {e}"))
}

/// Keeps the readiness checks of the bucket and Kafka up to date, every 5 s.
async fn probe_forever(
    store: Arc<dyn ObjectStore>,
    producer: Producer,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        health.set(
            "bucket",
            bss_bucket::probe_within(store.as_ref(), Duration::from_secs(5)).await,
        );
        let producer = producer.clone();
        let kafka = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(4))
                .map(|_| ())
                .map_err(|e| format!("cannot reach Kafka: {e}"))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        health.set("kafka", kafka);
    }
}
