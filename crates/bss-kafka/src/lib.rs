//! Kafka client setup shared by the services: librdkafka properties from the validated configuration,
//! a producer, and a connectivity probe.
#![warn(missing_docs)]

use std::time::Duration;

use bss_config::KafkaConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// librdkafka configuration holding every property of `kafka`.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in kafka.properties() {
        config.set(name, value);
    }
    config
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
pub fn create_producer(kafka: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
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
    config.create()
}

/// Asks the cluster for the metadata of `topic` (or of all topics): succeeds only when a broker answers
/// and, if given, the topic exists. Blocking: call from a blocking context.
pub fn probe<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let metadata = consumer
        .fetch_metadata(topic, timeout)
        .map_err(|e| format!("cannot reach Kafka: {e}"))?;
    if let Some(topic) = topic {
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            _ => return Err(format!("topic {topic:?} does not exist")),
        }
    }
    Ok(())
}

/// Enqueues an archived record for `topic`, as it was: key, value, headers (then `extra_headers`) and
/// timestamp; to `partition` when given, else the partitioner chooses by key. When librdkafka's local
/// queue is full it waits for room rather than failing. The returned future resolves on the broker's
/// acknowledgement.
pub async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    record: &bss_format::Record,
    partition: Option<i32>,
    extra_headers: &[(&str, &[u8])],
) -> Result<DeliveryFuture, KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + extra_headers.len());
    for header in &record.headers {
        headers = headers.insert(Header {
            key: &header.key,
            value: header.value.as_deref(),
        });
    }
    for (key, value) in extra_headers {
        headers = headers.insert(Header {
            key,
            value: Some(*value),
        });
    }
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
