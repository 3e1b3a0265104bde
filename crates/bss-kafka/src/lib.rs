//! Kafka client setup shared by the services: librdkafka properties from the validated configuration,
//! a producer, and a connectivity probe.
#![warn(missing_docs)]

pub mod client_metrics;
pub mod headers;

pub use client_metrics::StatisticsContext;

/// The services' producer: its statistics feed [`client_metrics`].
pub type Producer = FutureProducer<StatisticsContext>;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bss_config::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// librdkafka configuration holding every property of `kafka`.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in kafka.properties() {
        config.set(name, value);
    }
    config
}

/// The storer's consumer: the shared settings, no end-of-partition events, a refetch backoff short
/// enough to keep the queue topped up, and `prefetch_kbytes` of prefetch queue unless the user chose.
pub fn archiving_consumer_config(kafka: &KafkaConfig, prefetch_kbytes: u64) -> ClientConfig {
    let mut config = client_config(kafka);
    config.set("enable.partition.eof", "false");
    // librdkafka waits a full second (its default) before fetching again once its queue was full,
    // which starves the consume loop in bursts; 10 ms keeps the queue topped up.
    if config.get("fetch.queue.backoff.ms").is_none() {
        config.set("fetch.queue.backoff.ms", "10");
    }
    if config.get("queued.max.messages.kbytes").is_none() {
        config.set("queued.max.messages.kbytes", prefetch_kbytes.to_string());
    }
    // A fetch response is held whole until its last message is consumed; librdkafka's default
    // (50 MB) would let a topic of many partitions land far more than the prefetch queue at once.
    // Three queues' worth: one fetch then serves many partitions (a single queue's worth, 1 MiB per
    // partition, halved the throughput of 64 partitions), and stays bounded.
    if config.get("fetch.max.bytes").is_none() {
        config.set("fetch.max.bytes", (3 * prefetch_kbytes * 1024).to_string());
    }
    client_metrics::enable_statistics(&mut config);
    config
}

/// A consumer for the tools: the shared settings in `group`, committing only explicitly; with
/// `partition_eof`, the end of a partition is reported (to know when a read is complete).
pub fn tool_consumer(
    kafka: &KafkaConfig,
    group: &str,
    partition_eof: bool,
) -> Result<BaseConsumer<ErrorCapture>, KafkaError> {
    let mut config = client_config(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", partition_eof.to_string());
    create_probe_consumer(&config)
}

/// Properties that only consumers accept; librdkafka warns when a producer is given them.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "group.instance.id",
    "isolation.level",
];

/// A producer with idempotence on (no duplicates or reordering from retries within a session, which
/// implies `acks=all`) and Java's key partitioner; consumer-only properties of the shared configuration
/// are left out.
pub fn create_producer(kafka: &KafkaConfig) -> Result<Producer, KafkaError> {
    producer_config(kafka).create_with_context(StatisticsContext)
}

/// A transactional producer (exactly-once publication): the settings of [`create_producer`] and
/// `transactional_id`, which fences any earlier producer with the same id once
/// `init_transactions` runs.
pub fn create_transactional_producer(
    kafka: &KafkaConfig,
    transactional_id: &str,
) -> Result<Producer, KafkaError> {
    let mut config = producer_config(kafka);
    config.set("transactional.id", transactional_id);
    config.create_with_context(StatisticsContext)
}

/// The settings of [`create_producer`].
fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in kafka.properties() {
        if !CONSUMER_ONLY.contains(&name.as_str()) {
            config.set(name, value);
        }
    }
    if config.get("enable.idempotence").is_none() {
        config.set("enable.idempotence", "true");
    }
    // Anything the consumer could read must be forwardable: librdkafka's 1 MB default is below
    // Kafka's own default limit. The broker still enforces its limit per topic.
    if config.get("message.max.bytes").is_none() {
        config.set("message.max.bytes", "16777216");
    }
    // Java clients (and so most of a Kafka estate) place keyed records with murmur2; librdkafka's
    // default differs. Matching Java keeps a key on the same partition whoever produced it.
    if config.get("partitioner").is_none() {
        config.set("partitioner", "murmur2_random");
    }
    // A missing target topic must be an error, not silently created with broker defaults.
    if config.get("allow.auto.create.topics").is_none() {
        config.set("allow.auto.create.topics", "false");
    }
    if config.get("linger.ms").is_none() {
        config.set("linger.ms", "5");
    }
    client_metrics::enable_statistics(&mut config);
    config
}

/// Kafka settings librdkafka refuses; the text names the setting and masks secrets and the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Why a probe of the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No broker answered the metadata request (with librdkafka's latest reason, when it gave one).
    #[error("cannot reach Kafka: {error}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Unreachable {
        /// The failed request.
        error: KafkaError,
        /// librdkafka's latest logged error: a refused password, an unknown CA, …
        reason: Option<String>,
    },
    /// The cluster answered but has no such topic.
    #[error("topic {0:?} does not exist")]
    MissingTopic(String),
}

/// Checks the Kafka settings the way librdkafka will when the services create their clients, without
/// connecting to anything: every property name and value, and what only client creation checks (TLS
/// files, keys and their password, whether the SASL mechanism is available in this build). The
/// error names the property and never carries a secret or the rejected value.
pub fn check_settings(kafka: &KafkaConfig) -> Result<(), SettingsError> {
    let mut consumer = client_config(kafka);
    let mut producer = producer_config(kafka);
    for config in [&mut consumer, &mut producer] {
        // Without bootstrap servers a client never connects; librdkafka's warning about it is noise.
        config.remove("bootstrap.servers");
        config.set_log_level(RDKafkaLogLevel::Emerg);
    }
    consumer
        .create::<BaseConsumer>()
        .map(drop)
        .and_then(|()| {
            producer
                .create::<rdkafka::producer::BaseProducer>()
                .map(drop)
        })
        .map_err(|e| SettingsError(describe_error(&e, kafka)))
}

/// A Kafka client error as text safe to log: the value librdkafka rejected and every secret of
/// `kafka` are masked (librdkafka's own messages quote values).
fn describe_error(error: &KafkaError, kafka: &KafkaConfig) -> String {
    let mut text = match error {
        KafkaError::ClientConfig(_, description, property, value) => {
            let mut description = description.clone();
            if !value.is_empty() {
                description = description.replace(value.as_str(), "***");
            }
            format!("invalid Kafka setting kafka.{property}: {description}")
        }
        KafkaError::ClientCreation(reason) => {
            format!("the Kafka settings are refused by librdkafka: {reason}")
        }
        other => other.to_string(),
    };
    for secret in kafka.secret_values() {
        if !secret.is_empty() {
            text = text.replace(secret, "***");
        }
    }
    text
}

/// A client context that logs librdkafka's errors as structured events and keeps the latest, so that
/// a failed probe says why ("SASL authentication error: … invalid credentials", "certificate verify
/// failed") rather than librdkafka's generic "broker transport failure".
#[derive(Clone, Default)]
pub struct ErrorCapture {
    latest: Arc<Mutex<Option<String>>>,
}

impl ErrorCapture {
    /// The latest error librdkafka reported, forgotten once read.
    pub fn take_latest(&self) -> Option<String> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ClientContext for ErrorCapture {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                // Connection failures (refused credentials, an unknown CA) arrive only as logs.
                *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_owned());
                tracing::error!(target: "librdkafka", facility, "{message}");
            }
            L::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
            L::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "Kafka client error");
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }
}

impl ConsumerContext for ErrorCapture {}

/// A consumer (no group unless `config` has one) that reports librdkafka's errors through
/// [`ErrorCapture`]: for probes and tools.
pub fn create_probe_consumer(
    config: &ClientConfig,
) -> Result<BaseConsumer<ErrorCapture>, KafkaError> {
    config.create_with_context(ErrorCapture::default())
}

/// Asks the cluster for the metadata of `topic` (or of all topics): succeeds only when a broker answers
/// and, if given, the topic exists. Blocking: call from a blocking context.
pub fn probe(
    consumer: &BaseConsumer<ErrorCapture>,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let metadata = consumer.fetch_metadata(topic, timeout).map_err(|error| {
        // librdkafka queues its error events until the client is polled: serve them now so the
        // context has seen the reason.
        let _ = consumer.poll(Duration::ZERO);
        ProbeError::Unreachable {
            error,
            reason: consumer.context().take_latest(),
        }
    })?;
    if let Some(topic) = topic {
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            _ => return Err(ProbeError::MissingTopic(topic.to_owned())),
        }
    }
    Ok(())
}

/// The partition count of `topic`, `None` when it does not exist (or has no partitions). Blocking:
/// call it from a blocking context, or use [`topic_partitions`].
pub fn partition_count<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

/// [`partition_count`] from async code, asked through a producer's client.
pub async fn topic_partitions<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let (producer, topic) = (producer.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer as _;
        partition_count(producer.client(), &topic, timeout)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Enqueues an archived record for `topic`, as it was: key, value, headers (then `extra_headers`) and
/// timestamp; to `partition` when given, else the partitioner chooses by key. When librdkafka's local
/// queue is full it waits for room rather than failing. The returned future resolves on the broker's
/// acknowledgement.
pub async fn enqueue<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    record: &bss_format::Record,
    partition: Option<i32>,
    extra_headers: &[(&str, &[u8])],
) -> Result<DeliveryFuture, KafkaError> {
    let headers = headers::owned_headers(&record.headers, extra_headers);
    let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &record.key {
        future_record = future_record.key(key.as_slice());
    }
    if let Some(payload) = &record.payload {
        future_record = future_record.payload(payload.as_slice());
    }
    if let Some(ts) = record.timestamp_ms {
        future_record = future_record.timestamp(ts);
    }
    if let Some(partition) = partition {
        future_record = future_record.partition(partition);
    }
    loop {
        match producer.send_result(future_record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                future_record = returned;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}
