//! The operations listener: metrics, health, recent blocks, feeds and the page.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET over loopback: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_blocks_feeds_and_page() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(
        &[up.addr],
        "[http]\nlisten = \"127.0.0.1:0\"\n[reload]\nwatch = false\n",
    )
    .await;
    let http = s.server.http_addr.expect("http listener bound");

    ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
    ask(s.addr, "www.example.test.", RecordType::A, Ask::default()).await;
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
    ask(
        s.addr,
        "www.example.test.",
        RecordType::A,
        Ask {
            from: std::net::Ipv4Addr::new(127, 0, 0, 3),
            ..Ask::default()
        },
    )
    .await;
    s.server.reload().unwrap();
    s.log_lines(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (status, metrics) = get(http, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "iocsink_queries_total{result=\"blocked\",qtype=\"A\",protocol=\"udp\"} 1",
        "iocsink_queries_total{result=\"forwarded\",qtype=\"A\",protocol=\"udp\"} 1",
        "iocsink_queries_total{result=\"cached\",qtype=\"A\",protocol=\"udp\"} 1",
        "iocsink_queries_total{result=\"forwarded\",qtype=\"AAAA\",protocol=\"tcp\"} 1",
        "iocsink_queries_total{result=\"refused\",qtype=\"A\",protocol=\"udp\"} 1",
        "iocsink_blocks_total{feed=\"threatfox-maskgramstealer\",family=\"MaskGramStealer\"} 1",
        "iocsink_feed_indicators{feed=\"threatfox-maskgramstealer\"} 2",
        "iocsink_reloads_total 1",
        "iocsink_last_reload_success 1",
        "iocsink_cache_entries 2",
        "iocsink_block_log_dropped_total 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    let count = format!(
        "iocsink_upstream_duration_seconds_count{{upstream=\"{}\"}} 2",
        up.addr
    );
    assert!(metrics.contains(&count), "{count} in:\n{metrics}");

    assert_eq!(get(http, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(get(http, "/readyz").await.0, 200);

    let (status, blocks) = get(http, "/api/blocks?limit=10").await;
    assert_eq!(status, 200);
    let blocks: serde_json::Value = serde_json::from_str(&blocks).unwrap();
    assert_eq!(blocks.as_array().unwrap().len(), 1);
    assert_eq!(blocks[0]["Name"], format!("ws.{BAD}"));
    assert_eq!(blocks[0]["MalwareFamily"], "MaskGramStealer");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (_, none) = get(http, &format!("/api/blocks?since={later}")).await;
    assert_eq!(none, "[]", "nothing since now");

    let (_, feeds) = get(http, "/api/feeds").await;
    let feeds: serde_json::Value = serde_json::from_str(&feeds).unwrap();
    assert_eq!(feeds[0]["name"], "threatfox-maskgramstealer");
    assert_eq!(feeds[0]["indicators"], 2);

    let (status, page) = get(http, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Recent blocks") && page.contains("/api/blocks") && !page.contains("http://"),
        "self-contained page"
    );

    // Upstreams that stop answering make the server unready (blocks still work).
    up.faults.silent.store(true, Ordering::SeqCst);
    let s2 = TestServer::start_with(&[up.addr], "[http]\nlisten = \"127.0.0.1:0\"\n", 300).await;
    ask(
        s2.addr,
        "nothing.example.test.",
        RecordType::A,
        Ask::default(),
    )
    .await;
    assert_eq!(get(s2.server.http_addr.unwrap(), "/readyz").await.0, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_reports_whether_the_server_answers() {
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "").await;
    let bin = env!("CARGO_BIN_EXE_iocsink");
    let server = s.addr.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["probe", "--server", &server, "--name", "www.example.test"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ok.status.success());
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("answered No Error"),
        "{:?}",
        ok
    );
    let dead = std::process::Command::new(bin)
        .args(["probe", "--server", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!dead.status.success());
    assert!(String::from_utf8_lossy(&dead.stderr).contains("127.0.0.1:9"));
}

/// The analysts' page in a real headless browser: its script fetches the API and renders the
/// recent blocks. Skipped, saying so, where Chromium is not installed.
#[tokio::test(flavor = "multi_thread")]
async fn blocks_page_renders_in_headless_chromium() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!(
            "SKIPPED blocks_page_renders_in_headless_chromium: Chromium is not installed (apt-get install chromium)"
        );
        return;
    };
    let up = FakeUpstream::start(Zone::standard()).await;
    let s = TestServer::start(&[up.addr], "[http]\nlisten = \"127.0.0.1:0\"\n").await;
    ask(s.addr, &format!("ws.{BAD}."), RecordType::A, Ask::default()).await;
    s.log_lines(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("http://{}/", s.server.http_addr.unwrap());
    let profile = tempfile::tempdir().unwrap();
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("blocks-page.png");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ];
    let profile_dir = profile.path().to_path_buf();
    let run = move |extra: Vec<String>| {
        let mut cmd = std::process::Command::new(chromium);
        cmd.args(common)
            .arg(format!("--user-data-dir={}", profile_dir.display()))
            .args(extra)
            .arg(&url);
        cmd.output().unwrap()
    };
    let (dom, shot_run) = tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || {
            (
                run(vec!["--dump-dom".into()]),
                run(vec![
                    format!("--screenshot={}", shot.display()),
                    "--window-size=1200,700".into(),
                ]),
            )
        }
    })
    .await
    .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains(&format!("<td>ws.{BAD}</td>")),
        "the script rendered the block:\n{html}"
    );
    assert!(
        html.contains("<td>MaskGramStealer</td>")
            && html.contains("<td>threatfox-maskgramstealer</td>"),
        "{html}"
    );
    assert!(
        shot_run.status.success(),
        "{}",
        String::from_utf8_lossy(&shot_run.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot of the blocks page: {}", shot.display());
}
