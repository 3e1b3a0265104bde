//! HTTPS on the service's own listener, for deployments without a mesh: a certificate chain and a
//! private key from PEM files, reloaded when the files change (cert-manager and mounted Secrets
//! rotate them in place), without restarting or dropping connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often the files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The certificate every handshake gets: the last one that loaded.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// A loaded certificate and key, and the acceptor that serves them.
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the chain and the key; errors name the file and what is wrong with it.
    pub fn load(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Self, String> {
        let (cert_file, key_file) = (cert_file.into(), key_file.into());
        let provider = Arc::new(aws_lc_rs::default_provider());
        let current = Arc::new(Current(RwLock::new(Arc::new(certified_key(
            &cert_file, &key_file, &provider,
        )?))));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the handshake on an accepted connection; `None` (logged) when it fails or takes
    /// longer than `timeout`.
    pub(crate) async fn accept(
        &self,
        stream: tokio::net::TcpStream,
        timeout: Duration,
        peer: std::net::SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(error = %error, peer = %peer, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Reloads the files whenever one of them changes, until the task is dropped. A pair that
    /// does not load (half-written, key of another certificate) is logged and the previous one
    /// keeps serving; the next change is tried again.
    pub(crate) async fn reload_on_change(self: Arc<Self>) {
        let mut seen = self.stamp();
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let stamp = self.stamp();
            if stamp == seen {
                continue;
            }
            seen = stamp;
            match certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                    tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    tracing::error!(error = %error, "cannot reload the TLS certificate; the previous one keeps serving")
                }
            }
        }
    }

    /// Modification times and sizes of both files (through symbolic links, as Kubernetes mounts
    /// Secrets).
    fn stamp(&self) -> [Option<(SystemTime, u64)>; 2] {
        [&self.cert_file, &self.key_file].map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
    }
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_file.display()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!(
            "{} and {}: the key does not fit the certificate, or is of an unsupported kind: {e}",
            key_file.display(),
            cert_file.display()
        )
    })
}
