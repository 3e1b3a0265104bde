//! Ingestion Storer: archives Kafka ingestion topics into bucket objects, announces each object with a
//! "file written" event, forwards records to post-ingestion topics once stored, and commits offsets only
//! for what is durable. The protocol is written down in `docs/storer-protocol.md`.

pub mod batch;
/// The storer's settings live in `bss-config` (the `bss` tool reads the same ones).
pub use bss_config::storer as config;
mod context;
mod memory;
pub mod metrics;
mod pipeline;
mod progress;
mod publisher;
mod uploader;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bss_telemetry::Health;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use crate::config::StorerConfig;
use crate::context::StorerContext;
use crate::metrics::Metrics;
use crate::pipeline::ConsumeLoop;
use crate::progress::Progress;
use crate::publisher::Publisher;

/// How often Kafka and the bucket are probed for readiness.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the storer until `shutdown` fires, then drains. Health and metrics are updated as it goes.
pub async fn run(
    config: StorerConfig,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(
        topics = ?config.topics, events_topic = %config.events_topic, bucket = config.bucket.name(),
        compression = config.compression.as_str(), limits = ?config.limits,
        memory_budget_bytes = config.memory_budget_bytes, kafka = ?config.kafka,
        version = bss_telemetry::VERSION, revision = bss_telemetry::GIT_REVISION, "starting ingestion storer"
    );
    let bucket = bss_bucket::build(&config.bucket)?;
    wait_until(&shutdown, &health, "bucket", || async {
        bss_bucket::probe(bucket.store.as_ref())
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    declare_catalogs(&bucket.store, &config).await;

    let probe_consumer = Arc::new(
        bss_kafka::create_probe_consumer(&bss_kafka::client_config(&config.kafka))
            .context("cannot create the Kafka client")?,
    );
    wait_until(&shutdown, &health, "kafka", || {
        let probe_consumer = Arc::clone(&probe_consumer);
        async move {
            tokio::task::spawn_blocking(move || {
                bss_kafka::probe(&probe_consumer, None, Duration::from_secs(5))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        }
    })
    .await?;
    check_topics_exist(&config, Arc::clone(&probe_consumer)).await?;

    let progress = Arc::new(Progress::default());
    let context = StorerContext::new(
        Arc::clone(&progress),
        metrics.clone(),
        config.group.drain_timeout,
    );
    let consumer_config =
        bss_kafka::archiving_consumer_config(&config.kafka, config.memory.prefetch_kbytes);
    let consumer: Arc<StreamConsumer<StorerContext>> = Arc::new(
        consumer_config
            .create_with_context(context)
            .context("cannot create the Kafka consumer")?,
    );
    let topics: Vec<&str> = config.topics.iter().map(|t| t.ingestion.as_str()).collect();
    consumer.subscribe(&topics).context("cannot subscribe")?;
    health.mark_started();

    let abort = CancellationToken::new();
    let publisher = Arc::new(
        Publisher::new(
            &config.kafka,
            config.events_topic.clone(),
            bucket.name.clone(),
        )
        .context("cannot create the Kafka producer")?,
    );
    let prober = tokio::spawn(probe_forever(
        Arc::clone(&bucket.store),
        probe_consumer,
        Arc::clone(&consumer),
        health.clone(),
        metrics.clone(),
        config.group.stuck_rebalance_after,
        shutdown.clone(),
    ));
    let consume_loop = ConsumeLoop::new(
        config,
        Arc::clone(&consumer),
        Arc::clone(&publisher),
        bucket.store,
        progress,
        metrics,
        health,
        abort,
    );
    let outcome = consume_loop.run(shutdown).await;
    prober.abort();
    let producer = publisher.producer();
    // Leaving the group and flushing can hang on a broken connection: bound them.
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5))
        }),
    )
    .await;
    if closed.is_err() {
        tracing::warn!("leaving the consumer group timed out");
    }
    outcome
}

/// A folder the storer starts on while it is empty is cataloged from its first object on, so it is
/// marked complete: readers then never list it. A folder that already holds objects (written before
/// the catalog existed, or by Mia-Platform's storer) stays listed by readers until
/// `bss catalog rebuild` has cataloged those objects. A failure here only costs readers a listing.
async fn declare_catalogs(store: &Arc<dyn object_store::ObjectStore>, config: &StorerConfig) {
    use futures::StreamExt;
    let catalog = bss_catalog::Catalog::new(Arc::clone(store));
    let mut folders: Vec<&str> = config.topics.iter().map(|t| t.folder.as_str()).collect();
    folders.dedup();
    for folder in folders {
        match catalog.is_complete(folder).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(folder, error = %error, "cannot check the folder's catalog");
                continue;
            }
        }
        let prefix = object_store::path::Path::from(folder);
        let mut listing = store.list(Some(&prefix));
        let mut holds_objects = false;
        while let Some(meta) = listing.next().await {
            match meta {
                Ok(meta) if bss_layout::ObjectName::parse(meta.location.as_ref()).is_ok() => {
                    holds_objects = true;
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(folder, error = %error, "cannot list the folder");
                    holds_objects = true;
                    break;
                }
            }
        }
        if holds_objects {
            tracing::warn!(
                folder,
                "the folder holds objects written without a catalog: readers list it until `bss catalog rebuild` catalogs them"
            );
        } else if let Err(error) = catalog.mark_complete(folder, "ingestion-storer").await {
            tracing::warn!(folder, error = %error, "cannot mark the folder's catalog complete");
        }
    }
}

/// Retries `check` until it succeeds (marking `name` not ready meanwhile) or shutdown is requested.
async fn wait_until<F, Fut>(
    shutdown: &CancellationToken,
    health: &Health,
    name: &'static str,
    check: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match check().await {
            Ok(()) => {
                health.up(name);
                return Ok(());
            }
            Err(reason) => {
                health.set(name, Err(reason.clone()));
                tracing::warn!(check = name, reason = %reason, retry_in_ms = delay.as_millis() as u64, "not reachable yet");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("stopped before {name} became reachable"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Every topic the storer reads or writes must exist: a typo must stop the service, not stall it.
async fn check_topics_exist(
    config: &StorerConfig,
    client: Arc<rdkafka::consumer::BaseConsumer<bss_kafka::ErrorCapture>>,
) -> anyhow::Result<()> {
    let mut needed: Vec<String> = vec![config.events_topic.clone()];
    for mapping in &config.topics {
        needed.push(mapping.ingestion.clone());
        needed.extend(mapping.post_ingestion.iter().cloned());
    }
    tokio::task::spawn_blocking(move || {
        for topic in &needed {
            bss_kafka::probe(&client, Some(topic), Duration::from_secs(10))
                .map_err(|reason| anyhow::anyhow!("{reason}"))?;
        }
        Ok(())
    })
    .await
    .context("topic check task")?
}

/// Keeps readiness and the lag gauges current.
async fn probe_forever(
    store: Arc<dyn object_store::ObjectStore>,
    client: Arc<rdkafka::consumer::BaseConsumer<bss_kafka::ErrorCapture>>,
    consumer: Arc<StreamConsumer<StorerContext>>,
    health: Health,
    metrics: Metrics,
    unassigned_limit: Duration,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    let mut unassigned_since = Some(std::time::Instant::now());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // In the group but owning nothing for longer than any rebalance takes: a group stuck on the
        // broker side, or a replica beyond the partition count. Either way nothing is archived here,
        // which no lag gauge can show (it only exists for owned partitions).
        let owned = consumer.assignment().map_or(0, |list| list.count());
        metrics.set_assigned_partitions(owned);
        if owned > 0 {
            unassigned_since = None;
            health.up("assignment");
        } else {
            let since = *unassigned_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > unassigned_limit {
                health.set(
                    "assignment",
                    Err(format!(
                        "in the consumer group but assigned no partition for {} s (a rebalance takes at most {} s): the group may be stuck on the broker, or there are more replicas than partitions",
                        since.elapsed().as_secs(),
                        unassigned_limit.as_secs()
                    )),
                );
            }
        }
        health.set(
            "bucket",
            bss_bucket::probe_within(store.as_ref(), PROBE_INTERVAL).await,
        );
        let (client, consumer, metrics) =
            (Arc::clone(&client), Arc::clone(&consumer), metrics.clone());
        let kafka = tokio::task::spawn_blocking(move || {
            bss_kafka::probe(&client, None, Duration::from_secs(4)).map_err(|e| e.to_string())?;
            report_lag(&consumer, &metrics);
            Ok::<(), String>(())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        health.set("kafka", kafka);
    }
}

fn report_lag(consumer: &StreamConsumer<StorerContext>, metrics: &Metrics) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    for element in positions.elements() {
        let Some(position) = element.offset().to_raw() else {
            continue;
        };
        if position < 0 {
            continue;
        }
        if let Ok((_, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(2))
        {
            metrics.set_lag(
                element.topic(),
                element.partition(),
                (high - position).max(0),
            );
        }
    }
}
