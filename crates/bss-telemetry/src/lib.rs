//! Telemetry shared by the services: structured JSON logs through `tracing`, a Prometheus registry, and
//! the operational routes Mia-Platform's services expose (`/-/health/live`, `/-/health/ready`,
//! `/-/health/started`, `/-/metrics`).
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

pub mod service;
mod tls;
pub use tls::{Tls, TlsError};

/// The release every binary of the workspace belongs to (the crates share one version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (12 hex digits), or "unknown" (see `build.rs`).
pub const GIT_REVISION: &str = env!("BSS_GIT_REVISION");

/// `--version` text: `0.1.0 (rev 0123456789ab)`.
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("BSS_GIT_REVISION"),
    ")"
);

/// Registers what a dashboard and a runbook need beside a service's own metrics:
/// `bss_build_info{service, version, revision}` (always 1) and, on Linux, the process's memory,
/// CPU time, open and maximum file descriptors and start time (`process_*`).
pub fn register_standard_metrics(registry: &Registry, service: &str) {
    let build_info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "bss_build_info",
            "Version and git revision of the running binary (always 1)",
        ),
        &["service", "version", "revision"],
    )
    .expect("valid metric");
    build_info
        .with_label_values(&[service, VERSION, GIT_REVISION])
        .set(1);
    register(registry, build_info);
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process metrics are registered once");
}

/// Starts JSON logging on stdout at `level` (`error`, `warn`, `info`, `debug`, `trace`, any case).
/// Noisy dependencies are held at `warn`.
pub fn init_logging(level: &str) -> Result<(), LoggingError> {
    init_logging_with(level, std::io::stdout)
}

/// Why logging cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// Not a level.
    #[error("setting LOG_LEVEL: {0:?} is not a log level (expected one of: error, warn, info, debug, trace)")]
    UnknownLevel(String),
    /// The filter does not parse.
    #[error("setting LOG_LEVEL: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A subscriber is already installed.
    #[error("cannot install the logger: {0}")]
    Install(String),
}

fn init_logging_with<W>(level: &str, writer: W) -> Result<(), LoggingError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let level = level.to_ascii_lowercase();
    if !matches!(
        level.as_str(),
        "error" | "warn" | "info" | "debug" | "trace"
    ) {
        return Err(LoggingError::UnknownLevel(level));
    }
    let filter = EnvFilter::try_new(format!(
        "{level},hyper=warn,reqwest=warn,h2=warn,rustls=warn,object_store=warn"
    ))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer)
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))
}

/// [`init_logging`] for command-line tools: the JSON logs go to stderr, keeping stdout for output.
pub fn init_logging_to_stderr(level: &str) -> Result<(), LoggingError> {
    init_logging_with(level, std::io::stderr)
}

/// Registers a metric and returns it; for statically named metrics, where a collision is a bug.
pub fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// Registers a labelled counter (statically named: a bad name or a collision is a bug).
pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// Registers a counter.
pub fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

/// Named readiness conditions (e.g. "kafka", "bucket"); ready when all are up and the service has
/// started and is not stopping.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Default)]
struct HealthInner {
    started: AtomicBool,
    stopping: AtomicBool,
    checks: Mutex<BTreeMap<&'static str, Result<(), String>>>,
}

impl Health {
    /// Records that one condition holds.
    pub fn up(&self, check: &'static str) {
        self.set(check, Ok::<(), String>(()));
    }

    /// Records the state of one condition; a failure carries the reason shown by `/-/health/ready`.
    pub fn set<E: std::fmt::Display>(&self, check: &'static str, state: Result<(), E>) {
        let state = state.map_err(|e| e.to_string());
        let mut checks = self.inner.checks.lock().unwrap_or_else(|p| p.into_inner());
        let previous = checks.insert(check, state.clone());
        match (&previous, &state) {
            (Some(Ok(())), Err(reason)) | (None, Err(reason)) => {
                tracing::warn!(check, reason = %reason, "not ready")
            }
            (Some(Err(_)), Ok(())) => tracing::info!(check, "ready again"),
            _ => {}
        }
    }

    /// Marks start-up as complete.
    pub fn mark_started(&self) {
        self.inner.started.store(true, Ordering::SeqCst);
    }

    /// Marks the service as draining: not ready any more.
    pub fn mark_stopping(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether every condition is up.
    pub fn is_ready(&self) -> bool {
        self.report().0
    }

    fn report(&self) -> (bool, BTreeMap<String, String>) {
        let checks = self.inner.checks.lock().unwrap_or_else(|p| p.into_inner());
        let mut ready = self.inner.started.load(Ordering::SeqCst)
            && !self.inner.stopping.load(Ordering::SeqCst);
        let mut details = BTreeMap::new();
        for (name, state) in checks.iter() {
            let text = match state {
                Ok(()) => "ok".to_owned(),
                Err(reason) => {
                    ready = false;
                    reason.clone()
                }
            };
            details.insert((*name).to_owned(), text);
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            details.insert("service".into(), "stopping".into());
        } else if !self.inner.started.load(Ordering::SeqCst) {
            details.insert("service".into(), "starting".into());
        }
        (ready, details)
    }
}

/// The operational routes, to be merged into a service's router or served alone: the health
/// routes and, unless `metrics_port` serves them apart, `/-/metrics`.
pub fn operational_router(health: Health, registry: Registry, metrics_port: Option<u16>) -> Router {
    let router = health_router(health);
    match metrics_port {
        Some(_) => router,
        None => router.merge(metrics_router(registry)),
    }
}

/// `/-/metrics` alone: what a separate metrics port serves, so that a NetworkPolicy can open it to
/// the monitoring namespaces without opening the API.
pub fn metrics_router(registry: Registry) -> Router {
    Router::new().route(
        "/-/metrics",
        get(move || {
            let registry = registry.clone();
            async move { render_metrics(&registry) }
        }),
    )
}

/// Serves [`metrics_router`] on `port` (plain HTTP) until `shutdown`, in the background; a port that
/// cannot be bound is logged (the service keeps running without metrics rather than stopping).
pub fn spawn_metrics_server(
    registry: Registry,
    port: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = serve(metrics_router(registry), port, None, shutdown).await {
            tracing::error!(error = %error, port, "cannot serve metrics on METRICS_PORT");
        }
    })
}

fn health_router(health: Health) -> Router {
    let ready_health = health.clone();
    let started_health = health;
    Router::new()
        .route("/-/health/live", get(|| async { Json(serde_status("ok")) }))
        .route(
            "/-/health/ready",
            get(move || {
                let health = ready_health.clone();
                async move {
                    let (ready, details) = health.report();
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, Json(details))
                }
            }),
        )
        .route(
            "/-/health/started",
            get(move || {
                let health = started_health.clone();
                async move {
                    if health.inner.started.load(Ordering::SeqCst) {
                        (StatusCode::OK, Json(serde_status("ok")))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(serde_status("starting")),
                        )
                    }
                }
            }),
        )
}

fn serde_status(status: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("status", status.to_owned())])
}

fn render_metrics(registry: &Registry) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            body,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                b"cannot encode metrics".to_vec(),
            )
        }
    }
}

/// How long a client may take to send a request's headers (also how long an idle keep-alive
/// connection stays open): a slow or silent client cannot hold a connection for ever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `port` (all interfaces) until `shutdown`, then finishes the requests in
/// flight; over HTTPS when `tls` is given (its files are reloaded when they change). Handlers see
/// the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    router: Router,
    port: u16,
    tls: Option<Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let tls = tls.map(Arc::new);
    let reloader = tls
        .as_ref()
        .map(|tls| tokio::spawn(Arc::clone(tls).reload_on_change()));
    serve_on(listener, router, shutdown, HEADER_READ_TIMEOUT, tls).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    Ok(())
}

/// A connection's bytes: plain TCP, or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_read_timeout: std::time::Duration,
    tls: Option<Arc<Tls>>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                // The handshake gets the same time as headers: a silent client is dropped.
                Some(tls) => match tls.accept(stream, header_read_timeout, peer).await {
                    Some(stream) => Box::new(stream),
                    None => return,
                },
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn status_of(router: &Router, path: &str) -> StatusCode {
        router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response")
            .status()
    }

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_json_and_carry_the_fields_of_their_spans() {
        let captured = Captured::default();
        let writer = captured.clone();
        init_logging_with("info", move || writer.clone()).expect("logging starts");
        tracing::info_span!("job", job = "65a0c0de0123456789abcdef", run = 2).in_scope(|| {
            tracing::info!(messages = 7, "reingestion ended");
        });
        let text = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
        let line: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a line")).expect("json");
        assert_eq!(line["message"], "reingestion ended");
        assert_eq!(line["messages"], 7);
        assert_eq!(line["spans"][0]["name"], "job");
        assert_eq!(line["spans"][0]["job"], "65a0c0de0123456789abcdef");
        assert_eq!(line["spans"][0]["run"], 2);
        assert!(matches!(
            init_logging_with("loud", std::io::sink),
            Err(LoggingError::UnknownLevel(_))
        ));
    }

    #[tokio::test]
    async fn ready_only_when_started_and_every_check_is_up() {
        let health = Health::default();
        let router = operational_router(health.clone(), Registry::new(), None);
        assert_eq!(status_of(&router, "/-/health/live").await, StatusCode::OK);
        assert_eq!(
            status_of(&router, "/-/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.mark_started();
        health.up("bucket");
        assert_eq!(status_of(&router, "/-/health/ready").await, StatusCode::OK);
        health.set("kafka", Err("down"));
        assert_eq!(
            status_of(&router, "/-/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.up("kafka");
        health.mark_stopping();
        assert_eq!(
            status_of(&router, "/-/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_of(&router, "/-/metrics").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let router = operational_router(Health::default(), Registry::new(), None);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            std::time::Duration::from_millis(500),
            None,
        ));
        // A complete request is answered, with the peer address available.
        let mut fast = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        fast.write_all(b"GET /-/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        fast.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Half a request line, then silence: the server hangs up (a read of 0 bytes, or an error)
        // instead of waiting for ever.
        let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        slow.write_all(b"GET /-/health/li").await.expect("write");
        let mut buffer = [0u8; 256];
        let closed =
            tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut buffer))
                .await
                .expect("the server closed the connection");
        assert!(
            matches!(closed, Ok(0) | Err(_)) || buffer.starts_with(b"HTTP/1.1 408"),
            "{closed:?}"
        );
        let _ = stop.send(());
        server.await.expect("server task");
    }
}
