//! Property tests: random and mutated packets through the request path (no sockets). It
//! must never panic, and whatever it answers must be a DNS response to that packet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use iocsink::blocklog::BlockLog;
use iocsink::cache::Cache;
use iocsink::config::Config;
use iocsink::handler::{Handler, Outcome, Protocol};
use iocsink::policy::Policy;
use iocsink::upstream::Upstream;
use proptest::prelude::*;

fn handler() -> &'static Handler {
    static HANDLER: std::sync::OnceLock<Handler> = std::sync::OnceLock::new();
    HANDLER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("iocsink-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("feed.txt"), "bad.sbs\n*.wild.test\n").unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n[[feed]]\nname = \"f\"\npath = \"{}\"\n[log]\nblocks = \"{}\"\n[limits]\nclient_qps = 0\n",
            dir.join("feed.txt").display(),
            dir.join("blocks.jsonl").display()
        );
        let config = Config::parse(&text, std::path::Path::new("props.toml")).unwrap();
        let policy = Arc::new(ArcSwap::from_pointee(Policy::build(&config).unwrap()));
        let upstream = Arc::new(Upstream::new(config.upstream.servers.clone(), Duration::from_millis(100)));
        let log = BlockLog::start(&config.log.blocks, 1024).unwrap();
        Handler::new(policy, upstream, Cache::new(&config.cache), log, 8)
    })
}

fn seed(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 77;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

fn check(packet: &[u8]) {
    let src: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    for proto in [Protocol::Udp, Protocol::Tcp] {
        if let Outcome::Reply(bytes) = handler().begin(packet, src, proto) {
            assert!(bytes.len() >= 12, "a reply has at least a header");
            assert_eq!(bytes[..2], packet[..2], "the ID is echoed");
            assert!(bytes[2] & 0x80 != 0, "QR is set");
            if proto == Protocol::Udp {
                assert!(bytes.len() <= 1232, "UDP replies fit the advertised size");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(packet in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&packet);
    }

    #[test]
    fn mutated_queries_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let seeds = [
            seed("ws.bad.sbs.", RecordType::A, true),
            seed("a.wild.test.", RecordType::AAAA, false),
            seed("www.example.com.", RecordType::TXT, true),
            seed("bad.sbs.", RecordType::MX, false),
        ];
        let mut packet = seeds[which].clone();
        for (at, byte) in flips {
            let i = at % packet.len();
            packet[i] = byte;
        }
        if let Some(c) = cut {
            packet.truncate(c % (packet.len() + 1));
        }
        check(&packet);
    }
}
