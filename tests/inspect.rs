//! Seeing through CNAME cloaking and IP indicators in forwarded answers.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, NULL};
use hickory_proto::rr::{RData, RecordType};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Chains of 1..8 CNAMEs ending at a listed C2, a DNAME, mixed answers, and an address
/// listed by an ip:port IOC (203.0.113.77, from the ThreatFox CSV sample).
fn zone() -> Zone {
    let mut z = Zone::standard();
    for depth in 1..=8 {
        for hop in 0..depth {
            let next = if hop + 1 == depth {
                format!("d{depth}.beacon.c2-cloaked.sbs.")
            } else {
                format!("c{depth}-{}.cdn.example.test.", hop + 1)
            };
            z.add(
                &format!("c{depth}-{hop}.cdn.example.test."),
                300,
                RData::CNAME(CNAME(name(&next))),
            );
        }
        z.add(
            &format!("d{depth}.beacon.c2-cloaked.sbs."),
            300,
            RData::A(A::new(198, 51, 100, depth)),
        );
    }
    // A DNAME alone (no synthesized CNAME), to exercise DNAME targets.
    let mut target = Vec::new();
    for label in ["c2-cloaked", "sbs"] {
        target.push(label.len() as u8);
        target.extend(label.as_bytes());
    }
    target.push(0);
    z.add(
        "dname.example.test.",
        300,
        RData::Unknown {
            code: RecordType::Unknown(39),
            rdata: NULL::with(target),
        },
    );
    z.add(
        "dname.example.test.",
        300,
        RData::A(A::new(198, 51, 100, 50)),
    );
    z.add(
        "clean.cdn.example.test.",
        300,
        RData::CNAME(CNAME(name("www.example.test."))),
    );
    z.add("ipc2.example.test.", 300, RData::A(A::new(203, 0, 113, 77)));
    z.add("ipc2.example.test.", 300, RData::A(A::new(192, 0, 2, 5)));
    z.add(
        "late.cdn.example.test.",
        300,
        RData::CNAME(CNAME(name("late-target.example.test."))),
    );
    z.add(
        "late-target.example.test.",
        300,
        RData::A(A::new(192, 0, 2, 77)),
    );
    z
}

fn feeds(dir: &std::path::Path, extra: &str) -> String {
    std::fs::write(dir.join("c2.txt"), "c2-cloaked.sbs\n").unwrap();
    format!(
        "[[feed]]\nname = \"c2\"\npath = \"{}/c2.txt\"\nformat = \"domains\"\nmalware = \"Cloaked\"\n\n[[feed]]\nname = \"tf-csv\"\npath = \"{DATA}/threatfox-recent.csv\"\n\n{extra}",
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cname_chains_of_any_depth_to_a_listed_name_are_blocked() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &feeds(dir.path(), "")).await;
    for depth in 1..=8 {
        let qname = format!("c{depth}-0.cdn.example.test.");
        let r = ask(s.addr, &qname, RecordType::A, Ask::default()).await;
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NXDomain,
            "depth {depth}"
        );
        assert!(
            r.answers.is_empty(),
            "no part of the cloaked chain is relayed"
        );
        assert_eq!(soa_of(&r).unwrap().0.name.to_ascii(), qname);
        assert_eq!(ede(&r).map(|e| e.0), Some(15));
    }
    let clean = ask(
        s.addr,
        "clean.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(
        a_records(&clean),
        vec!["192.0.2.10"],
        "a clean chain is relayed"
    );
    let lines = s.log_lines(8).await;
    assert_eq!(lines.len(), 8);
    let deep = &lines[7];
    assert_eq!(deep["Name"], "c8-0.cdn.example.test");
    assert_eq!(deep["Indicator"], "c2-cloaked.sbs");
    assert_eq!(deep["Feed"], "c2");
    assert_eq!(deep["MalwareFamily"], "Cloaked");
    assert_eq!(deep["Action"], "nxdomain");
    let via = deep["Via"].as_str().unwrap();
    assert!(
        via.starts_with("c8-0.cdn.example.test > c8-1.cdn.example.test"),
        "{via}"
    );
    assert!(via.ends_with("> d8.beacon.c2-cloaked.sbs"), "{via}");
    assert_eq!(via.matches(" > ").count(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn dname_targets_are_inspected_too() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &feeds(dir.path(), "")).await;
    let r = ask(s.addr, "dname.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    let lines = s.log_lines(1).await;
    assert_eq!(lines[0]["Via"], "dname.example.test > c2-cloaked.sbs");
}

#[tokio::test(flavor = "multi_thread")]
async fn addresses_of_ip_indicators_block_or_are_stripped() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &feeds(dir.path(), "")).await;
    let r = ask(s.addr, "ipc2.example.test.", RecordType::A, Ask::default()).await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "the whole answer is blocked"
    );
    let lines = s.log_lines(1).await;
    assert_eq!(lines[0]["Indicator"], "203.0.113.77:8443");
    assert_eq!(lines[0]["Feed"], "tf-csv");
    assert_eq!(lines[0]["MalwareFamily"], "Cobalt Strike");
    assert_eq!(lines[0]["ThreatType"], "botnet_cc");
    assert_eq!(lines[0]["Via"], "ipc2.example.test > 203.0.113.77");

    let dir2 = tempfile::tempdir().unwrap();
    let strip = TestServer::start(
        &[up.addr],
        &feeds(dir2.path(), "[inspect]\nip_action = \"strip\"\n"),
    )
    .await;
    let r = ask(
        strip.addr,
        "ipc2.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&r),
        vec!["192.0.2.5"],
        "only the listed address is removed"
    );
    assert_eq!(strip.log_lines(1).await[0]["Action"], "stripped");

    let dir3 = tempfile::tempdir().unwrap();
    let off = TestServer::start(
        &[up.addr],
        &feeds(dir3.path(), "[inspect]\nip = false\ncname = false\n"),
    )
    .await;
    let r = ask(
        off.addr,
        "ipc2.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(a_records(&r).len(), 2, "inspection can be turned off");
    let r = ask(
        off.addr,
        "c1-0.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlisted_names_and_clients_are_not_inspected() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "[allow]\ndomains = [\"c1-0.cdn.example.test\"]\nclients = [\"127.0.0.2/32\"]\n";
    let s = TestServer::start(&[up.addr], &feeds(dir.path(), extra)).await;
    let r = ask(
        s.addr,
        "c1-0.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(
        a_records(&r),
        vec!["198.51.100.1"],
        "the allowlisted query name is trusted"
    );
    let ti = Ask {
        from: std::net::Ipv4Addr::new(127, 0, 0, 2),
        ..Ask::default()
    };
    let r = ask(s.addr, "c2-0.cdn.example.test.", RecordType::A, ti).await;
    assert_eq!(
        a_records(&r),
        vec!["198.51.100.2"],
        "allowlisted clients are never blocked"
    );
    let r = ask(
        s.addr,
        "c2-0.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "others are"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_answer_is_not_served_once_its_target_is_listed() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(
        &[up.addr],
        &(feeds(dir.path(), "[reload]\nwatch = false\n")),
    )
    .await;
    let r = ask(
        s.addr,
        "late.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(a_records(&r), vec!["192.0.2.77"]);
    let asked = up.queries();
    let r = ask(
        s.addr,
        "late.cdn.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(a_records(&r), vec!["192.0.2.77"]);
    assert_eq!(up.queries(), asked, "served from the cache");
    std::fs::write(
        dir.path().join("c2.txt"),
        "c2-cloaked.sbs\nlate-target.example.test\n",
    )
    .unwrap();
    s.server.reload().unwrap();
    for tcp in [false, true] {
        let r = ask(
            s.addr,
            "late.cdn.example.test.",
            RecordType::A,
            Ask {
                tcp,
                ..Ask::default()
            },
        )
        .await;
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NXDomain,
            "tcp: {tcp}"
        );
    }
    assert_eq!(
        up.queries(),
        asked,
        "the cached answer was re-inspected, not refetched"
    );
}
