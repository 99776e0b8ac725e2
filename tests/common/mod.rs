//! Test harness: the real server started in-process on 127.0.0.1 port 0, a fake upstream on
//! loopback, and a small DNS client that can send from 127.0.0.x source addresses.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use iocsink::config::Config;
use iocsink::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub const BAD: &str = "geschmeidig6307-kotyatanet.sbs";

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// What the fake upstream knows: records by (lower-case name, type), and names that do not exist.
#[derive(Default)]
pub struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
}

impl Zone {
    /// The zone most tests use.
    pub fn standard() -> Zone {
        let mut z = Zone::default();
        z.add("www.example.test.", 300, RData::A(A::new(192, 0, 2, 10)));
        z.add(
            "www.example.test.",
            300,
            RData::AAAA(AAAA("2001:db8::10".parse().unwrap())),
        );
        z.add(
            "txt.example.test.",
            300,
            RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
        );
        z.add(
            "alias.example.test.",
            300,
            RData::CNAME(CNAME(name("mid.example.test."))),
        );
        z.add(
            "mid.example.test.",
            300,
            RData::CNAME(CNAME(name("www.example.test."))),
        );
        z.add("short.example.test.", 2, RData::A(A::new(192, 0, 2, 2)));
        // Names near the indicator that must not be blocked.
        z.add(&format!("x{BAD}."), 300, RData::A(A::new(192, 0, 2, 20)));
        z.add(
            &format!("{BAD}.example."),
            300,
            RData::A(A::new(192, 0, 2, 21)),
        );
        z.add("sbs.", 300, RData::A(A::new(192, 0, 2, 22)));
        z.add(
            "update.microsoft.com.",
            300,
            RData::A(A::new(192, 0, 2, 30)),
        );
        z.add(
            &format!("ws.{BAD}."),
            300,
            RData::A(A::new(203, 0, 113, 66)),
        );
        z.add(&format!("{BAD}."), 300, RData::A(A::new(203, 0, 113, 66)));
        let big: Vec<String> = (0..40)
            .map(|i| format!("{i:02}-{}", "x".repeat(60)))
            .collect();
        z.add("big.example.test.", 300, RData::TXT(TXT::new(big)));
        z
    }

    pub fn add(&mut self, owner: &str, ttl: u32, data: RData) {
        let rtype = data.record_type();
        self.records
            .entry((owner.to_ascii_lowercase(), rtype))
            .or_default()
            .push(Record::from_rdata(name(owner), ttl, data));
    }

    fn has_name(&self, owner: &str) -> bool {
        self.records.keys().any(|(n, _)| n == owner)
    }

    /// Answers like an authoritative server for everything: follows CNAMEs, NXDOMAIN + SOA.
    fn answer(&self, query: &Message) -> Message {
        let q = &query.queries[0];
        let mut resp = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.queries = query.queries.clone();
        if query.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            resp.set_edns(e);
        }
        let mut owner = q.name().to_ascii().to_ascii_lowercase();
        // DNAME records (kept as type 39) at the name come first, as a server would put them.
        if let Some(rs) = self.records.get(&(owner.clone(), RecordType::Unknown(39))) {
            resp.answers.extend(rs.iter().cloned());
        }
        for _ in 0..12 {
            if let Some(rs) = self.records.get(&(owner.clone(), q.query_type())) {
                resp.answers.extend(rs.iter().cloned());
                return resp;
            }
            match self.records.get(&(owner.clone(), RecordType::CNAME)) {
                Some(rs) => {
                    resp.answers.extend(rs.iter().cloned());
                    if let RData::CNAME(c) = &rs[0].data {
                        owner = c.0.to_ascii().to_ascii_lowercase();
                    }
                }
                None => break,
            }
        }
        if !self.has_name(&owner) {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        let soa = SOA::new(
            name("ns.example.test."),
            name("h.example.test."),
            1,
            3600,
            600,
            86400,
            30,
        );
        resp.authorities.push(Record::from_rdata(
            name("example.test."),
            30,
            RData::SOA(soa),
        ));
        resp
    }
}

/// How the fake upstream misbehaves, switchable at run time.
#[derive(Default)]
pub struct Faults {
    /// Ignore every query (a dead upstream).
    pub silent: AtomicBool,
    /// Answer every query with SERVFAIL.
    pub servfail: AtomicBool,
    /// Send a forged answer (wrong ID) before the real one.
    pub spoof_first: AtomicBool,
    /// Answer only with the wrong question.
    pub wrong_question: AtomicBool,
}

/// A fake authoritative upstream on 127.0.0.1, UDP and TCP on one port.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    pub faults: Arc<Faults>,
    /// Every query received, in order, to check what was forwarded.
    pub seen: Arc<Mutex<Vec<Message>>>,
}

impl FakeUpstream {
    /// Whether any query for `qname` (any type) reached this upstream.
    pub fn was_asked(&self, qname: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|m| {
            m.queries
                .iter()
                .any(|q| q.name().to_ascii().eq_ignore_ascii_case(qname))
        })
    }

    /// The last query received.
    pub fn last(&self) -> Option<Message> {
        self.seen.lock().unwrap().last().cloned()
    }
}

impl FakeUpstream {
    pub async fn start(zone: Zone) -> FakeUpstream {
        let zone = Arc::new(zone);
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let up = FakeUpstream {
            addr: udp.local_addr().unwrap(),
            udp_queries: Arc::default(),
            tcp_queries: Arc::default(),
            faults: Arc::default(),
            seen: Arc::default(),
        };
        let (z, count, faults, last) = (
            zone.clone(),
            up.udp_queries.clone(),
            up.faults.clone(),
            up.seen.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, src)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Some(mut resp) = respond(&z, &faults, &last, &buf[..n]) else {
                    continue;
                };
                if faults.wrong_question.load(Ordering::SeqCst) {
                    resp.queries[0] =
                        Query::query(name("other.example.test."), resp.queries[0].query_type());
                }
                if faults.spoof_first.load(Ordering::SeqCst) {
                    let mut forged = resp.clone();
                    forged.metadata.id = forged.metadata.id.wrapping_add(1);
                    forged.answers = vec![Record::from_rdata(
                        resp.queries[0].name().clone(),
                        300,
                        RData::A(A::new(6, 6, 6, 6)),
                    )];
                    let _ = udp.send_to(&forged.to_vec().unwrap(), src).await;
                }
                let mut bytes = resp.to_vec().unwrap();
                if bytes.len() > 1232 {
                    bytes = resp.truncate().to_vec().unwrap();
                }
                let _ = udp.send_to(&bytes, src).await;
            }
        });
        let (z, count, faults, last) = (
            zone,
            up.tcp_queries.clone(),
            up.faults.clone(),
            up.seen.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                let (z, count, faults, last) =
                    (z.clone(), count.clone(), faults.clone(), last.clone());
                tokio::spawn(async move {
                    while let Ok(len) = s.read_u16().await {
                        let mut buf = vec![0u8; len as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let Some(resp) = respond(&z, &faults, &last, &buf) else {
                            continue;
                        };
                        let bytes = resp.to_vec().unwrap();
                        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                        framed.extend(bytes);
                        if s.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        up
    }

    pub fn queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst) + self.tcp_queries.load(Ordering::SeqCst)
    }
}

fn respond(
    zone: &Zone,
    faults: &Faults,
    seen: &Mutex<Vec<Message>>,
    packet: &[u8],
) -> Option<Message> {
    let query = Message::from_vec(packet).ok()?;
    seen.lock().unwrap().push(query.clone());
    if faults.silent.load(Ordering::SeqCst) {
        return None;
    }
    if faults.servfail.load(Ordering::SeqCst) {
        let mut r = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        r.queries = query.queries.clone();
        r.metadata.response_code = ResponseCode::ServFail;
        return Some(r);
    }
    Some(zone.answer(&query))
}

/// A running iocsink with its temporary directory (config, feeds, block log).
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

/// The standard feed: the seed's two MaskGramStealer IOCs in ThreatFox CSV form.
pub const SEED_CSV: &str = include_str!("../../config/feeds/maskgramstealer.csv");

impl TestServer {
    /// Starts iocsink with `extra` TOML appended to a base config that forwards to `upstream`
    /// and loads the seed feed. `extra` may add `[block]`, `[allow]`, more feeds, etc.
    pub async fn start(upstreams: &[SocketAddr], extra: &str) -> TestServer {
        Self::start_with(upstreams, extra, 2000).await
    }

    pub async fn start_with(upstreams: &[SocketAddr], extra: &str, timeout_ms: u64) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.csv"), SEED_CSV).unwrap();
        let text = base_config(dir.path(), upstreams, timeout_ms, extra);
        let config_path = dir.path().join("iocsink.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::load(&config_path).unwrap();
        let server = Server::start(config).await.unwrap();
        let addr = server.addrs[0];
        TestServer {
            server,
            addr,
            dir,
            config_path,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("blocks.jsonl")
    }

    /// Block-log lines, waiting up to 2 s for at least `at_least` of them to be written.
    pub async fn log_lines(&self, at_least: usize) -> Vec<serde_json::Value> {
        for _ in 0..200 {
            let lines = read_log(&self.log_path());
            if lines.len() >= at_least {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        read_log(&self.log_path())
    }
}

pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("block log line is JSON"))
        .collect()
}

pub fn base_config(dir: &Path, upstreams: &[SocketAddr], timeout_ms: u64, extra: &str) -> String {
    let ups: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    let extra = extra.replace("{dir}", &dir.display().to_string());
    let has_block = extra.contains("[block]");
    let log = if extra.contains("[log]") {
        String::new()
    } else {
        format!("[log]\nblocks = \"{}/blocks.jsonl\"\n", dir.display())
    };
    // Tests send many queries from one address; the rate limit has tests of its own.
    let limits = if extra.contains("[limits]") {
        ""
    } else {
        "[limits]\nclient_qps = 0\n"
    };
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
allow_clients = ["127.0.0.1/32", "127.0.0.2/32"]

[upstream]
servers = [{ups}]
timeout_ms = {timeout_ms}

{block}
[[feed]]
name = "threatfox-maskgramstealer"
path = "{dir}/seed.csv"

{log}
{limits}
{extra}
"#,
        ups = ups.join(", "),
        dir = dir.display(),
        block = if has_block {
            ""
        } else {
            "[block]\naction = \"nxdomain\"\n"
        },
    )
}

/// Options for one test query.
#[derive(Clone, Copy)]
pub struct Ask {
    pub edns: bool,
    pub tcp: bool,
    pub from: Ipv4Addr,
}

impl Default for Ask {
    fn default() -> Self {
        Ask {
            edns: true,
            tcp: false,
            from: Ipv4Addr::LOCALHOST,
        }
    }
}

pub fn query_message(qname: &str, qtype: RecordType, edns: bool) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = rand::random();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name(qname), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        msg.set_edns(e);
    }
    msg
}

/// Sends one query and returns the parsed answer (panics after 3 s without one).
pub async fn ask(server: SocketAddr, qname: &str, qtype: RecordType, how: Ask) -> Message {
    let msg = query_message(qname, qtype, how.edns);
    let bytes = msg.to_vec().unwrap();
    let reply = if how.tcp {
        tcp_exchange(server, &bytes).await
    } else {
        udp_exchange(server, &bytes, IpAddr::V4(how.from))
            .await
            .expect("an answer over UDP")
    };
    let answer = Message::from_vec(&reply).unwrap();
    assert_eq!(
        answer.metadata.id, msg.metadata.id,
        "answer echoes the query ID"
    );
    answer
}

pub async fn udp_exchange(server: SocketAddr, bytes: &[u8], from: IpAddr) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

pub async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(3), s.read_u16())
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

pub fn soa_of(msg: &Message) -> Option<(&Record, &SOA)> {
    msg.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some((r, s)),
        _ => None,
    })
}

pub fn a_records(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// The EDE (RFC 8914) info code and text of a response, if any.
pub fn ede(msg: &Message) -> Option<(u16, String)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let edns = msg.edns.as_ref()?;
    match edns.option(EdnsCode::from(15u16))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// What the fake feed server serves now.
pub struct Served {
    pub status: u16,
    pub body: Vec<u8>,
    pub etag: String,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for remote-feed tests: one response per connection,
/// honouring If-None-Match.
pub struct HttpFeed {
    pub addr: SocketAddr,
    pub served: Arc<Mutex<Served>>,
    pub requests: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
}

impl HttpFeed {
    pub async fn start(body: &[u8]) -> HttpFeed {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let feed = HttpFeed {
            addr: listener.local_addr().unwrap(),
            served: Arc::new(Mutex::new(Served {
                status: 200,
                body: body.to_vec(),
                etag: "\"v1\"".into(),
            })),
            requests: Arc::default(),
            not_modified: Arc::default(),
        };
        let (served, requests, not_modified) = (
            feed.served.clone(),
            feed.requests.clone(),
            feed.not_modified.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut byte).await.is_err() {
                        break;
                    }
                    head.push(byte[0]);
                }
                requests.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let (status, body, etag) = {
                    let s = served.lock().unwrap();
                    (s.status, s.body.clone(), s.etag.clone())
                };
                let conditional =
                    head.contains(&format!("if-none-match: {}", etag.to_ascii_lowercase()));
                let response = if status == 200 && conditional {
                    not_modified.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else {
                    let mut r = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                };
                let _ = s.write_all(&response).await;
                let _ = s.shutdown().await;
            }
        });
        feed
    }

    pub fn serve(&self, status: u16, body: &[u8], etag: &str) {
        *self.served.lock().unwrap() = Served {
            status,
            body: body.to_vec(),
            etag: etag.into(),
        };
    }
}

/// Polls `check` every 20 ms until it is true or `within` passes; returns whether it became true.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

/// The rcode iocsink answers for an A query of `qname`.
pub async fn rcode_of(server: SocketAddr, qname: &str) -> ResponseCode {
    ask(server, qname, RecordType::A, Ask::default())
        .await
        .metadata
        .response_code
}

/// Whether iocsink blocked `qname` (answered with its Blocked EDE, not a real NXDOMAIN).
pub async fn is_blocked(server: SocketAddr, qname: &str) -> bool {
    let r = ask(server, qname, RecordType::A, Ask::default()).await;
    ede(&r).is_some_and(|(code, _)| code == 15)
}
