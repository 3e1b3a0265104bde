//! A TCP proxy that can be taken down and brought back on the same port: from a client's point of view,
//! exactly a server that stops and restarts (connections reset, then refused, then accepted again),
//! without losing the server's data.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// See the module documentation.
pub struct Proxy {
    /// Port clients connect to.
    pub port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
    stop: Arc<Notify>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<free port>` to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let mut proxy = Self {
            port: crate::free_port(),
            target: target.to_owned(),
            task: None,
            stop: Arc::new(Notify::new()),
        };
        proxy.up().await;
        proxy
    }

    /// Accepts connections again.
    pub async fn up(&mut self) {
        if self.task.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy port");
        let target = self.target.clone();
        let stop = Arc::clone(&self.stop);
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop.notified() => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let target = target.clone();
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
            }
            // Dropping the set aborts every connection: clients see resets, like a server crash.
            connections.abort_all();
        }));
    }

    /// Drops every connection and refuses new ones.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            self.stop.notify_one();
            let _ = task.await;
        }
    }
}
