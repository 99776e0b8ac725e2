//! Forwarding: everything not listed is relayed faithfully from the upstream, cached, and
//! answered with SERVFAIL in time when no upstream answers.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

#[tokio::test(flavor = "multi_thread")]
async fn relays_a_aaaa_and_txt_answers() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let a = ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&a), vec!["192.0.2.10"]);
    assert!(a.metadata.recursion_available);
    let aaaa = ask(
        s.addr,
        "www.example.test.",
        RecordType::AAAA,
        Ask::default(),
    )
    .await;
    assert_eq!(a_records(&aaaa), vec!["2001:db8::10"]);
    let txt = ask(s.addr, "txt.example.test.", RecordType::TXT, Ask::default()).await;
    match &txt.answers[0].data {
        RData::TXT(t) => assert_eq!(t.to_string(), "v=spf1 -all"),
        other => panic!("expected TXT, got {other:?}"),
    }
    let forwarded = up.last().unwrap();
    let edns = forwarded.edns.expect("forwarded with EDNS");
    assert_eq!(edns.max_payload(), 1232);
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_cname_chains_whole() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let r = ask(s.addr, "alias.example.test.", RecordType::A, Ask::default()).await;
    let kinds: Vec<_> = r.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(
        kinds,
        vec![RecordType::CNAME, RecordType::CNAME, RecordType::A]
    );
    assert_eq!(a_records(&r), vec!["192.0.2.10"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_upstream_nxdomain_with_its_soa_and_caches_it() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let r = ask(s.addr, "nope.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    let (rec, _) = soa_of(&r).expect("upstream SOA relayed");
    assert_eq!(rec.name.to_ascii(), "example.test.");
    assert!(ede(&r).is_none(), "a real NXDOMAIN carries no Blocked EDE");
    let before = up.queries();
    let again = ask(s.addr, "nope.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(again.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.queries(), before, "negative answer served from cache");
    assert!(
        s.log_lines(0).await.is_empty(),
        "forwarded queries are not logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn caches_answers_for_their_ttl_and_counts_it_down() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(up.queries(), 1);
    // Case variants share one cache entry, and the question comes back as asked.
    let r = ask(s.addr, "WWW.Example.TEST.", RecordType::A, Ask::default()).await;
    assert_eq!(up.queries(), 1, "served from cache");
    assert_eq!(r.queries[0].name().to_ascii(), "WWW.Example.TEST.");
    assert_eq!(a_records(&r), vec!["192.0.2.10"]);
    // A 2-second TTL expires and is fetched again.
    ask(s.addr, "short.example.test.", RecordType::A, Ask::default()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let aged = ask(s.addr, "short.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(aged.answers[0].ttl, 1, "TTL counted down");
    assert_eq!(up.queries(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ask(s.addr, "short.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(up.queries(), 3, "expired entry refetched");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_over_tcp() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_upstream_answer_is_retried_over_tcp_and_client_told_to_retry() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let udp = ask(s.addr, "big.example.test.", RecordType::TXT, Ask::default()).await;
    assert_eq!(
        up.tcp_queries.load(Ordering::SeqCst),
        1,
        "iocsink retried over TCP upstream"
    );
    assert!(
        udp.metadata.truncation,
        "too big for the client's UDP size: TC set"
    );
    assert!(udp.answers.is_empty());
    let tcp = ask(
        s.addr,
        "big.example.test.",
        RecordType::TXT,
        Ask {
            tcp: true,
            ..Ask::default()
        },
    )
    .await;
    assert!(!tcp.metadata.truncation);
    match &tcp.answers[0].data {
        RData::TXT(t) => assert_eq!(t.txt_data.len(), 40),
        other => panic!("expected TXT, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_to_the_next_upstream() {
    let dead = FakeUpstream::start(Zone::standard()).await;
    dead.faults.servfail.store(true, Ordering::SeqCst);
    let good = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[dead.addr, good.addr], "").await;
    let r = ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&r), vec!["192.0.2.10"]);
    assert_eq!(dead.queries(), 1);
    // The failing upstream is now tried last.
    ask(s.addr, "txt.example.test.", RecordType::TXT, Ask::default()).await;
    assert_eq!(dead.queries(), 1, "healthy upstream preferred");
}

#[tokio::test(flavor = "multi_thread")]
async fn servfail_within_the_timeout_when_upstreams_are_down_while_blocks_still_answer() {
    let up = FakeUpstream::start(Zone::standard()).await;
    up.faults.silent.store(true, Ordering::SeqCst);
    let s = TestServer::start_with(&[up.addr], "", 500).await;
    let started = Instant::now();
    let (fwd, blocked) = tokio::join!(
        ask(s.addr, "www.example.test.", RecordType::A, Ask::default()),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let t = Instant::now();
            let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
            (r, t.elapsed())
        }
    );
    let waited = started.elapsed();
    assert_eq!(fwd.metadata.response_code, ResponseCode::ServFail);
    assert!(
        waited < Duration::from_millis(900),
        "SERVFAIL after {waited:?}, timeout 500 ms"
    );
    assert!(
        waited >= Duration::from_millis(450),
        "waited the timeout: {waited:?}"
    );
    let (blocked, took) = blocked;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        took < Duration::from_millis(200),
        "block answered at once: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_upstream_answers_become_servfail() {
    let up = FakeUpstream::start(Zone::standard()).await;
    up.faults.servfail.store(true, Ordering::SeqCst);
    let s = TestServer::start_with(&[up.addr], "", 500).await;
    let r = ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}
