//! Blocking: what clients see for listed names, over real sockets.

mod common;

use std::net::Ipv4Addr;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[tokio::test(flavor = "multi_thread")]
async fn blocks_the_indicator_and_names_below_it_with_nxdomain_and_soa() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    for qname in [
        format!("{BAD}."),
        format!("ws.{BAD}."),
        format!("a.b.c.{BAD}."),
        "WS.GeSchmeidig6307-Kotyatanet.SBS.".to_string(),
        format!("ws.{BAD}"), // no trailing dot
    ] {
        let r = ask(s.addr, &qname, RecordType::A, Ask::default()).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{qname}");
        assert!(r.answers.is_empty());
        assert!(r.metadata.recursion_available, "RA set");
        assert_eq!(
            r.queries[0].name().to_ascii(),
            qname.trim_end_matches('.').to_string() + ".",
            "question echoed as asked"
        );
        let (rec, soa) = soa_of(&r).expect("SOA in the authority section");
        assert_eq!(rec.ttl, 60);
        assert_eq!(soa.minimum, 60);
    }
    assert_eq!(up.queries(), 0, "blocked names never reach the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn matches_on_label_boundaries_only() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    for (qname, ip) in [
        (format!("x{BAD}."), "192.0.2.20"),
        (format!("{BAD}.example."), "192.0.2.21"),
        ("sbs.".to_string(), "192.0.2.22"),
    ] {
        let r = ask(s.addr, &qname, RecordType::A, Ask::default()).await;
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "{qname} not blocked"
        );
        assert_eq!(a_records(&r), vec![ip]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_answers_carry_extended_dns_error_blocked_when_edns() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    let (code, text) = ede(&r).expect("EDE option present");
    assert_eq!(code, 15);
    assert!(text.contains("threatfox-maskgramstealer"), "{text}");
    let plain = ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::A,
        Ask {
            edns: false,
            ..Ask::default()
        },
    )
    .await;
    assert!(
        plain.edns.is_none(),
        "no OPT in reply to a query without EDNS"
    );
    assert_eq!(plain.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test(flavor = "multi_thread")]
async fn sinkhole_answers_a_and_aaaa_and_nodata_for_other_types() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let extra = "[block]\naction = \"sinkhole\"\nsinkhole_ipv4 = \"192.0.2.99\"\nsinkhole_ipv6 = \"2001:db8::99\"\nttl = 30\n";
    let s = TestServer::start(&[up.addr], extra).await;
    let a = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&a), vec!["192.0.2.99"]);
    assert_eq!(a.answers[0].ttl, 30);
    let aaaa = ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::AAAA,
        Ask::default(),
    )
    .await;
    assert_eq!(a_records(&aaaa), vec!["2001:db8::99"]);
    let mx = ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::MX,
        Ask::default(),
    )
    .await;
    assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
    assert!(mx.answers.is_empty(), "NODATA");
    assert!(soa_of(&mx).is_some(), "NODATA carries the SOA");
    let lines = s.log_lines(3).await;
    assert_eq!(lines[0]["Action"], "sinkhole");
    assert_eq!(lines[0]["IPAddresses"], "192.0.2.99");
    assert_eq!(lines[0]["ResultCode"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlisted_domain_wins_over_indicator_and_is_logged_as_allowed() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let extra = format!("[allow]\ndomains = [\"ws.{BAD}\"]\n");
    let s = TestServer::start(&[up.addr], &extra).await;
    let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&r), vec!["203.0.113.66"]);
    // The parent is still blocked: the allow rule covers only ws. and below.
    let parent = ask(s.addr, &format!("{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(parent.metadata.response_code, ResponseCode::NXDomain);
    let lines = s.log_lines(2).await;
    assert_eq!(lines[0]["Action"], "allowed");
    assert_eq!(lines[0]["AllowRule"], format!("allow.domains ws.{BAD}"));
    assert_eq!(lines[0]["IPAddresses"], "203.0.113.66");
    assert_eq!(lines[1]["Action"], "nxdomain");
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlisted_client_is_never_blocked() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "[allow]\nclients = [\"127.0.0.2/32\"]\n").await;
    let from_ti = Ask {
        from: Ipv4Addr::new(127, 0, 0, 2),
        ..Ask::default()
    };
    let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, from_ti).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&r), vec!["203.0.113.66"]);
    let other = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
    let lines = s.log_lines(2).await;
    assert_eq!(lines[0]["Action"], "allowed");
    assert_eq!(lines[0]["ClientIP"], "127.0.0.2");
    assert_eq!(lines[0]["AllowRule"], "allow.clients 127.0.0.2/32");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_clients_outside_allow_clients() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let stranger = Ask {
        from: Ipv4Addr::new(127, 0, 0, 3),
        ..Ask::default()
    };
    for qname in ["www.example.test.".to_string(), format!("ws.{BAD}.")] {
        let r = ask(s.addr, &qname, RecordType::A, stranger).await;
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(r.answers.is_empty());
    }
    assert_eq!(up.queries(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_only_feed_forwards_and_logs_as_logged() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "[block]\naction = \"log\"\n").await;
    let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&r), vec!["203.0.113.66"]);
    let lines = s.log_lines(1).await;
    assert_eq!(lines[0]["Action"], "logged");
    assert_eq!(lines[0]["IPAddresses"], "203.0.113.66");
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_over_tcp_too() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let r = ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::A,
        Ask {
            tcp: true,
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    let lines = s.log_lines(1).await;
    assert_eq!(lines[0]["Protocol"], "tcp");
}
