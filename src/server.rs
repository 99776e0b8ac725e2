//! Sockets: a UDP loop and a TCP accept loop per listen address, all driving one [`Handler`].
//! Also owns the live policy and its reload.
//!
//! UDP answers local verdicts inline and spawns a task only for upstream waits (bounded by
//! `server.max_inflight`). TCP connections are bounded by `server.max_tcp_connections` and
//! closed after `server.tcp_idle_timeout_ms` without a query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::blocklog::BlockLog;
use crate::cache::Cache;
use crate::config::Config;
use crate::handler::{Handler, Outcome, Protocol};
use crate::policy::Policy;
use crate::reload::{self, Live};
use crate::remote::Fetcher;
use crate::upstream::Upstream;

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    /// Bound addresses, in `server.listen` order (port 0 resolved); UDP and TCP share each.
    pub addrs: Vec<SocketAddr>,
    handler: Arc<Handler>,
    live: Arc<Live>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Loads the policy, opens the block log, binds every listen address and starts serving,
    /// then starts the file watch and remote feed refresh.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let policy = Policy::build(&config).map_err(anyhow::Error::msg)?;
        let log = BlockLog::start(&config.log.blocks, config.log.queue)
            .with_context(|| format!("cannot open block log {}", config.log.blocks))?;
        let upstream = Arc::new(Upstream::new(
            config.upstream.servers.clone(),
            Duration::from_millis(config.upstream.timeout_ms),
        ));
        let fetcher =
            Fetcher::new(&config.download, upstream.clone()).map_err(anyhow::Error::msg)?;
        let live = Arc::new(Live::new(config.clone(), policy));
        let handler = Arc::new(Handler::new(
            live.policy.clone(),
            upstream,
            Cache::new(&config.cache),
            log,
            config.server.max_inflight,
        ));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        let tcp_slots = Arc::new(Semaphore::new(config.server.max_tcp_connections));
        let idle = Duration::from_millis(config.server.tcp_idle_timeout_ms);
        for listen in &config.server.listen {
            let (udp, tcp) = bind_pair(*listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let addr = udp.local_addr()?;
            addrs.push(addr);
            tasks.spawn(serve_udp(Arc::new(udp), handler.clone(), stopped.clone()));
            tasks.spawn(serve_tcp(
                tcp,
                handler.clone(),
                tcp_slots.clone(),
                idle,
                stopped.clone(),
            ));
        }
        if config.reload.watch {
            let interval = Duration::from_millis(config.reload.interval_ms.max(10));
            tasks.spawn(reload::watch_files(live.clone(), interval, stopped.clone()));
        }
        tasks.spawn(reload::refresh_remote(
            live.clone(),
            fetcher,
            stopped.clone(),
        ));
        Ok(Server {
            addrs,
            handler,
            live,
            stop,
            tasks,
        })
    }

    /// Rebuilds the policy from the config file and swaps it in (blocking). On any error the
    /// running policy stays in force and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        self.live.reload()
    }

    /// Reloads on a blocking thread, logging the outcome (what SIGHUP does).
    pub async fn reload_logged(&self, why: &str) {
        self.live.reload_logged(why).await
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.live.policy.load_full()
    }

    pub fn handler(&self) -> &Handler {
        &self.handler
    }

    /// Stops accepting, lets the loops end, and returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds UDP and TCP on the same address. With port 0, retries until both get one port.
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port")))
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, src) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        // A bug in the request path must cost one answer, not the listener.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.begin(&buf[..len], src, Protocol::Udp)
        }));
        let outcome = outcome.unwrap_or_else(|_| {
            tracing::error!(%src, "request handler panicked; query dropped");
            Outcome::Drop
        });
        match outcome {
            Outcome::Reply(bytes) => send(&socket, &bytes, src).await,
            Outcome::Drop => {}
            Outcome::Forward(pending) => {
                let permit = handler.try_reserve();
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    let admitted = permit.is_some();
                    let bytes = handler.forward(pending, admitted).await;
                    drop(permit);
                    send(&socket, &bytes, src).await;
                });
            }
        }
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, to).await {
        tracing::debug!(error = %e, %to, "udp send failed");
    }
}

async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<Handler>,
    slots: Arc<Semaphore>,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, src) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%src, "tcp connection limit reached; closing");
            continue;
        };
        let handler = handler.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_tcp_connection(stream, src, &handler, idle, stopped).await;
        });
    }
}

/// One TCP connection: length-prefixed queries answered in order until idle or closed.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: &Handler,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = Vec::new();
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_u16()) => match r {
                Ok(Ok(len)) => len as usize,
                _ => return,
            },
            _ = stopped.changed() => return,
        };
        buf.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(answer) = handler.handle(&buf, src, Protocol::Tcp).await else {
            continue;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
