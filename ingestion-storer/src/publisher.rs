//! Producing to Kafka on behalf of a partition writer: the "file written" event and the forwarding of
//! records to post-ingestion topics. Each call returns only when Kafka acknowledged everything.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bss_config::KafkaConfig;
use bss_format::time::format_iso_ms;
use bss_format::{Compression, FileSummary, Record, FORMAT_VERSION};
use bss_kafka::Producer as FutureProducer;
use bss_layout::{FileWrittenEvent, FileWrittenKey};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;

/// What a file-written event describes.
pub struct WrittenObject<'a> {
    /// Object path.
    pub path: &'a str,
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Record offsets, counts, timestamps.
    pub summary: &'a FileSummary,
    /// Stored bytes.
    pub stored_bytes: u64,
    /// Bytes before compression.
    pub uncompressed_bytes: u64,
    /// `crc32c:…`.
    pub checksum: &'a str,
    /// Compression.
    pub compression: Compression,
    /// Its catalog segment.
    pub catalog_segment: &'a str,
}

/// Produces events and forwards records.
pub struct Publisher {
    /// Replaced when librdkafka declares it dead (see [`Publisher::replace_if_fatal`]).
    producer: RwLock<FutureProducer>,
    kafka: KafkaConfig,
    events_topic: String,
    bucket: String,
    partition_counts: Mutex<HashMap<String, i32>>,
}

impl Publisher {
    /// Creates the producer from the service's Kafka configuration.
    pub fn new(
        kafka: &KafkaConfig,
        events_topic: String,
        bucket: String,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: RwLock::new(bss_kafka::create_producer(kafka)?),
            kafka: kafka.clone(),
            events_topic,
            bucket,
            partition_counts: Mutex::new(HashMap::new()),
        })
    }

    /// The current producer (for flushing at shutdown and probing).
    pub fn producer(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After a failed send: if librdkafka put the producer in its fatal state (an idempotent producer
    /// that lost track of its sequence numbers, e.g. after a broker lost acknowledged writes), every
    /// later send on it fails forever, so build a new one. Events and forwards are at least once, so a
    /// new producer session loses nothing; the caller retries. Returns whether it was replaced.
    pub fn replace_if_fatal(&self, failed: &FutureProducer) -> bool {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return false;
        };
        let mut current = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            return true; // another writer already replaced it
        }
        match bss_kafka::create_producer(&self.kafka) {
            Ok(fresh) => {
                tracing::error!(error = %reason, code = ?code, "the Kafka producer hit a fatal error; replaced it with a new one");
                *current = fresh;
                true
            }
            Err(e) => {
                tracing::error!(error = %reason, rebuild_error = %e, "the Kafka producer hit a fatal error and cannot be rebuilt");
                false
            }
        }
    }

    /// Produces the file-written event and waits for its acknowledgement.
    pub async fn announce(&self, object: &WrittenObject<'_>) -> Result<(), KafkaError> {
        let summary = object.summary;
        let key = FileWrittenKey {
            topic: object.topic.to_owned(),
            partition: object.partition,
        };
        let event = FileWrittenEvent {
            file_path: object.path.to_owned(),
            batch_time_start: summary.first_timestamp_ms.map(format_iso_ms),
            batch_time_end: summary.last_timestamp_ms.map(format_iso_ms),
            batch_offset_start: summary.first_offset,
            batch_offset_end: summary.last_offset,
            batch_size: summary.records,
            bucket: self.bucket.clone(),
            topic: object.topic.to_owned(),
            partition: object.partition,
            byte_size: object.stored_bytes,
            uncompressed_byte_size: object.uncompressed_bytes,
            checksum: object.checksum.to_owned(),
            compression: object.compression.as_str().to_owned(),
            format_version: FORMAT_VERSION,
            min_timestamp: summary.min_timestamp_ms.map(format_iso_ms),
            max_timestamp: summary.max_timestamp_ms.map(format_iso_ms),
            index_path: Some(bss_layout::index::index_path(object.path)),
            catalog_segment: Some(object.catalog_segment.to_owned()),
        };
        // Plain structs of strings and numbers always serialize.
        let key = serde_json::to_vec(&key).expect("event key serializes");
        let value = serde_json::to_vec(&event).expect("event serializes");
        let record = FutureRecord::to(&self.events_topic)
            .key(&key)
            .payload(&value);
        let producer = self.producer();
        let sent = producer
            .send(record, Timeout::Never)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e);
        if sent.is_err() {
            self.replace_if_fatal(&producer);
        }
        sent
    }

    /// Forwards records, as they are (key, value, headers, timestamp), to `topic`; keeps the source
    /// partition number when the target has that partition, else lets the key choose. Returns how many
    /// records from the start were acknowledged when something fails, so a retry resumes there
    /// instead of re-sending (and reordering) earlier records.
    pub async fn forward(
        &self,
        records: &[Record],
        topic: &str,
    ) -> Result<(), (usize, KafkaError)> {
        let partitions = self.partition_count(topic).await.map_err(|e| (0, e))?;
        let producer = self.producer();
        let mut deliveries = Vec::with_capacity(records.len());
        let mut enqueue_error = None;
        'records: for (index, record) in records.iter().enumerate() {
            let partition = (record.partition < partitions).then_some(record.partition);
            match bss_kafka::enqueue(&producer, topic, record, partition, &[]).await {
                Ok(delivery) => deliveries.push(delivery),
                Err(e) => {
                    enqueue_error = Some((index, e));
                    break 'records;
                }
            }
        }
        // Await every enqueued record even after a failure, to report the first one not acknowledged.
        let mut first_failure = None;
        for (index, delivery) in deliveries.into_iter().enumerate() {
            let outcome = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => e,
                Err(_) => KafkaError::Canceled,
            };
            first_failure.get_or_insert((index, outcome));
        }
        match first_failure.or(enqueue_error) {
            None => Ok(()),
            Some(failure) => {
                self.replace_if_fatal(&producer);
                Err(failure)
            }
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(count) = self
            .partition_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(*count);
        }
        let count = bss_kafka::topic_partitions(&self.producer(), topic, Duration::from_secs(10))
            .await?
            .ok_or(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ))?;
        self.partition_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), count);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// librdkafka's own test hook puts the producer in the fatal state a broker that lost
    /// acknowledged writes causes (`OutOfOrderSequenceNumber`); the publisher must replace it.
    #[test]
    #[allow(unsafe_code)]
    fn a_producer_in_librdkafkas_fatal_state_is_replaced() {
        // No broker is needed: nothing is sent, and librdkafka connects lazily.
        let kafka = KafkaConfig::from_properties(BTreeMap::from([(
            "bootstrap.servers".to_owned(),
            "127.0.0.1:9".to_owned(),
        )]));
        let publisher = Publisher::new(&kafka, "events".into(), "bucket".into()).expect("producer");
        let old = publisher.producer();
        assert!(
            !publisher.replace_if_fatal(&old),
            "a healthy producer is kept"
        );
        let reason = c"test: lost acknowledged writes";
        // SAFETY: `old` is a live producer handle; the call only flags it as failed.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                old.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
        assert!(old.client().fatal_error().is_some());
        assert!(publisher.replace_if_fatal(&old));
        let fresh = publisher.producer();
        assert!(fresh.client().fatal_error().is_none());
        assert!(!std::ptr::eq(
            fresh.client().native_ptr(),
            old.client().native_ptr()
        ));
        // A second writer that saw the same failure does not replace the fresh one again.
        assert!(publisher.replace_if_fatal(&old));
        assert!(std::ptr::eq(
            publisher.producer().client().native_ptr(),
            fresh.client().native_ptr()
        ));
    }
}
