//! Hardening: malformed and unusual queries, upstream faults, abuse limits. The server must
//! answer as the RFCs say (or stay silent where no answer is possible) and keep serving.

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

/// A valid query's bytes, to mutate.
fn query_bytes(qname: &str, qtype: RecordType) -> Vec<u8> {
    let mut q = query_message(qname, qtype, false);
    q.metadata.id = 0x1234;
    q.to_vec().unwrap()
}

async fn rcode_for(addr: std::net::SocketAddr, packet: &[u8]) -> Option<ResponseCode> {
    let reply = udp_exchange_within(addr, packet, Duration::from_millis(400)).await?;
    let msg = Message::from_vec(&reply).expect("every answer parses");
    assert_eq!(
        msg.metadata.id,
        u16::from_be_bytes([packet[0], packet[1]]),
        "ID echoed"
    );
    Some(msg.metadata.response_code)
}

async fn udp_exchange_within(
    addr: std::net::SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn still_serving(addr: std::net::SocketAddr) {
    let r = ask(addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "still blocking"
    );
    let r = ask(addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(a_records(&r), vec!["192.0.2.10"], "still forwarding");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_queries_get_the_rfc_answer_or_silence() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let good = query_bytes("www.example.test.", RecordType::A);

    // Too short to carry an ID: nothing to answer.
    assert_eq!(rcode_for(s.addr, &good[..5]).await, None);
    // A response (QR=1) sent to us: never answered.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(rcode_for(s.addr, &response).await, None);
    // No question, or two: FORMERR.
    let mut none = good[..12].to_vec();
    none[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(rcode_for(s.addr, &none).await, Some(ResponseCode::FormErr));
    let mut two = query_message("a.example.test.", RecordType::A, false);
    two.add_query(hickory_proto::op::Query::query(
        name("b.example.test."),
        RecordType::A,
    ));
    assert_eq!(
        rcode_for(s.addr, &two.to_vec().unwrap()).await,
        Some(ResponseCode::FormErr)
    );
    // A label of 64 bytes, a name over 255 bytes, a compression loop, a truncated question.
    let mut long_label = good[..12].to_vec();
    long_label.push(64);
    long_label.extend([b'a'; 64]);
    long_label.extend([0, 0, 1, 0, 1]);
    assert_eq!(
        rcode_for(s.addr, &long_label).await,
        Some(ResponseCode::FormErr)
    );
    let mut long_name = good[..12].to_vec();
    for _ in 0..5 {
        long_name.push(60);
        long_name.extend([b'b'; 60]);
    }
    long_name.extend([0, 0, 1, 0, 1]);
    assert_eq!(
        rcode_for(s.addr, &long_name).await,
        Some(ResponseCode::FormErr)
    );
    let mut looped = good[..12].to_vec();
    looped.extend([0xc0, 12, 0, 1, 0, 1]); // the name points at itself
    assert_eq!(
        rcode_for(s.addr, &looped).await,
        Some(ResponseCode::FormErr)
    );
    assert_eq!(
        rcode_for(s.addr, &good[..good.len() - 2]).await,
        Some(ResponseCode::FormErr)
    );
    // Opcodes other than QUERY: NOTIMP.
    for opcode in [OpCode::Status, OpCode::Notify] {
        let mut m = query_message("www.example.test.", RecordType::A, false);
        m.metadata.op_code = opcode;
        assert_eq!(
            rcode_for(s.addr, &m.to_vec().unwrap()).await,
            Some(ResponseCode::NotImp),
            "{opcode:?}"
        );
    }
    // Classes other than IN, zone transfers: REFUSED.
    let mut chaos = query_message("version.bind.", RecordType::TXT, false);
    chaos.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        rcode_for(s.addr, &chaos.to_vec().unwrap()).await,
        Some(ResponseCode::Refused)
    );
    let axfr = query_message("example.test.", RecordType::AXFR, false);
    let over_tcp = Message::from_vec(&tcp_exchange(s.addr, &axfr.to_vec().unwrap()).await).unwrap();
    assert_eq!(over_tcp.metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        rcode_for(
            s.addr,
            &query_message("example.test.", RecordType::IXFR, false)
                .to_vec()
                .unwrap()
        )
        .await,
        Some(ResponseCode::Refused)
    );
    // ANY is forwarded and relayed as the upstream answers it.
    assert!(
        rcode_for(
            s.addr,
            &query_message("www.example.test.", RecordType::ANY, false)
                .to_vec()
                .unwrap()
        )
        .await
        .is_some()
    );
    assert_eq!(up.queries(), 1, "only the ANY query reached the upstream");
    still_serving(s.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_mutated_packets_never_stop_the_server() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seeds = [
        query_bytes(&format!("ws.{BAD}."), RecordType::A),
        query_bytes("www.example.test.", RecordType::AAAA),
        query_message("txt.example.test.", RecordType::TXT, true)
            .to_vec()
            .unwrap(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..20_000 {
        let mut packet = if i % 4 == 0 {
            (0..(next() % 600) as usize)
                .map(|_| next() as u8)
                .collect::<Vec<u8>>()
        } else {
            seeds[i % seeds.len()].clone()
        };
        if !packet.is_empty() {
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % packet.len();
                packet[at] = next() as u8;
            }
            if next() % 5 == 0 {
                packet.truncate((next() as usize) % packet.len());
            }
        }
        sock.send_to(&packet, s.addr).await.unwrap();
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The flood overruns the socket buffer, so some packets are dropped by the kernel, as on
    // any network; once the backlog is worked off the server answers as before.
    let probe = query_bytes(&format!("ws.{BAD}."), RecordType::A);
    let recovered = eventually(Duration::from_secs(10), async || {
        udp_exchange_within(s.addr, &probe, Duration::from_millis(500))
            .await
            .is_some()
    })
    .await;
    assert!(recovered, "answering again after the flood");
    // Thousands of mutated queries went to the upstream too; once it has caught up,
    // forwarding works as before.
    let forwarding = eventually(Duration::from_secs(10), async || {
        a_records(&ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await)
            == vec!["192.0.2.10"]
    })
    .await;
    assert!(forwarding, "forwarding again after the flood");
    still_serving(s.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_upstream_answers_are_discarded() {
    let up = FakeUpstream::start(Zone::standard()).await;
    up.faults.spoof_first.store(true, Ordering::SeqCst);
    let s = TestServer::start(&[up.addr], "").await;
    let r = ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(
        a_records(&r),
        vec!["192.0.2.10"],
        "the wrong-ID answer (6.6.6.6) was ignored"
    );

    up.faults.spoof_first.store(false, Ordering::SeqCst);
    up.faults.wrong_question.store(true, Ordering::SeqCst);
    let s = TestServer::start_with(&[up.addr], "", 400).await;
    let r = ask(s.addr, "txt.example.test.", RecordType::TXT, Ask::default()).await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::ServFail,
        "an answer to another question is no answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_upstream_queries_are_bounded() {
    let up = FakeUpstream::start(Zone::standard()).await;
    up.faults.silent.store(true, Ordering::SeqCst);
    let s2 = TestServerLimits::start(&up).await; // max_inflight = 2, timeout 1.5 s
    let started = Instant::now();
    let mut waits = Vec::new();
    for i in 0..5 {
        let addr = s2.addr;
        waits.push(tokio::spawn(async move {
            let r = ask(
                addr,
                &format!("n{i}.example.test."),
                RecordType::A,
                Ask::default(),
            )
            .await;
            (r.metadata.response_code, Instant::now())
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut quick = 0;
    for w in waits {
        let (rcode, at) = w.await.unwrap();
        assert_eq!(rcode, ResponseCode::ServFail);
        if at.duration_since(started) < Duration::from_millis(700) {
            quick += 1;
        }
    }
    assert!(
        quick >= 3,
        "beyond max_inflight = 2, SERVFAIL at once ({quick} quick)"
    );
}

/// A server with `max_inflight = 2` (the base config cannot set [server] keys).
struct TestServerLimits {
    addr: std::net::SocketAddr,
    _server: iocsink::server::Server,
    _dir: tempfile::TempDir,
}

impl TestServerLimits {
    async fn start(up: &FakeUpstream) -> TestServerLimits {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_inflight = 2\nmax_tcp_connections = 50\ntcp_idle_timeout_ms = 500\n[upstream]\nservers = [\"{}\"]\ntimeout_ms = 1500\n[log]\nblocks = \"{}/b.jsonl\"\n[limits]\nclient_qps = 0\n",
            up.addr,
            dir.path().display()
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let server = iocsink::server::Server::start(iocsink::config::Config::load(&path).unwrap())
            .await
            .unwrap();
        TestServerLimits {
            addr: server.addrs[0],
            _server: server,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_tcp_connections_never_stop_udp_service() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServerLimits::start(&up).await; // at most 50 TCP connections, idle 500 ms
    let mut idle = Vec::new();
    for _ in 0..500 {
        if let Ok(c) = tokio::net::TcpStream::connect(s.addr).await {
            idle.push(c);
        }
    }
    let t = Instant::now();
    let r = ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(a_records(&r), vec!["192.0.2.10"]);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "UDP answered at once: {:?}",
        t.elapsed()
    );
    // After the idle timeout the slots are free again for a real TCP client.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = ask(
        s.addr,
        "www.example.test.",
        RecordType::A,
        Ask {
            tcp: true,
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(a_records(&r), vec!["192.0.2.10"]);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_over_their_rate_are_limited_without_amplification() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(
        &[up.addr],
        "[limits]\nclient_qps = 20\nclient_burst = 20\nslip = 2\nexempt = []\n",
    )
    .await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let packet = query_bytes(&format!("ws.{BAD}."), RecordType::A);
    for _ in 0..100 {
        sock.send_to(&packet, s.addr).await.unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            truncated += 1;
            assert!(
                n <= packet.len(),
                "a limited client never gets more bytes than it sent"
            );
        } else {
            full += 1;
        }
    }
    assert!((20..=25).contains(&full), "the burst is answered: {full}");
    assert!(
        (30..=45).contains(&truncated),
        "every 2nd query over the limit slips: {truncated}"
    );
    // Another client is not affected, and TCP is never limited.
    let other = Ask {
        from: Ipv4Addr::new(127, 0, 0, 2),
        ..Ask::default()
    };
    assert_eq!(
        ask(s.addr, &format!("ws.{BAD}."), RecordType::A, other)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    let tcp = Ask {
        tcp: true,
        ..Ask::default()
    };
    assert_eq!(
        ask(s.addr, &format!("ws.{BAD}."), RecordType::A, tcp)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
}
