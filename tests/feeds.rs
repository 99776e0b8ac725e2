//! Feeds over the wire: every format from realistic samples, per-feed filters and actions,
//! and the same name from several feeds.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn feed(name: &str, file: &str, extra: &str) -> String {
    format!("[[feed]]\nname = \"{name}\"\npath = \"{DATA}/{file}\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_blocks_its_names_with_its_metadata() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let extra = [
        feed(
            "tf-csv",
            "threatfox-recent.csv",
            "format = \"threatfox-csv\"",
        ),
        feed("tf-json", "threatfox-api.json", ""),
        feed("tf-hosts", "threatfox-hostfile.txt", ""),
        feed("tf-rpz", "threatfox.rpz", ""),
        feed("adblock", "adblock.txt", "format = \"adblock\""),
        feed(
            "report",
            "threatfox-maskgramstealer-report.txt",
            "format = \"markdown\"",
        ),
    ]
    .concat();
    let s = TestServer::start(&[up.addr], &extra).await;
    let cases = [
        ("fernsecur.windfield.in.net", "tf-csv", Some("ClearFake")),
        ("x.cdn-update.evilcorp.test", "tf-csv", Some("Amadey")), // url IOC -> its host
        ("json-c2.evilcorp.test", "tf-json", Some("Remcos")),
        ("hostfile-c2.evilcorp.test", "tf-hosts", None),
        ("rpz-c2.evilcorp.test", "tf-rpz", None),
        ("a.rpz-wild.evilcorp.test", "tf-rpz", None),
        ("adblock-c2.evilcorp.test", "adblock", None),
    ];
    for (qname, _, _) in &cases {
        let r = rcode_of(s.addr, &format!("{qname}.")).await;
        assert_eq!(r, ResponseCode::NXDomain, "{qname}");
    }
    // The seed report dropped in as a feed blocks its IOCs too (with the CSV seed feed).
    let r = ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    let lines = s.log_lines(cases.len() + 1).await;
    for ((qname, feed, family), line) in cases.iter().zip(&lines) {
        assert_eq!(line["Name"], *qname);
        assert_eq!(line["Feed"], *feed, "{qname}");
        if let Some(f) = family {
            assert_eq!(line["MalwareFamily"], *f, "{qname}");
        }
    }
    let seed = &lines[cases.len()];
    assert_eq!(
        seed["Feed"], "threatfox-maskgramstealer,report",
        "both feeds list it"
    );
    // The RPZ wildcard covers only names below; the apex is not listed.
    assert_eq!(
        rcode_of(s.addr, "rpz-wild.evilcorp.test.").await,
        ResponseCode::NXDomain
    );
    assert!(
        ede(&ask(
            s.addr,
            "rpz-wild.evilcorp.test.",
            RecordType::A,
            Ask::default()
        )
        .await)
        .is_none(),
        "the upstream's own NXDOMAIN"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rpz_actions_nodata_and_passthru_are_honoured() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], &feed("tf-rpz", "threatfox.rpz", "")).await;
    let nodata = ask(
        s.addr,
        "rpz-nodata.evilcorp.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert!(soa_of(&nodata).is_some());
    assert_eq!(ede(&nodata).map(|e| e.0), Some(15));
    let pass = ask(
        s.addr,
        "safe.rpz-wild.evilcorp.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert!(ede(&pass).is_none(), "passthru is forwarded, not blocked");
    let lines = s.log_lines(2).await;
    assert_eq!(lines[0]["Action"], "nodata");
    assert_eq!(lines[1]["Action"], "allowed");
    assert_eq!(
        lines[1]["AllowRule"],
        "rpz-passthru safe.rpz-wild.evilcorp.test in feed tf-rpz"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn feed_filters_drop_low_confidence_old_and_other_threat_types() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let extra = feed(
        "tf-csv",
        "threatfox-recent.csv",
        "min_confidence = 50\nmax_age_days = 365\nthreat_types = [\"botnet_cc\", \"payload_delivery\"]\naction = \"sinkhole\"",
    ) + &feed(
        "c2-only",
        "threatfox-api.json",
        "threat_types = [\"payload_delivery\"]",
    );
    let s = TestServer::start(&[up.addr], &extra).await;
    // Kept: 90 confidence, recent, payload_delivery; answered with the feed's own action.
    let kept = ask(
        s.addr,
        "payload-host.evilcorp.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(
        a_records(&kept),
        vec!["0.0.0.0"],
        "sinkholed by the feed's action override"
    );
    // Dropped: confidence 25; last seen in 2025; botnet_cc filtered from the second feed.
    for name in [
        "low-confidence.evilcorp.test.",
        "stale.evilcorp.test.",
        "json-c2.evilcorp.test.",
    ] {
        let r = ask(s.addr, name, RecordType::A, Ask::default()).await;
        assert!(ede(&r).is_none(), "{name} is filtered out, so not blocked");
    }
    let status = &s.server.policy().feeds;
    assert_eq!(status[1].filtered.get("confidence below 50"), Some(&1));
    assert_eq!(
        status[1]
            .filtered
            .get("last/first seen more than 365 days ago"),
        Some(&1)
    );
    assert_eq!(status[2].filtered.values().sum::<usize>(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_lines_are_reported_with_their_line_and_never_stop_loading() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let extra = [
        feed("tf-csv", "threatfox-recent.csv", ""),
        feed("tf-json", "threatfox-api.json", ""),
        feed("tf-rpz", "threatfox.rpz", ""),
        feed("adblock", "adblock.txt", ""),
    ]
    .concat();
    let s = TestServer::start(&[up.addr], &extra).await;
    let policy = s.server.policy();
    let skips = |i: usize| {
        policy.feeds[i]
            .first_skips
            .iter()
            .map(|s| s.line)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        skips(1),
        vec![17, 18],
        "CSV: the broken row and the bad name"
    );
    assert_eq!(policy.feeds[1].ignored.get("hash IOC"), Some(&1));
    assert_eq!(
        skips(2),
        vec![24],
        "JSON: the record whose value is not a domain"
    );
    assert_eq!(skips(3), vec![11], "RPZ: the line that is not a record");
    assert_eq!(
        skips(4),
        vec![3],
        "adblock: a rule with options is not a plain block"
    );
    assert_eq!(policy.feeds[1].indicators, 5);
}
