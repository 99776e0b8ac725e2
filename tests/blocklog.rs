//! The block log: one JSON line per block with the DnsEvents-named fields; forwarded
//! queries are not logged.

mod common;

use common::*;
use hickory_proto::rr::RecordType;

#[tokio::test(flavor = "multi_thread")]
async fn block_log_lines_carry_the_design_fields() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    ask(
        s.addr,
        &format!("WS.{BAD}."),
        RecordType::AAAA,
        Ask::default(),
    )
    .await;
    ask(s.addr, "txt.example.test.", RecordType::TXT, Ask::default()).await;
    let lines = s.log_lines(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let lines = if lines.len() == 1 {
        s.log_lines(1).await
    } else {
        lines
    };
    assert_eq!(lines.len(), 1, "only the block is logged: {lines:?}");
    let e = &lines[0];
    let ts = e["TimeGenerated"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
        "{ts}"
    );
    assert!(ts.ends_with('Z'), "UTC: {ts}");
    assert_eq!(e["ClientIP"], "127.0.0.1");
    assert_eq!(e["Computer"], "127.0.0.1");
    assert_eq!(e["Name"], format!("ws.{BAD}"));
    assert_eq!(e["QueryType"], "AAAA");
    assert_eq!(e["ResultCode"], 3);
    assert_eq!(e["IPAddresses"], "");
    assert_eq!(e["Action"], "nxdomain");
    assert_eq!(e["Indicator"], format!("ws.{BAD}"));
    assert_eq!(e["Feed"], "threatfox-maskgramstealer");
    assert_eq!(e["MalwareFamily"], "MaskGramStealer");
    assert_eq!(e["ThreatType"], "botnet_cc");
    assert_eq!(e["Confidence"], 100);
    assert!(e["FirstSeen"].as_str().unwrap().starts_with("2026-05-24"));
    assert_eq!(e["Protocol"], "udp");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_in_several_feeds_logs_every_feed() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("extra.txt");
    std::fs::write(&list, format!("# second source\n{BAD}\n")).unwrap();
    let extra = format!(
        "[[feed]]\nname = \"internal-list\"\npath = \"{}\"\nformat = \"domains\"\nmalware = \"Other\"\n",
        list.display()
    );
    let s = TestServer::start(&[up.addr], &extra).await;
    ask(s.addr, &format!("x.{BAD}."), RecordType::A, Ask::default()).await;
    let lines = s.log_lines(1).await;
    assert_eq!(lines[0]["Feed"], "threatfox-maskgramstealer,internal-list");
    assert_eq!(lines[0]["Indicator"], BAD);
    assert_eq!(lines[0]["MalwareFamily"], "MaskGramStealer");
}
