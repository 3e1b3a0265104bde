//! Test harness shared by the services' integration tests.
//!
//! Everything points at the local stack started by `tests/stack/up.sh`; each address can be overridden
//! by environment variable so the same tests run against a real Kafka and real buckets:
//! `BSS_TEST_KAFKA` (default `127.0.0.1:39092`), `BSS_TEST_KAFKA_TIMES` (`127.0.0.1:39094`, noida-db), `BSS_TEST_S3_ENDPOINT` (`http://127.0.0.1:39500`),
//! `BSS_TEST_S3_BUCKET` (`bss-test`), `BSS_TEST_S3_KEY_ID` / `BSS_TEST_S3_KEY` (`test` / `testtesttest`),
//! `BSS_TEST_S3_REGION` (`us-east-1`), `BSS_TEST_GCS_ENDPOINT` (`http://127.0.0.1:39333`, SeaweedFS),
//! `BSS_TEST_GCS_BUCKET` (`bss-test`).
//!
//! Tests must be parallel-safe: every topic, group, folder and port comes from [`unique`] or [`free_port`].

pub mod archive;
pub mod bench;
pub mod bucket;
pub mod kafka;
pub mod process;
pub mod proxy;

use std::sync::atomic::{AtomicU32, Ordering};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Kafka bootstrap servers of the test stack.
pub fn kafka_brokers() -> String {
    env_or("BSS_TEST_KAFKA", "127.0.0.1:39092")
}

/// The second test broker (noida-db), whose ListOffsets by time and watermarks are right; used where
/// a test depends on them (tansu's are not: see `tests/stack/up.sh`). Override: `BSS_TEST_KAFKA_TIMES`.
pub fn time_aware_kafka_brokers() -> String {
    env_or("BSS_TEST_KAFKA_TIMES", "127.0.0.1:39094")
}

/// The secured broker speaking SASL_SSL with SCRAM enforced (`tests/stack/secure.sh`). Override:
/// `BSS_TEST_KAFKA_SASL_SSL`.
pub fn sasl_ssl_brokers() -> String {
    env_or("BSS_TEST_KAFKA_SASL_SSL", "127.0.0.1:29097")
}

/// The broker behind a TLS terminator that requires a client certificate. Override:
/// `BSS_TEST_KAFKA_MTLS`.
pub fn mtls_brokers() -> String {
    env_or("BSS_TEST_KAFKA_MTLS", "127.0.0.1:29099")
}

/// The SCRAM user the stack creates on the SASL_SSL broker, and its password.
pub const SCRAM_USER: &str = "bss-scram";
/// See [`SCRAM_USER`].
pub const SCRAM_PASSWORD: &str = "bss-scram-secret";
/// The password of the stack's client key (`client.key`).
pub const KEY_PASSWORD: &str = "bss-key-secret";

/// A file of the stack's certificate folder (`ca.pem`, `other-ca.pem`, `client.pem`, `client.key`).
/// Override the folder: `BSS_TEST_TLS_DIR`.
pub fn tls_file(name: &str) -> String {
    let dir = std::env::var("BSS_TEST_TLS_DIR")
        .unwrap_or_else(|_| format!("{}/../../target/stack/tls", env!("CARGO_MANIFEST_DIR")));
    format!("{dir}/{name}")
}

/// Client properties for the mutual-TLS broker: CA, client certificate, encrypted key and its password.
pub fn mtls_properties() -> [(&'static str, String); 5] {
    [
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", tls_file("ca.pem")),
        ("ssl.certificate.location", tls_file("client.pem")),
        ("ssl.key.location", tls_file("client.key")),
        ("ssl.key.password", KEY_PASSWORD.to_owned()),
    ]
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// A TCP port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}
