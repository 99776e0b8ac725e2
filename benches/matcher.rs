//! Matcher lookups over 1M listed names: hits, misses, deep subdomains.
//! cargo bench --bench matcher

use criterion::{Criterion, criterion_group, criterion_main};
use iocsink::matcher::NameTable;
use std::hint::black_box;

fn table(n: u32) -> NameTable {
    let mut t = NameTable::default();
    for i in 0..n {
        t.insert(&format!("host{i}.evil{}.test", i % 1000), false, i);
    }
    t.shrink_to_fit();
    t
}

fn lookups(c: &mut Criterion) {
    let t = table(1_000_000);
    c.bench_function("matcher 1M: hit (exact)", |b| {
        b.iter(|| t.lookup(black_box("host123456.evil456.test")).is_some())
    });
    c.bench_function("matcher 1M: hit (subdomain)", |b| {
        b.iter(|| t.lookup(black_box("www.host123456.evil456.test")).is_some())
    });
    c.bench_function("matcher 1M: miss (3 labels)", |b| {
        b.iter(|| t.lookup(black_box("www.example.com")).is_none())
    });
    c.bench_function("matcher 1M: miss (8 labels)", |b| {
        b.iter(|| t.lookup(black_box("a.b.c.d.e.cdn.example.com")).is_none())
    });
}

criterion_group!(benches, lookups);
criterion_main!(benches);
