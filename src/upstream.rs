//! Forwarding to the configured resolvers: UDP first, TCP when the answer is truncated,
//! failover in order of recent health, and one overall deadline per query.
//!
//! Every exchange uses a fresh socket on a random port and a random ID; an answer counts only
//! if it comes from the server asked (the socket is connected) and echoes the ID and question.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::metrics::Metrics;

/// Payload size we advertise upstream (DNS Flag Day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Shortest time one upstream is given before the next is tried.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// Flags of the client's query that the upstream query carries over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryFlags {
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub dnssec_ok: bool,
}

pub struct Upstream {
    metrics: Option<Arc<Metrics>>,
    servers: Vec<SocketAddr>,
    timeout: Duration,
    /// Consecutive failures per server; servers that answer are tried first.
    failures: Vec<AtomicU32>,
}

impl Upstream {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Upstream {
        let failures = servers.iter().map(|_| AtomicU32::new(0)).collect();
        Upstream {
            metrics: None,
            servers,
            timeout,
            failures,
        }
    }

    /// Records every exchange (latency, errors, timeouts) per server into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Upstream {
        self.metrics = Some(metrics);
        self
    }

    /// Resolves one question. Ok only for a validated NOERROR or NXDOMAIN answer; SERVFAIL,
    /// REFUSED and the like count as failures so the next server is tried.
    pub async fn resolve(&self, question: &Query, flags: QueryFlags) -> Result<Message, String> {
        let deadline = Instant::now() + self.timeout;
        let per_attempt = (self.timeout / self.servers.len() as u32).max(MIN_ATTEMPT);
        let mut last_error = String::from("no upstream tried");
        for index in self.order() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let attempt_deadline = (now + per_attempt).min(deadline);
            let server = self.servers[index];
            let started = Instant::now();
            match exchange(server, question, flags, attempt_deadline).await {
                Ok(answer) => {
                    self.failures[index].store(0, Ordering::Relaxed);
                    if let Some(m) = &self.metrics {
                        m.upstream_answer(index, started.elapsed());
                    }
                    return Ok(answer);
                }
                Err(e) => {
                    self.failures[index].fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = &self.metrics {
                        m.upstream_failure(index, e.contains("timed out"));
                    }
                    tracing::debug!(%server, error = %e, "upstream attempt failed");
                    last_error = format!("{server}: {e}");
                }
            }
        }
        Err(last_error)
    }

    /// Server indices, healthiest first (config order among equals).
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.servers.len()).collect();
        order.sort_by_key(|&i| self.failures[i].load(Ordering::Relaxed).min(3));
        order
    }
}

/// One server: UDP, then TCP if the UDP answer was truncated.
async fn exchange(
    server: SocketAddr,
    question: &Query,
    flags: QueryFlags,
    deadline: Instant,
) -> Result<Message, String> {
    let (id, packet) = build_query(question, flags)?;
    let answer = udp_exchange(server, &packet, id, question, deadline).await?;
    let answer = if answer.metadata.truncation {
        tcp_exchange(server, &packet, id, question, deadline).await?
    } else {
        answer
    };
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer),
        rcode => Err(format!("answered {rcode}")),
    }
}

fn build_query(question: &Query, flags: QueryFlags) -> Result<(u16, Vec<u8>), String> {
    let id: u16 = rand::random();
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = flags.recursion_desired;
    msg.metadata.checking_disabled = flags.checking_disabled;
    msg.add_query(question.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(flags.dnssec_ok);
    msg.set_edns(edns);
    let packet = msg
        .to_vec()
        .map_err(|e| format!("cannot encode query: {e}"))?;
    Ok((id, packet))
}

async fn udp_exchange(
    server: SocketAddr,
    packet: &[u8],
    id: u16,
    question: &Query,
    deadline: Instant,
) -> Result<Message, String> {
    let local: SocketAddr = match (server, server.ip().is_loopback()) {
        (SocketAddr::V4(_), true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (SocketAddr::V4(_), false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (SocketAddr::V6(_), true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (SocketAddr::V6(_), false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(packet).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        // Anything that is not the answer to our question is ignored, not trusted.
        if let Some(answer) = validated(&buf[..n], id, question) {
            return Ok(answer);
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    packet: &[u8],
    id: u16,
    question: &Query,
    deadline: Instant,
) -> Result<Message, String> {
    let work = async {
        let mut stream = TcpStream::connect(server).await?;
        let mut framed = Vec::with_capacity(packet.len() + 2);
        framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        framed.extend_from_slice(packet);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = timeout_at(deadline, work)
        .await
        .map_err(|_| "timed out over TCP".to_string())?
        .map_err(|e| format!("TCP: {e}"))?;
    validated(&buf, id, question).ok_or_else(|| "TCP answer did not match the query".into())
}

/// Parses an answer and checks it is the response to our query: QR set, same ID, same question.
fn validated(buf: &[u8], id: u16, question: &Query) -> Option<Message> {
    let msg = Message::from_vec(buf).ok()?;
    let ok = msg.metadata.message_type == MessageType::Response
        && msg.metadata.id == id
        && msg.queries.len() == 1
        && msg.queries[0].name() == question.name()
        && msg.queries[0].query_type() == question.query_type()
        && msg.queries[0].query_class() == question.query_class();
    ok.then_some(msg)
}
