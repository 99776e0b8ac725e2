//! Remote feeds over loopback HTTP: download through the configured upstreams, conditional
//! refresh, gzip/zip bodies, the last good copy at start and after a failed refresh.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::A;

const CSV: &[u8] = include_bytes!("data/threatfox-recent.csv");
const REMOTE_NAME: &str = "fernsecur.windfield.in.net.";

/// An upstream that knows where the feed host is (127.0.0.1), so downloads must resolve
/// through it: nothing else knows `feeds.example.test`.
async fn upstream() -> FakeUpstream {
    let mut z = Zone::standard();
    z.add("feeds.example.test.", 300, RData::A(A::new(127, 0, 0, 1)));
    FakeUpstream::start(z).await
}

fn remote_feed(http: &HttpFeed, cache: &std::path::Path, refresh: &str) -> String {
    format!(
        "[[feed]]\nname = \"tf-remote\"\nurl = \"http://feeds.example.test:{}/export/csv/recent/\"\nrefresh = \"{refresh}\"\n\n[download]\ncache_dir = \"{}\"\ntimeout_ms = 2000\n",
        http.addr.port(),
        cache.display()
    )
}

async fn blocked_soon(s: &TestServer, name: &str) -> bool {
    eventually(Duration::from_secs(5), async || {
        is_blocked(s.addr, name).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_through_the_upstreams_then_refreshes_conditionally() {
    let up = upstream().await;
    let http = HttpFeed::start(CSV).await;
    let cache = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &remote_feed(&http, cache.path(), "1s")).await;
    assert!(
        blocked_soon(&s, REMOTE_NAME).await,
        "remote indicators blocked after the download"
    );
    let names: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.queries[0].name().to_ascii())
        .collect();
    assert!(
        up.was_asked("feeds.example.test."),
        "the feed host was resolved through the upstream: {names:?}"
    );
    assert!(
        cache.path().join("tf-remote.feed").exists(),
        "last good copy cached"
    );
    let got_304 = eventually(Duration::from_secs(5), async || {
        http.not_modified.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(got_304, "refresh sent If-None-Match and got 304");
    let lines = s.log_lines(0).await;
    assert!(lines.is_empty() || lines[0]["Feed"] == "tf-remote");
    let policy = s.server.policy();
    assert_eq!(policy.feeds[1].indicators, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_last_good_copy_at_start_when_the_source_is_down() {
    let up = upstream().await;
    let http = HttpFeed::start(CSV).await;
    let cache = tempfile::tempdir().unwrap();
    {
        let s = TestServer::start(&[up.addr], &remote_feed(&http, cache.path(), "1h")).await;
        assert!(blocked_soon(&s, REMOTE_NAME).await);
        s.server.shutdown().await;
    }
    http.serve(500, b"internal error", "\"v2\"");
    let s = TestServer::start(&[up.addr], &remote_feed(&http, cache.path(), "1h")).await;
    // Answered from the cached copy at once, before any download.
    assert!(is_blocked(s.addr, REMOTE_NAME).await);
    let failed = eventually(Duration::from_secs(5), async || {
        iocsink::remote::load_state(cache.path(), "tf-remote")
            .last_error
            .is_some_and(|e| e.contains("HTTP 500"))
    })
    .await;
    assert!(failed, "the failed refresh is recorded");
    assert!(is_blocked(s.addr, REMOTE_NAME).await, "still blocking");
    // What `iocsink feeds` shows for it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iocsink"))
        .args(["feeds", "--config", s.config_path.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("tf-remote"), "{out}");
    assert!(out.contains("indicators:  5"), "{out}");
    assert!(
        out.contains("last error:  GET http://feeds.example.test"),
        "{out}"
    );
    assert!(out.contains("HTTP 500"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_that_does_not_parse_keeps_the_last_good_data() {
    let up = upstream().await;
    let http = HttpFeed::start(CSV).await;
    let cache = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &remote_feed(&http, cache.path(), "1s")).await;
    assert!(blocked_soon(&s, REMOTE_NAME).await);
    http.serve(
        200,
        b"<html><body>Captive portal: please log in</body></html>\n",
        "\"portal\"",
    );
    let rejected = eventually(Duration::from_secs(5), async || {
        iocsink::remote::load_state(cache.path(), "tf-remote")
            .last_error
            .is_some_and(|e| e.contains("no usable indicator"))
    })
    .await;
    assert!(rejected, "the portal page was rejected");
    assert!(is_blocked(s.addr, REMOTE_NAME).await, "still blocking");
    let cached = std::fs::read(cache.path().join("tf-remote.feed")).unwrap();
    assert_eq!(cached, CSV, "the cached copy is the last good one");
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_zip_bodies_are_unpacked() {
    let up = upstream().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"gz-only.evilcorp.test\n").unwrap();
    let http = HttpFeed::start(&gz.finish().unwrap()).await;
    let cache = tempfile::tempdir().unwrap();
    let s = TestServer::start(&[up.addr], &remote_feed(&http, cache.path(), "1s")).await;
    assert!(
        blocked_soon(&s, "gz-only.evilcorp.test.").await,
        "gzip body"
    );

    let mut zipped = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut zipped);
    w.start_file("full.csv", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(CSV).unwrap();
    w.finish().unwrap();
    http.serve(200, &zipped.into_inner(), "\"zip\"");
    assert!(
        blocked_soon(&s, REMOTE_NAME).await,
        "zip body (ThreatFox full export)"
    );
    let r = ask(
        s.addr,
        "gz-only.evilcorp.test.",
        hickory_proto::rr::RecordType::A,
        Ask::default(),
    )
    .await;
    assert!(
        ede(&r).is_none(),
        "the replaced feed no longer lists the gzip-only name"
    );
}
