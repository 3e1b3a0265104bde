//! Exactly-once publication (`RELOADER_EXACTLY_ONCE`): each object of a job is published in one
//! Kafka transaction together with the job's checkpoints, written to the checkpoint topic
//! (`RELOADER_CHECKPOINT_TOPIC`, key = job id). A consumer of the target with
//! `isolation.level=read_committed` sees an object's records if and only if the checkpoint that
//! covers them is committed; a replica that takes a job over reads the last committed checkpoint,
//! and its producer (same `transactional.id`, `bss-reloader-<job id>`) fences the previous owner's,
//! whose open transaction the broker aborts. Each part of a shared job is its own unit
//! (`<job id>-p<partition>`: its own transactional id and checkpoint key), so parts on different
//! replicas never fence each other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bss_config::KafkaConfig;
use bss_kafka::Producer as FutureProducer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long librdkafka may take to initialize, commit or abort a transaction.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading the checkpoint topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The transactional publisher of one job run.
pub struct Transactions {
    /// Its producer (records and checkpoints).
    pub producer: FutureProducer,
    topic: String,
    unit: String,
    /// One transaction at a time: a job's partitions take turns, one object each.
    pub turn: tokio::sync::Mutex<()>,
}

impl Transactions {
    /// Creates the transactional producer of `unit` (a job id, or `<job id>-p<partition>`) and initializes it (fencing an earlier owner).
    pub async fn start(
        kafka: &KafkaConfig,
        checkpoint_topic: &str,
        unit: &str,
    ) -> Result<Self, KafkaError> {
        let producer =
            bss_kafka::create_transactional_producer(kafka, &format!("bss-reloader-{unit}"))?;
        let blocking = producer.clone();
        tokio::task::spawn_blocking(move || blocking.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(|_| KafkaError::Canceled)??;
        Ok(Self {
            producer,
            topic: checkpoint_topic.to_owned(),
            unit: unit.to_owned(),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Opens a transaction.
    pub fn begin(&self) -> Result<(), KafkaError> {
        self.producer.begin_transaction()
    }

    /// Adds the checkpoints to the open transaction, then commits it.
    pub async fn commit(&self, checkpoints: &BTreeMap<i32, i64>) -> Result<(), KafkaError> {
        let value = serde_json::json!({ "checkpoints": checkpoints }).to_string();
        self.producer
            .send_result(
                FutureRecord::to(&self.topic)
                    .key(self.unit.as_bytes())
                    .payload(value.as_bytes()),
            )
            .map_err(|(e, _)| e)?;
        let blocking = self.producer.clone();
        tokio::task::spawn_blocking(move || blocking.commit_transaction(TRANSACTION_TIMEOUT))
            .await
            .map_err(|_| KafkaError::Canceled)?
    }

    /// Aborts the open transaction (nothing of it becomes visible to read_committed consumers).
    pub async fn abort(&self) {
        let blocking = self.producer.clone();
        let aborted =
            tokio::task::spawn_blocking(move || blocking.abort_transaction(TRANSACTION_TIMEOUT))
                .await;
        if let Ok(Err(error)) = aborted {
            tracing::warn!(job = %self.unit, error = %error, "cannot abort the transaction; the broker aborts it when it times out or the job is taken over");
        }
    }
}

/// The last committed checkpoints of `unit` in the checkpoint topic (empty when it has none).
pub async fn committed_checkpoints(
    kafka: &KafkaConfig,
    checkpoint_topic: &str,
    unit: &str,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let mut config = bss_kafka::client_config(kafka);
    config
        .set("group.id", format!("bss-reloader-checkpoints-{unit}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create()?;
    let (topic, unit) = (checkpoint_topic.to_owned(), unit.to_owned());
    tokio::task::spawn_blocking(move || {
        let partitions = bss_kafka::partition_count(consumer.client(), &topic, READ_TIMEOUT)?
            .ok_or(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ))?;
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, READ_TIMEOUT)?;
            if high > low {
                ends.insert(partition, high);
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut latest = BTreeMap::new();
        // Transaction markers take offsets but are never delivered: a partition is read to its end
        // when the consumer's position reaches the end it had.
        while !ends.is_empty() {
            if Instant::now() > deadline {
                return Err(KafkaError::Canceled);
            }
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message?;
                if message.key() == Some(unit.as_bytes()) {
                    let value: serde_json::Value = message
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or_default();
                    latest = value["checkpoints"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_i64()?)))
                                .collect()
                        })
                        .unwrap_or_default();
                }
            }
            let position = consumer.position()?;
            ends.retain(|partition, end| {
                !matches!(
                    position.find_partition(&topic, *partition).map(|p| p.offset()),
                    Some(Offset::Offset(at)) if at >= *end
                )
            });
        }
        Ok(latest)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}
