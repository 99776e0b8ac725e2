//! Sockets: a UDP loop and a TCP accept loop per listen address, all driving one [`Handler`].
//! Also owns the live policy and its reload.
//!
//! UDP is served by plain threads (see `udp`), answering local verdicts inline and handing
//! upstream waits to the runtime (bounded by `server.max_inflight`). TCP connections are bounded by `server.max_tcp_connections` and
//! closed after `server.tcp_idle_timeout_ms` without a query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::blocklog::BlockLog;
use crate::cache::Cache;
use crate::config::Config;
use crate::handler::{Handler, Protocol};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::querylog::QueryLog;
use crate::ratelimit::RateLimiter;
use crate::reload::{self, Live};
use crate::remote::Fetcher;
use crate::udp;
use crate::upstream::Upstream;

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    /// Bound addresses, in `server.listen` order (port 0 resolved); UDP and TCP share each.
    pub addrs: Vec<SocketAddr>,
    /// The operations listener, if `[http] listen` is set (port 0 resolved).
    pub http_addr: Option<SocketAddr>,
    handler: Arc<Handler>,
    live: Arc<Live>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    udp_stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Loads the policy, opens the block log, binds every listen address and starts serving,
    /// then starts the file watch and remote feed refresh.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let policy = Policy::build(&config).map_err(anyhow::Error::msg)?;
        reload::give_back_freed_memory(); // what parsing the feeds used and freed
        let metrics = Arc::new(Metrics::new(&config.upstream.servers));
        let log = BlockLog::open(&config.log, Some(metrics.clone()))
            .with_context(|| format!("cannot open block log {}", config.log.blocks))?;
        let upstream = Arc::new(
            Upstream::new(
                config.upstream.servers.clone(),
                Duration::from_millis(config.upstream.timeout_ms),
            )
            .with_metrics(metrics.clone()),
        );
        let fetcher =
            Fetcher::new(&config.download, upstream.clone()).map_err(anyhow::Error::msg)?;
        let live = Arc::new(Live::new(config.clone(), policy).with_metrics(metrics.clone()));
        let handler = Arc::new(
            Handler::new(
                live.policy.clone(),
                upstream,
                Cache::new(&config.cache),
                log,
                config.server.max_inflight,
            )
            .with_metrics(metrics.clone())
            .with_query_log(match &config.log.queries {
                Some(path) => Some(
                    QueryLog::open(
                        path,
                        config.log.max_bytes,
                        config.log.keep,
                        config.log.queue,
                    )
                    .with_context(|| format!("cannot open query log {path}"))?,
                ),
                None => None,
            })
            .with_rate_limit(
                RateLimiter::new(
                    config.limits.client_qps,
                    config.limits.client_burst,
                    config.limits.slip,
                )
                .map(|l| l.exempting(config.limits.exempt.clone())),
            ),
        );
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        let tcp_slots = Arc::new(Semaphore::new(config.server.max_tcp_connections));
        let idle = Duration::from_millis(config.server.tcp_idle_timeout_ms);
        let udp_threads = config.server.udp_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        });
        let udp_stop = Arc::new(AtomicBool::new(false));
        let mut udp_threads_running = Vec::new();
        for listen in &config.server.listen {
            let (sockets, tcp) = bind_all(*listen, udp_threads)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            addrs.push(sockets[0].local_addr()?);
            udp_threads_running.extend(udp::spawn(
                sockets,
                handler.clone(),
                tokio::runtime::Handle::current(),
                udp_stop.clone(),
            )?);
            tasks.spawn(serve_tcp(
                tcp,
                handler.clone(),
                tcp_slots.clone(),
                idle,
                stopped.clone(),
            ));
        }
        let http_addr = match config.http.listen {
            Some(addr) => {
                let (bound, task) =
                    crate::http::serve(addr, handler.clone(), live.clone(), stopped.clone())
                        .await
                        .with_context(|| format!("cannot listen on {addr} (http)"))?;
                tasks.spawn(async move {
                    let _ = task.await;
                });
                Some(bound)
            }
            None => None,
        };
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
            http_addr,
            addrs,
            handler,
            live,
            stop,
            tasks,
            udp_stop,
            udp_threads: udp_threads_running,
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
        self.udp_stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.udp_threads);
        let _ =
            tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
                .await;
    }
}

/// Binds `udp_threads` UDP sockets and a TCP listener on the same address. With port 0,
/// retries until UDP and TCP get the same port.
async fn bind_all(
    addr: SocketAddr,
    udp_threads: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let first = udp::bind(addr)?;
        let bound = first.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => {
                let mut sockets = vec![first];
                for _ in 1..udp_threads {
                    sockets.push(udp::bind(bound)?);
                }
                return Ok((sockets, tcp));
            }
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port")))
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
