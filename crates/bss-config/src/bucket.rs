use serde::Deserialize;

use crate::{ConfigError, EnvVar, Secret};

/// `bss.bucket` as written in the file (Mia-Platform's keys plus ours).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BucketSection {
    /// `google`, `s3`, `local` or `memory`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Bucket name; for `local`, the directory that plays the bucket.
    pub name: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (or a GCS base URL), scheme included.
    pub endpoint: Option<String>,
    /// S3 access key id.
    pub s3_key_id: Option<String>,
    /// S3 secret key.
    pub s3_key: Option<Secret>,
    /// Path-style S3 requests (`endpoint/bucket/key`); default: on when an endpoint is set.
    pub path_style: Option<bool>,
    /// Allow plain-HTTP endpoints; default: on when the endpoint starts with `http://`.
    pub allow_http: Option<bool>,
    /// Path of a GCS service-account key file.
    pub google_credentials: Option<String>,
}

/// A validated bucket setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketConfig {
    /// Google Cloud Storage.
    Google {
        /// Bucket name.
        name: String,
        /// Service-account key file; absent means the environment's default credentials.
        credentials_path: Option<String>,
        /// Base URL override (emulators).
        endpoint: Option<String>,
        /// Allow plain HTTP (emulators).
        allow_http: bool,
    },
    /// Amazon S3 or an S3-compatible store.
    S3(S3Config),
    /// A local directory (development, single-node use).
    Local {
        /// Directory holding the archive; created when missing.
        path: String,
    },
    /// Process memory: lost on exit; for demos and tests only.
    Memory,
}

/// A validated S3 setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name.
    pub name: String,
    /// Region (default `us-east-1`).
    pub region: String,
    /// Endpoint override for S3-compatible stores.
    pub endpoint: Option<String>,
    /// Access key id; absent means the environment's credential chain (IAM role, …).
    pub key_id: Option<String>,
    /// Secret key.
    pub key: Option<Secret>,
    /// Path-style requests.
    pub path_style: bool,
    /// Allow plain HTTP.
    pub allow_http: bool,
}

impl BucketConfig {
    /// The bucket's name, as written in events (`local`: the directory; `memory`: "memory").
    pub fn name(&self) -> &str {
        match self {
            Self::Google { name, .. } => name,
            Self::S3(s3) => &s3.name,
            Self::Local { path } => path,
            Self::Memory => "memory",
        }
    }
}

impl BucketSection {
    /// Validates the section; keys are reported under `prefix` (e.g. `bss.bucket`).
    pub fn validate(self, env_vars: &[EnvVar], prefix: &str) -> Result<BucketConfig, ConfigError> {
        let key = |field: &str| format!("{prefix}.{field}");
        let invalid =
            |field: &str, reason: String| ConfigError::invalid(env_vars, &key(field), reason);
        let kind = self.kind.as_deref().ok_or_else(|| {
            invalid(
                "type",
                "is required (one of: google, s3, local, memory)".into(),
            )
        })?;
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                let error = invalid(
                    "endpoint",
                    format!("{endpoint:?} must start with http:// or https://"),
                );
                // Mia-Platform's storer fails with this code on the same mistake.
                return Err(if kind == "s3" {
                    ConfigError::Coded {
                        code: "FD_ARC_E0003",
                        summary: "provided S3 Cloud Storage configuration is invalid: The URI scheme of endpointOverride must not be null",
                        detail: Box::new(error),
                    }
                } else {
                    error
                });
            }
        }
        let allow_http = self.allow_http.unwrap_or_else(|| {
            self.endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
        });
        let name = || {
            self.name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| {
                    invalid(
                        "name",
                        format!("is required when the bucket type is {kind}"),
                    )
                })
        };
        if let Some(path) = self
            .google_credentials
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            // Found missing at start-up rather than at the first upload.
            if kind == "google" && !std::path::Path::new(path).is_file() {
                return Err(invalid(
                    "google-credentials",
                    format!("{path:?} is not a readable file (a service-account key file)"),
                ));
            }
        }
        match kind {
            "google" => Ok(BucketConfig::Google {
                name: name()?,
                credentials_path: self.google_credentials.clone(),
                endpoint: self.endpoint.clone(),
                allow_http,
            }),
            "s3" => {
                if self.s3_key_id.is_some() != self.s3_key.is_some() {
                    return Err(invalid(
                        "s3-key",
                        "S3 key id and key must be given together (or neither, to use the environment's credentials)".into(),
                    ));
                }
                Ok(BucketConfig::S3(S3Config {
                    name: name()?,
                    region: self.region.clone().unwrap_or_else(|| "us-east-1".into()),
                    path_style: self.path_style.unwrap_or(self.endpoint.is_some()),
                    endpoint: self.endpoint.clone(),
                    key_id: self.s3_key_id.clone(),
                    key: self.s3_key.clone(),
                    allow_http,
                }))
            }
            "local" => Ok(BucketConfig::Local { path: name()? }),
            "memory" => Ok(BucketConfig::Memory),
            other => Err(invalid(
                "type",
                format!(
                    "{other:?} is not a bucket type (expected one of: google, s3, local, memory)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: &[EnvVar] = &[EnvVar {
        name: "BUCKET_TYPE",
        key: "bss.bucket.type",
        default: "",
        help: "",
    }];

    fn section(kind: &str) -> BucketSection {
        BucketSection {
            kind: Some(kind.into()),
            name: Some("archive".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_http_endpoint_turns_on_plain_http_and_path_style() {
        let mut s = section("s3");
        s.endpoint = Some("http://127.0.0.1:9000".into());
        let BucketConfig::S3(s3) = s.validate(VARS, "bss.bucket").expect("valid") else {
            panic!("not s3")
        };
        assert!(s3.allow_http && s3.path_style);
        assert_eq!(s3.region, "us-east-1");
    }

    #[test]
    fn errors_name_the_setting_and_its_variable() {
        let error = section("gcs")
            .validate(VARS, "bss.bucket")
            .expect_err("invalid")
            .to_string();
        assert_eq!(
            error,
            "invalid setting bss.bucket.type (BUCKET_TYPE): \"gcs\" is not a bucket type (expected one of: google, s3, local, memory)"
        );
        let mut s = section("s3");
        s.endpoint = Some("minio:9000".into());
        let error = s
            .validate(VARS, "bss.bucket")
            .expect_err("invalid")
            .to_string();
        assert!(
            error.starts_with("FD_ARC_E0003: provided S3 Cloud Storage configuration is invalid")
                && error.contains("bss.bucket.endpoint"),
            "Mia-Platform's code first, then the culprit: {error}"
        );
        let mut s = section("google");
        s.name = None;
        assert!(s
            .validate(VARS, "bss.bucket")
            .expect_err("invalid")
            .to_string()
            .contains("bss.bucket.name"));
    }
}
