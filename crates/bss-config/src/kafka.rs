use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

use crate::{ConfigError, EnvVar};

/// The `kafka` section: any librdkafka property, flat (`security.protocol: SASL_SSL`) or nested
/// (`security: {protocol: SASL_SSL}`), as in Mia-Platform's `kafka:` tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct KafkaSection(pub serde_json::Map<String, serde_json::Value>);

/// Validated librdkafka properties shared by every client of a service.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    properties: BTreeMap<String, String>,
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        serde_json::Value::String(text) => {
            out.insert(prefix.to_owned(), text.clone());
        }
        serde_json::Value::Array(items) => {
            let joined: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect();
            out.insert(prefix.to_owned(), joined.join(","));
        }
        serde_json::Value::Null => {}
        // Tools that pass values through floats (Helm renders 52428800 as 5.24288e+07) would hand
        // librdkafka "52428800.0", which it refuses for integer properties: write whole floats as
        // integers.
        serde_json::Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                && n.is_f64() =>
        {
            out.insert(
                prefix.to_owned(),
                format!("{}", n.as_f64().unwrap_or_default() as i64),
            );
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Property names whose values are secrets: passwords, JAAS configurations, private keys given inline.
pub fn is_secret(property: &str) -> bool {
    property.contains("password")
        || property.contains("secret")
        || property.ends_with(".config")
        || property == "ssl.key.pem"
        || property == "ssl_key"
}

impl KafkaSection {
    /// Flattens and validates: `bootstrap.servers` is required, and Mia-Platform's SASL conventions
    /// apply (a username without a protocol means `SASL_SSL` with `SCRAM-SHA-256`).
    /// Variables of `env_vars` whose key is `kafka.<property>` are taken from `env` and override the file.
    pub fn validate(
        &self,
        env_vars: &[EnvVar],
        env: &HashMap<String, String>,
    ) -> Result<KafkaConfig, ConfigError> {
        let mut properties = BTreeMap::new();
        for (key, value) in &self.0 {
            flatten(key, value, &mut properties);
        }
        for var in env_vars {
            if let (Some(property), Some(value)) = (
                var.key.strip_prefix(crate::KAFKA_PREFIX),
                env.get(var.name).filter(|v| !v.trim().is_empty()),
            ) {
                properties.insert(property.to_owned(), value.trim().to_owned());
            }
        }
        match properties.get("bootstrap.servers") {
            Some(servers) if !servers.trim().is_empty() => {}
            _ => {
                return Err(ConfigError::invalid(
                    env_vars,
                    "kafka.bootstrap.servers",
                    "is required (comma-separated host:port list)",
                ))
            }
        }
        if let Some(reset) = properties.get("auto.offset.reset") {
            if !matches!(reset.as_str(), "earliest" | "latest") {
                return Err(ConfigError::invalid(
                    env_vars,
                    "kafka.auto.offset.reset",
                    format!("{reset:?} is not a dequeue strategy (expected earliest or latest)"),
                ));
            }
        }
        if let Some(jaas) = properties.remove("sasl.jaas.config") {
            let (username, password) = jaas_credentials(&jaas).ok_or_else(|| {
                ConfigError::invalid(
                    env_vars,
                    "kafka.sasl.jaas.config",
                    "has no username=\"…\" and password=\"…\" (only PLAIN and SCRAM login modules are understood)",
                )
            })?;
            // Mia-Platform's example writes the credentials as `${KAFKA_USERNAME}`/`${KAFKA_PASSWORD}`.
            let resolve =
                |value: String| match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                    Some(name) => env.get(name).cloned().ok_or_else(|| {
                        ConfigError::invalid(
                            env_vars,
                            "kafka.sasl.jaas.config",
                            format!("refers to ${{{name}}}, which is not set"),
                        )
                    }),
                    None => Ok(value),
                };
            properties
                .entry("sasl.username".into())
                .or_insert(resolve(username)?);
            properties
                .entry("sasl.password".into())
                .or_insert(resolve(password)?);
            if jaas.contains("PlainLoginModule") {
                properties
                    .entry("sasl.mechanism".into())
                    .or_insert_with(|| "PLAIN".into());
            }
        }
        if properties.contains_key("sasl.username") {
            properties
                .entry("security.protocol".into())
                .or_insert_with(|| "SASL_SSL".into());
            properties
                .entry("sasl.mechanism".into())
                .or_insert_with(|| "SCRAM-SHA-256".into());
        }
        Ok(KafkaConfig { properties })
    }
}

/// `username="…"` and `password="…"` of a Java JAAS line, as Mia-Platform's `application.yaml` gives
/// SASL credentials (`org.apache.kafka.common.security.plain.PlainLoginModule required username="u"
/// password="p";`): librdkafka has no `sasl.jaas.config`, so it becomes `sasl.username`/`sasl.password`.
fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    let value = |name: &str| {
        let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + jaas[start..].find('"')?;
        Some(jaas[start..end].to_owned())
    };
    Some((value("username")?, value("password")?))
}

impl KafkaConfig {
    /// Builds from already-flat properties (tools and tests).
    pub fn from_properties(properties: BTreeMap<String, String>) -> Self {
        Self { properties }
    }

    /// Every property, secrets included: for handing to librdkafka only.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The values of every secret property (to mask them in any text that might quote them).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.properties
            .iter()
            .filter(|(name, _)| is_secret(name))
            .map(|(_, value)| value.as_str())
    }

    /// One property's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// A property holding a whole number of `unit`s (`None` when unset), or an error naming
    /// `kafka.<name>` (and its variable in `env_vars`).
    pub fn whole_number(
        &self,
        env_vars: &[EnvVar],
        name: &str,
        unit: &str,
    ) -> Result<Option<u64>, ConfigError> {
        self.get(name)
            .map(|text| {
                text.trim().parse::<u64>().map_err(|_| {
                    ConfigError::invalid(
                        env_vars,
                        &format!("kafka.{name}"),
                        format!("{text:?} is not a whole number of {unit}"),
                    )
                })
            })
            .transpose()
    }

    /// Sets a property unless the user already did.
    pub fn set_default(&mut self, name: &str, value: &str) {
        self.properties
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }
}

/// Prints the properties with secrets replaced by `***`.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.properties {
            if is_secret(key) {
                map.entry(key, &"***");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(json: serde_json::Value) -> KafkaSection {
        KafkaSection(json.as_object().expect("object").clone())
    }

    #[test]
    fn nested_and_flat_properties_flatten_alike_and_secrets_are_redacted() {
        let config = section(serde_json::json!({
            "bootstrap": {"servers": "k1:9092,k2:9092"},
            "sasl.username": "storer",
            "sasl": {"password": "hunter2"},
            "queued.max.messages.kbytes": 16384,
            "message.max.bytes": 5.24288e7,
            "linger.ms": 2.5,
        }))
        .validate(&[], &HashMap::new())
        .expect("valid");
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9092,k2:9092"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(config.get("message.max.bytes"), Some("52428800"));
        assert_eq!(config.get("linger.ms"), Some("2.5"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && printed.contains("***"),
            "{printed}"
        );
    }

    #[test]
    fn a_java_jaas_line_becomes_librdkafka_credentials() {
        let config = section(serde_json::json!({
            "bootstrap.servers": "k:9092",
            "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bss\" password=\"s3cret\";",
        }))
        .validate(&[], &HashMap::new())
        .expect("valid");
        assert_eq!(config.get("sasl.username"), Some("bss"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(config.get("sasl.jaas.config"), None);
        let env = HashMap::from([("KAFKA_PASSWORD".to_owned(), "from-env".to_owned())]);
        let config = section(serde_json::json!({
            "bootstrap.servers": "k:9092",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"bss\" password=\"${KAFKA_PASSWORD}\";",
        }))
        .validate(&[], &env)
        .expect("valid");
        assert_eq!(config.get("sasl.password"), Some("from-env"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        let error = section(serde_json::json!({
            "bootstrap.servers": "k:9092",
            "sasl.jaas.config": "com.example.Kerberos required keytab=\"/k\";",
        }))
        .validate(&[], &HashMap::new())
        .expect_err("refused")
        .to_string();
        assert!(
            error.contains("sasl.jaas.config") && !error.contains("/k"),
            "{error}"
        );
    }

    #[test]
    fn brokers_are_required_and_the_dequeue_strategy_is_checked() {
        let vars = [EnvVar {
            name: "KAFKA_BROKERS",
            key: "kafka.bootstrap.servers",
            default: "",
            help: "",
        }];
        let no_env = HashMap::new();
        let error = section(serde_json::json!({}))
            .validate(&vars, &no_env)
            .expect_err("invalid")
            .to_string();
        assert!(
            error.contains("kafka.bootstrap.servers (KAFKA_BROKERS)"),
            "{error}"
        );
        let env = HashMap::from([("KAFKA_BROKERS".to_owned(), "from-env:9092".to_owned())]);
        let config = section(serde_json::json!({"bootstrap": {"servers": "file:9092"}}))
            .validate(&vars, &env)
            .expect("valid");
        assert_eq!(config.get("bootstrap.servers"), Some("from-env:9092"));
        let error =
            section(serde_json::json!({"bootstrap.servers": "k", "auto.offset.reset": "oldest"}))
                .validate(&vars, &no_env)
                .expect_err("invalid")
                .to_string();
        assert!(error.contains("oldest"), "{error}");
    }
}
