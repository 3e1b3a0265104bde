//! Configuration shared by the services.
//!
//! Settings come from a YAML file (Mia-Platform's `application.yaml` shape is accepted) overlaid by
//! environment variables (Mia-Platform's names, plus ours), in that order. Loading is two-step: the
//! `config` crate merges the sources into a raw, `deny_unknown_fields` structure; then each section is
//! validated into the typed values the services use. Every failure is one line that names the setting
//! (file key and environment variable) and the reason.
#![warn(missing_docs)]

mod bucket;
mod env;
pub mod file;
mod kafka;
mod secret;
pub mod storer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use bucket::{BucketConfig, BucketSection, S3Config};
pub use env::EnvVar;
pub use kafka::{KafkaConfig, KafkaSection};
pub use secret::Secret;
use serde::de::DeserializeOwned;

const KAFKA_PREFIX: &str = "kafka.";

/// Where Mia-Platform's images mount the configuration file; used when it exists and no
/// `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/app/config/application.yaml";

/// A configuration error: one line naming the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file given does not exist.
    #[error("configuration file {} does not exist or is not a file", .0.display())]
    MissingFile(PathBuf),
    /// An environment variable cannot be applied.
    #[error("environment variable {variable}: {source}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Why.
        source: Box<config::ConfigError>,
    },
    /// The file does not parse, or a value has the wrong type or is unknown.
    #[error("invalid configuration ({origin}): {source}")]
    Load {
        /// The file (`… or environment`) or the environment.
        origin: String,
        /// Why.
        source: Box<config::ConfigError>,
    },
    /// A value is present but not acceptable.
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        /// File key and, when there is one, environment variable.
        setting: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// An error Mia-Platform's services report under a documented code, which alerts and runbooks
    /// match: the code and Mia's wording first, then ours.
    #[error("{code}: {summary} ({detail})")]
    Coded {
        /// Mia-Platform's code, e.g. `FD_ARC_E0003`.
        code: &'static str,
        /// Mia-Platform's message.
        summary: &'static str,
        /// The culprit, as for any other error.
        detail: Box<ConfigError>,
    },
}

impl ConfigError {
    /// An invalid value of `key` (file key), mentioning its environment variable when it has one.
    pub fn invalid(env_vars: &[EnvVar], key: &str, reason: impl Into<String>) -> Self {
        let setting = match env_vars.iter().find(|v| v.key == key) {
            Some(var) => format!("{key} ({})", var.name),
            None => key.to_owned(),
        };
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

/// The log level (`LOG_LEVEL`, file key `log-level`; default `info`), checked here so that
/// `--check-config` refuses what logging set-up would.
pub fn log_level(value: Option<String>, env_vars: &[EnvVar]) -> Result<String, ConfigError> {
    let level = or_default(value, env_vars, "log-level")?
        .trim()
        .to_ascii_lowercase();
    if matches!(
        level.as_str(),
        "error" | "warn" | "info" | "debug" | "trace"
    ) {
        Ok(level)
    } else {
        Err(ConfigError::invalid(
            env_vars,
            "log-level",
            format!(
                "{level:?} is not a log level (expected one of: error, warn, info, debug, trace)"
            ),
        ))
    }
}

/// The separate metrics port (`METRICS_PORT`, file key `metrics-port`; default none: `/-/metrics` is
/// served on the HTTP port, as Mia-Platform's services do). It must differ from `http_port`.
pub fn metrics_port(
    value: Option<u16>,
    http_port: u16,
    env_vars: &[EnvVar],
) -> Result<Option<u16>, ConfigError> {
    match value {
        Some(port) if port == http_port => Err(ConfigError::invalid(
            env_vars,
            "metrics-port",
            format!("{port} is also the HTTP port (http-port, HTTP_PORT); give metrics a port of their own, or leave it unset to serve /-/metrics on the HTTP port"),
        )),
        other => Ok(other),
    }
}

/// Environment variables of the Kafka connection, common to both services.
pub const KAFKA_CONNECTION_ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "KAFKA_BROKERS",
        key: "kafka.bootstrap.servers",
        default: "",
        help: "Kafka bootstrap servers, comma-separated (required)",
    },
    EnvVar {
        name: "KAFKA_USERNAME",
        key: "kafka.sasl.username",
        default: "",
        help: "SASL username; when set, security.protocol defaults to SASL_SSL",
    },
    EnvVar {
        name: "KAFKA_PASSWORD",
        key: "kafka.sasl.password",
        default: "",
        help: "SASL password (secret)",
    },
    EnvVar {
        name: "KAFKA_SASL_MECHANISM",
        key: "kafka.sasl.mechanism",
        default: "SCRAM-SHA-256",
        help: "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), used when a username is set",
    },
    EnvVar {
        name: "KAFKA_SSL_CA_LOCATION",
        key: "kafka.ssl.ca.location",
        default: "the system's trust store",
        help: "PEM file of the CA(s) that signed the brokers' certificates (TLS)",
    },
    EnvVar {
        name: "KAFKA_SSL_KEY_PASSWORD",
        key: "kafka.ssl.key.password",
        default: "",
        help: "password of the client key (`ssl.key.location`) for mutual TLS (secret)",
    },
];

/// Environment variables of the bucket, common to both services.
pub const BUCKET_ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "BUCKET_TYPE",
        key: "bss.bucket.type",
        default: "",
        help: "google, s3, local (a folder) or memory (required)",
    },
    EnvVar {
        name: "BUCKET_NAME",
        key: "bss.bucket.name",
        default: "",
        help: "bucket name; for local, the folder path (required except for memory)",
    },
    EnvVar {
        name: "BUCKET_REGION",
        key: "bss.bucket.region",
        default: "us-east-1",
        help: "S3 region",
    },
    EnvVar {
        name: "BUCKET_ENDPOINT",
        key: "bss.bucket.endpoint",
        default: "",
        help: "S3-compatible endpoint or GCS base URL, scheme included",
    },
    EnvVar {
        name: "BUCKET_PATH_STYLE",
        key: "bss.bucket.path-style",
        default: "true when an endpoint is set",
        help: "S3 path-style requests",
    },
    EnvVar {
        name: "BUCKET_ALLOW_HTTP",
        key: "bss.bucket.allow-http",
        default: "true when the endpoint is http://",
        help: "allow a plain-HTTP endpoint",
    },
    EnvVar {
        name: "S3_KEY_ID",
        key: "bss.bucket.s3-key-id",
        default: "",
        help: "S3 access key id (else the AWS credential chain)",
    },
    EnvVar {
        name: "S3_KEY",
        key: "bss.bucket.s3-key",
        default: "",
        help: "S3 secret key (secret)",
    },
    EnvVar {
        name: "GOOGLE_APPLICATION_CREDENTIALS",
        key: "bss.bucket.google-credentials",
        default: "",
        help: "path of a GCS service-account key file",
    },
];

/// A service's variables: the shared Kafka connection ones, its own Kafka ones, the shared bucket ones,
/// then its own; the order of the configuration reference.
pub fn service_env_vars(own_kafka: &[EnvVar], own: &[EnvVar]) -> Vec<EnvVar> {
    [KAFKA_CONNECTION_ENV_VARS, own_kafka, BUCKET_ENV_VARS, own].concat()
}

/// The documented default of the setting at file key `key` (from `env_vars`, the service's table):
/// the one place a default is written, in the reference table and in effect.
pub fn documented_default(env_vars: &[EnvVar], key: &str) -> &'static str {
    env_vars
        .iter()
        .find(|v| v.key == key)
        .map_or("", |v| v.default)
}

/// A setting's value, else its documented default parsed as a value would be.
pub fn or_default<T: std::str::FromStr>(
    value: Option<T>,
    env_vars: &[EnvVar],
    key: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match value {
        Some(value) => Ok(value),
        None => documented_default(env_vars, key).parse().map_err(|e| {
            ConfigError::invalid(
                env_vars,
                key,
                format!("the documented default does not parse: {e}"),
            )
        }),
    }
}

/// A size or duration setting's value, else its documented default (`8MiB`, `30s`).
pub fn number_or_default(
    value: Option<NumberOrText>,
    env_vars: &[EnvVar],
    key: &str,
) -> NumberOrText {
    value.unwrap_or_else(|| NumberOrText::Text(documented_default(env_vars, key).to_owned()))
}

/// The Markdown table of `vars` that the configuration reference must contain (services check it in a test).
pub fn reference_table(vars: &[EnvVar]) -> String {
    let mut table = String::from(
        "| Environment variable | File key | Default | Meaning |\n|---|---|---|---|\n",
    );
    for var in vars {
        let default = if var.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", var.default)
        };
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            var.name, var.key, default, var.help
        ));
    }
    table
}

/// Picks the configuration file: the given one, else [`DEFAULT_CONFIG_PATH`] when it exists.
pub fn config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_PATH);
        default.exists().then_some(default)
    })
}

/// Loads `T` from the optional YAML file, overlaid by the variables of `env_vars` found in `env`.
///
/// `env` is passed in (rather than read here) so tests can inject it.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    env_vars: &[EnvVar],
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Yaml)
                .required(true),
        );
    }
    // `kafka.*` variables are applied by `KafkaSection::validate`, after the section is flattened:
    // librdkafka names contain dots, which `config` would turn into nesting.
    for var in env_vars.iter().filter(|v| !v.key.starts_with(KAFKA_PREFIX)) {
        if let Some(value) = env.get(var.name).filter(|v| !v.trim().is_empty()) {
            builder = builder
                .set_override(var.key, value.trim())
                .map_err(|source| ConfigError::Environment {
                    variable: var.name,
                    source: Box::new(source),
                })?;
        }
    }
    let merged = builder.build().map_err(|e| describe(file, e))?;
    merged.try_deserialize().map_err(|e| describe(file, e))
}

fn describe(file: Option<&Path>, source: config::ConfigError) -> ConfigError {
    let origin = file.map_or_else(
        || "environment".to_owned(),
        |p| format!("{} or environment", p.display()),
    );
    ConfigError::Load {
        origin,
        source: Box::new(source),
    }
}

/// Parses a byte size: an integer number of bytes, or a number with a unit (`KiB`, `MiB`, `GiB`,
/// `KB`, `MB`, `GB`; binary and decimal units are both taken as powers of 1024, as Mia's `8MB` means 8 MiB).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `"8 MiB"` → `(8, "MiB")`: the leading digits and the trimmed rest.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Parses a duration: an integer number of milliseconds, or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let factor: u64 = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A size or duration given either as a YAML number or a string with a unit.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    /// A plain number.
    Number(u64),
    /// A number written as a float (`8388608.0`, `5.24288e+07`: what YAML tools such as Helm emit
    /// for large integers); accepted when it is a whole, non-negative number.
    Float(f64),
    /// A number with a unit.
    Text(String),
}

impl NumberOrText {
    /// A float that is exactly a non-negative integer, or an error naming `key`.
    fn whole(value: f64, env_vars: &[EnvVar], key: &str) -> Result<u64, ConfigError> {
        if value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 {
            Ok(value as u64)
        } else {
            Err(ConfigError::invalid(
                env_vars,
                key,
                format!("{value} is not a whole non-negative number"),
            ))
        }
    }

    /// As bytes, or an error naming `key`.
    pub fn bytes(&self, env_vars: &[EnvVar], key: &str) -> Result<u64, ConfigError> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Float(f) => Self::whole(*f, env_vars, key),
            Self::Text(t) => parse_byte_size(t).ok_or_else(|| {
                ConfigError::invalid(
                    env_vars,
                    key,
                    format!("{t:?} is not a byte size (examples: 8388608, 8MiB, 512KiB)"),
                )
            }),
        }
    }

    /// As milliseconds, or an error naming `key`.
    pub fn millis(&self, env_vars: &[EnvVar], key: &str) -> Result<u64, ConfigError> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Float(f) => Self::whole(*f, env_vars, key),
            Self::Text(t) => parse_duration_ms(t).ok_or_else(|| {
                ConfigError::invalid(
                    env_vars,
                    key,
                    format!("{t:?} is not a duration (examples: 500, 500ms, 30s, 5m)"),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_durations_with_units() {
        assert_eq!(parse_byte_size("8388608"), Some(8 << 20));
        assert_eq!(parse_byte_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_byte_size("8 MB"), Some(8 << 20));
        assert_eq!(parse_byte_size("64kib"), Some(64 << 10));
        assert_eq!(parse_byte_size("8 parsecs"), None);
        assert_eq!(parse_byte_size("-1"), None);
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("30d"), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("soon"), None);
    }
}
