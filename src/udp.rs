//! UDP serving: a few plain threads per listen address, each with its own socket on the
//! same port (SO_REUSEPORT spreads datagrams across them), each receiving, answering local
//! verdicts inline and sending. Queries that wait on an upstream are handed to the tokio
//! runtime, so a slow upstream never holds a receiving thread.
//!
//! Blocking threads rather than async tasks: on the hot path this saves the readiness
//! round-trips of an event loop, which is most of what a DNS answer costs above the kernel.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::handler::{Handler, Outcome, Protocol};

/// How often an idle thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Receive buffer per socket: room for bursts while a thread is busy.
const RECV_BUFFER: usize = 4 << 20;

/// One UDP socket bound to `addr` with SO_REUSEPORT (so more can share the port).
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket.into())
}

/// Starts one serving thread per socket.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    handler: Arc<Handler>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let (handler, runtime, stop) = (handler.clone(), runtime.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || serve(Arc::new(socket), handler, runtime, stop))
        })
        .collect()
}

fn serve(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let (len, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        // A bug in the request path must cost one answer, not the listener.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.begin(&buf[..len], src, Protocol::Udp)
        }));
        match outcome {
            Ok(Outcome::Reply(bytes)) => send(&socket, &bytes, src),
            Ok(Outcome::Drop) => {}
            Ok(Outcome::Forward(pending)) => {
                let permit = handler.try_reserve();
                let (socket, handler) = (socket.clone(), handler.clone());
                runtime.spawn(async move {
                    let bytes = handler.forward(pending, permit.is_some()).await;
                    drop(permit);
                    send(&socket, &bytes, src);
                });
            }
            Err(_) => tracing::error!(%src, "request handler panicked; query dropped"),
        }
    }
}

fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, to) {
        tracing::debug!(error = %e, %to, "udp send failed");
    }
}
