/// One environment variable and the file key it overrides.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// Variable name, e.g. `KAFKA_BROKERS`.
    pub name: &'static str,
    /// Dotted file key it sets, e.g. `kafka.bootstrap.servers`.
    pub key: &'static str,
    /// Default when neither the file nor the environment sets it ("" when required or unset).
    pub default: &'static str,
    /// One-line description, used by the configuration reference.
    pub help: &'static str,
}
