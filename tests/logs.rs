//! The block log as a contract: lines match the JSON Schemas in docs/, in both field-name
//! styles; rotation and reopen; and the `log summary` / `log tail` commands.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::rr::RData;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::{A, CNAME};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn schema(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(format!("{ROOT}/docs/{file}")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("a valid JSON Schema")
}

fn zone() -> Zone {
    let mut z = Zone::standard();
    z.add(
        "cdn.example.test.",
        300,
        RData::CNAME(CNAME(name(&format!("x.{BAD}.")))),
    );
    z.add(&format!("x.{BAD}."), 300, RData::A(A::new(198, 51, 100, 1)));
    z
}

/// Queries that produce every kind of line: blocked, allowed, cloaked, over UDP and TCP.
async fn produce_lines(s: &TestServer) {
    ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    ask(
        s.addr,
        &format!("{BAD}."),
        RecordType::AAAA,
        Ask {
            tcp: true,
            ..Ask::default()
        },
    )
    .await;
    ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::A,
        Ask {
            from: std::net::Ipv4Addr::new(127, 0, 0, 2),
            ..Ask::default()
        },
    )
    .await;
    ask(s.addr, "cdn.example.test.", RecordType::A, Ask::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_match_the_shipped_schemas_in_both_formats() {
    let up = FakeUpstream::start(zone()).await;
    for (format, file) in [
        ("dnsevents", "blocklog.schema.json"),
        ("asim", "asim.schema.json"),
    ] {
        let extra = format!(
            "[allow]\nclients = [\"127.0.0.2/32\"]\n[log]\nblocks = \"{{dir}}/blocks.jsonl\"\nformat = \"{format}\"\n"
        );
        let s = TestServer::start(&[up.addr], &extra).await;
        produce_lines(&s).await;
        let lines = s.log_lines(4).await;
        assert_eq!(lines.len(), 4, "{format}: {lines:?}");
        let validator = schema(file);
        for line in &lines {
            let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{format} line {line} breaks {file}: {errors:?}"
            );
        }
        if format == "asim" {
            assert_eq!(lines[0]["DvcAction"], "Block");
            assert_eq!(lines[0]["ThreatName"], "MaskGramStealer");
            assert_eq!(lines[0]["DnsResponseCodeName"], "NXDOMAIN");
            assert_eq!(lines[2]["DvcAction"], "Allow");
            assert_eq!(
                lines[3]["AdditionalFields"]["Via"],
                format!("cdn.example.test > x.{BAD}")
            );
        } else {
            assert_eq!(lines[1]["Protocol"], "tcp");
            assert_eq!(lines[2]["Action"], "allowed");
            assert_eq!(lines[3]["Via"], format!("cdn.example.test > x.{BAD}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_rotates_by_size_and_reopens_on_request() {
    let up = FakeUpstream::start(zone()).await;
    let s = TestServer::start(
        &[up.addr],
        "[log]\nblocks = \"{dir}/blocks.jsonl\"\nmax_bytes = 1500\nkeep = 2\n",
    )
    .await;
    let (server, dir_path) = (&s.server, s.dir.path().to_path_buf());
    let addr = server.addrs[0];
    for i in 0..12 {
        ask(addr, &format!("n{i}.{BAD}."), RecordType::A, Ask::default()).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = dir_path.join("blocks.jsonl");
    assert!(
        dir_path.join("blocks.jsonl.1").exists() && dir_path.join("blocks.jsonl.2").exists(),
        "rotated"
    );
    assert!(!dir_path.join("blocks.jsonl.3").exists(), "keep = 2");
    assert!(std::fs::metadata(&log).unwrap().len() <= 1500);
    // An external logrotate moves the file; SIGUSR1 (here: the same call) reopens the path.
    std::fs::rename(&log, dir_path.join("moved.jsonl")).unwrap();
    server.handler().log().reopen();
    tokio::time::sleep(Duration::from_millis(100)).await;
    ask(
        addr,
        &format!("after.{BAD}."),
        RecordType::A,
        Ask::default(),
    )
    .await;
    let reopened = eventually(Duration::from_secs(2), async || {
        read_log(&log)
            .iter()
            .any(|l| l["Name"] == format!("after.{BAD}"))
    })
    .await;
    assert!(reopened, "lines go to the reopened file");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_summary_and_tail_read_the_log_for_people() {
    let up = FakeUpstream::start(zone()).await;
    let s = TestServer::start(&[up.addr], "[allow]\nclients = [\"127.0.0.2/32\"]\n").await;
    produce_lines(&s).await;
    ask(
        s.addr,
        &format!("ws.{BAD}."),
        RecordType::A,
        Ask {
            from: std::net::Ipv4Addr::new(127, 0, 0, 2),
            ..Ask::default()
        },
    )
    .await;
    s.log_lines(5).await;
    let bin = env!("CARGO_BIN_EXE_iocsink");
    let log = s.log_path();
    let out = std::process::Command::new(bin)
        .args(["log", "summary", "--since", "1h", log.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("5 events in"), "{text}");
    assert!(
        text.contains("Top clients:\n         3  127.0.0.1\n         2  127.0.0.2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Top indicators:\n         3  ws.{BAD}\n         2  {BAD}"
        )),
        "{text}"
    );
    assert!(
        text.contains("Malware families:\n         5  MaskGramStealer"),
        "{text}"
    );
    assert!(
        text.contains("Actions:\n         3  nxdomain\n         2  allowed"),
        "{text}"
    );

    let out = std::process::Command::new(bin)
        .args(["log", "tail", "-n", "2", log.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].contains("127.0.0.2       ws."), "{text}");
    assert!(lines[0].contains(&format!("127.0.0.1       cdn.example.test A -> nxdomain ({BAD}, MaskGramStealer, threatfox-maskgramstealer)")), "{text}");
    assert!(
        lines[0].ends_with(&format!("via cdn.example.test > x.{BAD}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_optional_query_log_has_every_answer() {
    let up = FakeUpstream::start(zone()).await;
    let s = TestServer::start(
        &[up.addr],
        "[log]\nblocks = \"{dir}/blocks.jsonl\"\nqueries = \"{dir}/queries.jsonl\"\n",
    )
    .await;
    ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    ask(
        s.addr,
        "www.example.test.",
        RecordType::AAAA,
        Ask::default(),
    )
    .await;
    ask(
        s.addr,
        "www.example.test.",
        RecordType::AAAA,
        Ask {
            tcp: true,
            ..Ask::default()
        },
    )
    .await;
    let path = s.dir.path().join("queries.jsonl");
    let all = eventually(Duration::from_secs(2), async || read_log(&path).len() == 3).await;
    assert!(all, "{:?}", read_log(&path));
    let lines = read_log(&path);
    assert_eq!(lines[0]["Name"], format!("ws.{BAD}"));
    assert_eq!(lines[0]["ResultCode"], 3);
    assert_eq!(lines[1]["Name"], "www.example.test");
    assert_eq!(lines[1]["QueryType"], "AAAA");
    assert_eq!(lines[1]["ResultCode"], 0);
    assert_eq!(lines[2]["Protocol"], "tcp");
    assert_eq!(lines[2]["ClientIP"], "127.0.0.1");
    // Without the setting there is no query log.
    let plain = TestServer::start(&[up.addr], "").await;
    ask(
        plain.addr,
        "www.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert!(!plain.dir.path().join("queries.jsonl").exists());
}
