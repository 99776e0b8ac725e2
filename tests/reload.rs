//! Hot reload: the policy is rebuilt and swapped without dropping a query, on demand, when
//! files change, and on SIGHUP; a bad config or feed keeps the running policy.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::A;

fn zone() -> Zone {
    let mut z = Zone::standard();
    for n in [
        "always.test.",
        "never.test.",
        "flip-a.test.",
        "flip-b.test.",
    ] {
        z.add(n, 300, RData::A(A::new(192, 0, 2, 50)));
    }
    z
}

fn version(k: usize) -> String {
    let flip = if k.is_multiple_of(2) {
        "flip-a.test"
    } else {
        "flip-b.test"
    };
    format!("always.test\n{flip}\n")
}

/// One observed query: when it was sent and answered, and the answer.
struct Seen {
    name: &'static str,
    sent: Instant,
    answered: Instant,
    rcode: Option<ResponseCode>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_during_twenty_five_reloads_are_all_answered_with_the_policy_in_force() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("flip.txt");
    std::fs::write(&list, version(0)).unwrap();
    let extra = format!(
        "[[feed]]\nname = \"flip\"\npath = \"{}\"\nformat = \"domains\"\n\n[reload]\nwatch = false\n",
        list.display()
    );
    let s = Arc::new(TestServer::start(&[up.addr], &extra).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4u8 {
        let (s, stop) = (s.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let names = [
                "always.test.",
                "never.test.",
                "flip-a.test.",
                "flip-b.test.",
            ];
            let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let mut seen = Vec::new();
            let mut i = c as usize;
            while !stop.load(Ordering::SeqCst) {
                let name = names[i % names.len()];
                i += 1;
                let q = query_message(name, RecordType::A, true);
                let sent = Instant::now();
                let reply = udp_exchange(s.addr, &q.to_vec().unwrap(), from).await;
                let rcode = reply
                    .and_then(|b| Message::from_vec(&b).ok())
                    .map(|m| m.metadata.response_code);
                seen.push(Seen {
                    name,
                    sent,
                    answered: Instant::now(),
                    rcode,
                });
            }
            seen
        }));
    }
    // Reload 25 times, each to the other version; remember when each version was in force.
    let mut swaps = Vec::new(); // (version, reload started, reload finished)
    for k in 1..=25 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        std::fs::write(&list, version(k)).unwrap();
        let started = Instant::now();
        let server = s.clone();
        tokio::task::spawn_blocking(move || server.server.reload())
            .await
            .unwrap()
            .expect("reload works");
        swaps.push((k, started, Instant::now()));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert!(
        all.len() > 400,
        "a continuous stream of queries: {}",
        all.len()
    );
    let unanswered = all.iter().filter(|q| q.rcode.is_none()).count();
    assert_eq!(unanswered, 0, "every query answered");
    // Which version was surely in force for a whole exchange, if any.
    let in_force = |q: &Seen| -> Option<usize> {
        let mut current = Some(0);
        for &(k, started, finished) in &swaps {
            if q.answered < started {
                break;
            }
            current = if q.sent >= finished { Some(k) } else { None };
        }
        current
    };
    let mut checked = 0;
    for q in &all {
        let rcode = q.rcode.unwrap();
        let expect_blocked = match q.name {
            "always.test." => Some(true),
            "never.test." => Some(false),
            flip => in_force(q).map(|k| (flip == "flip-a.test.") == k.is_multiple_of(2)),
        };
        if let Some(blocked) = expect_blocked {
            let want = if blocked {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            assert_eq!(
                rcode,
                want,
                "{} answered {rcode} under version {:?}",
                q.name,
                in_force(q)
            );
            checked += 1;
        } else {
            assert!(matches!(
                rcode,
                ResponseCode::NXDomain | ResponseCode::NoError
            ));
        }
    }
    assert!(
        checked > all.len() / 2,
        "most queries fell wholly inside one version: {checked}/{}",
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_feed_file_is_picked_up_by_the_watch() {
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "always.test\n").unwrap();
    let extra = format!(
        "[[feed]]\nname = \"list\"\npath = \"{}\"\n\n[reload]\ninterval_ms = 50\n",
        list.display()
    );
    let s = TestServer::start(&[up.addr], &extra).await;
    assert_eq!(rcode_of(s.addr, "never.test.").await, ResponseCode::NoError);
    std::fs::write(&list, "always.test\nnever.test\n").unwrap();
    let blocked = eventually(Duration::from_secs(3), async || {
        rcode_of(s.addr, "never.test.").await == ResponseCode::NXDomain
    })
    .await;
    assert!(blocked, "new indicator blocked after the file changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_or_feed_on_reload_keeps_the_running_policy() {
    let up = FakeUpstream::start(zone()).await;
    let s = TestServer::start(&[up.addr], "[reload]\nwatch = false\n").await;
    let good = std::fs::read_to_string(&s.config_path).unwrap();
    std::fs::write(
        &s.config_path,
        good.replace("[upstream]", "[upstream]\nbogus = 1"),
    )
    .unwrap();
    let err = s.server.reload().unwrap_err();
    assert!(
        err.contains("unknown field `bogus`") && err.contains("iocsink.toml"),
        "{err}"
    );
    assert_eq!(
        rcode_of(s.addr, &format!("ws.{BAD}.")).await,
        ResponseCode::NXDomain,
        "still blocking"
    );

    std::fs::write(&s.config_path, &good).unwrap();
    std::fs::remove_file(s.dir.path().join("seed.csv")).unwrap();
    let err = s.server.reload().unwrap_err();
    assert!(err.contains("seed.csv"), "{err}");
    assert_eq!(
        rcode_of(s.addr, &format!("ws.{BAD}.")).await,
        ResponseCode::NXDomain,
        "still blocking"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_running_binary() {
    use std::io::BufRead;
    let up = FakeUpstream::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "always.test\n").unwrap();
    let config = dir.path().join("iocsink.toml");
    let body = base_config(
        dir.path(),
        &[up.addr],
        2000,
        &format!(
            "[[feed]]\nname = \"list\"\npath = \"{}\"\n\n[reload]\nwatch = false\n",
            list.display()
        ),
    );
    std::fs::write(dir.path().join("seed.csv"), SEED_CSV).unwrap();
    std::fs::write(&config, body).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iocsink"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("IOCSINK_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // "serving listen=[127.0.0.1:PORT]"
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server starts");
        if let Some(rest) = line.split("listen=[").nth(1) {
            break rest
                .split(']')
                .next()
                .unwrap()
                .parse::<std::net::SocketAddr>()
                .unwrap();
        }
    };
    assert_eq!(rcode_of(addr, "never.test.").await, ResponseCode::NoError);
    std::fs::write(&list, "always.test\nnever.test\n").unwrap();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let blocked = eventually(Duration::from_secs(5), async || {
        rcode_of(addr, "never.test.").await == ResponseCode::NXDomain
    })
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = child.wait().unwrap();
    assert!(blocked, "SIGHUP reloaded the feed");
    assert!(status.success(), "SIGTERM stops cleanly");
}
