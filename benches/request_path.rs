//! The request path without sockets: packet in, answer bytes out, for a blocked name and a
//! cached answer (the two cases a sinkhole serves most).
//! cargo bench --bench request_path

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use iocsink::blocklog::BlockLog;
use iocsink::cache::Cache;
use iocsink::config::Config;
use iocsink::handler::{Handler, Outcome, Protocol};
use iocsink::policy::Policy;
use iocsink::upstream::Upstream;
use std::hint::black_box;

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

fn handler(dir: &std::path::Path) -> Handler {
    let feed = dir.join("feed.txt");
    let mut names = String::new();
    for i in 0..100_000 {
        names.push_str(&format!("host{i}.evil.test\n"));
    }
    std::fs::write(&feed, names).unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n[[feed]]\nname = \"bench\"\npath = \"{}\"\n[log]\nblocks = \"{}\"\n",
        feed.display(),
        dir.join("blocks.jsonl").display()
    );
    let config = Config::parse(&text, &dir.join("bench.toml")).unwrap();
    let policy = Arc::new(ArcSwap::from_pointee(Policy::build(&config).unwrap()));
    let upstream = Arc::new(Upstream::new(
        config.upstream.servers.clone(),
        Duration::from_secs(1),
    ));
    let log = BlockLog::start(&config.log.blocks, 1 << 20).unwrap();
    Handler::new(policy, upstream, Cache::new(&config.cache), log, 16)
}

fn request_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let handler = handler(dir.path());
    let src: SocketAddr = "127.0.0.1:5555".parse().unwrap();

    let blocked = query("www.host777.evil.test.");
    c.bench_function("request path: blocked (nxdomain + log event)", |b| {
        b.iter(
            || match handler.begin(black_box(&blocked), src, Protocol::Udp) {
                Outcome::Reply(bytes) => bytes,
                _ => panic!("blocked names are answered locally"),
            },
        )
    });

    // Prime the cache with an answer as an upstream would give it.
    let cached = query("www.example.com.");
    let mut upstream = Message::from_vec(&cached).unwrap();
    upstream.metadata.message_type = MessageType::Response;
    upstream.metadata.op_code = OpCode::Query;
    upstream.add_answer(Record::from_rdata(
        Name::from_ascii("www.example.com.").unwrap(),
        300,
        RData::A(A::new(192, 0, 2, 1)),
    ));
    handler.prime_cache(&cached, &upstream);
    c.bench_function("request path: cache hit", |b| {
        b.iter(
            || match handler.begin(black_box(&cached), src, Protocol::Udp) {
                Outcome::Reply(bytes) => bytes,
                _ => panic!("cached answers are answered locally"),
            },
        )
    });
}

criterion_group!(benches, request_path);
criterion_main!(benches);
