//! Counters for `/metrics` (Prometheus text format), kept as plain atomics so the hot path
//! pays one relaxed increment per query. Per-feed and per-family block counts and the ring
//! of recent blocks are fed by the block-log writer, off the hot path.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How a query ended, for `iocsink_queries_total{result=...}`.
#[derive(Debug, Clone, Copy)]
pub enum Result {
    Blocked = 0,
    Cached,
    Forwarded,
    Refused,
    Error,
    Dropped,
    ServFail,
}

const RESULTS: [&str; 7] = [
    "blocked",
    "cached",
    "forwarded",
    "refused",
    "error",
    "dropped",
    "servfail",
];
const QTYPES: [(u16, &str); 10] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (16, "TXT"),
    (12, "PTR"),
    (33, "SRV"),
    (65, "HTTPS"),
    (255, "ANY"),
    (0, "other"),
];
/// Upper bounds of the upstream latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Recent block events kept for `/api/blocks`.
const RECENT: usize = 1000;

#[derive(Default)]
struct UpstreamStats {
    answers: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
}

pub struct Metrics {
    queries: [[[AtomicU64; 2]; QTYPES.len()]; RESULTS.len()],
    upstream_addrs: Vec<SocketAddr>,
    upstream: Vec<UpstreamStats>,
    /// Unix seconds of the last upstream answer and failure.
    last_upstream_ok: AtomicU64,
    last_upstream_fail: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix seconds of the last reload attempt, and whether it worked (1) or not (0).
    pub last_reload: AtomicU64,
    pub last_reload_ok: AtomicU64,
    blocks: Mutex<BTreeMap<(String, String), u64>>,
    recent: Mutex<VecDeque<(u64, String)>>,
    started: Instant,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Metrics {
    pub fn new(upstreams: &[SocketAddr]) -> Metrics {
        Metrics {
            queries: Default::default(),
            upstream_addrs: upstreams.to_vec(),
            upstream: upstreams.iter().map(|_| UpstreamStats::default()).collect(),
            last_upstream_ok: AtomicU64::new(0),
            last_upstream_fail: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_reload: AtomicU64::new(unix_now()),
            last_reload_ok: AtomicU64::new(1),
            blocks: Mutex::default(),
            recent: Mutex::default(),
            started: Instant::now(),
        }
    }

    pub fn query(&self, result: Result, qtype: u16, tcp: bool) {
        let t = QTYPES
            .iter()
            .position(|(code, _)| *code == qtype)
            .unwrap_or(QTYPES.len() - 1);
        self.queries[result as usize][t][usize::from(tcp)].fetch_add(1, Ordering::Relaxed);
    }

    /// One exchange with upstream `index`: its latency, or how it failed.
    pub fn upstream_answer(&self, index: usize, took: Duration) {
        let Some(s) = self.upstream.get(index) else {
            return;
        };
        s.answers.fetch_add(1, Ordering::Relaxed);
        s.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.last_upstream_ok.store(unix_now(), Ordering::Relaxed);
    }

    pub fn upstream_failure(&self, index: usize, timed_out: bool) {
        let Some(s) = self.upstream.get(index) else {
            return;
        };
        if timed_out { &s.timeouts } else { &s.errors }.fetch_add(1, Ordering::Relaxed);
        self.last_upstream_fail.store(unix_now(), Ordering::Relaxed);
    }

    /// Ready unless upstreams have failed in the last minute and none has answered since.
    pub fn upstream_ready(&self) -> bool {
        let (ok, fail) = (
            self.last_upstream_ok.load(Ordering::Relaxed),
            self.last_upstream_fail.load(Ordering::Relaxed),
        );
        fail == 0 || ok >= fail || unix_now().saturating_sub(fail) > 60
    }

    pub fn reloaded(&self, ok: bool) {
        if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        }
        .fetch_add(1, Ordering::Relaxed);
        self.last_reload.store(unix_now(), Ordering::Relaxed);
        self.last_reload_ok.store(u64::from(ok), Ordering::Relaxed);
    }

    /// A block-log line written: counted by feed and family, kept for `/api/blocks`.
    pub fn block_logged(&self, feeds: &str, family: &str, unix_nanos: u64, line: &str) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for feed in feeds.split(',') {
            *blocks
                .entry((feed.to_string(), family.to_string()))
                .or_default() += 1;
        }
        drop(blocks);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((unix_nanos, line.trim_end().to_string()));
    }

    /// Recent block events (JSON objects, oldest first) after `since` (unix seconds), at most `limit`.
    pub fn recent_blocks(&self, since: Option<f64>, limit: usize) -> Vec<String> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let since = since.map_or(0, |s| (s.max(0.0) * 1e9) as u64);
        let matching: Vec<&(u64, String)> = recent.iter().filter(|(t, _)| *t > since).collect();
        let skip = matching.len().saturating_sub(limit);
        matching
            .into_iter()
            .skip(skip)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Everything in Prometheus text format; `extra` adds gauges known elsewhere.
    pub fn render(&self, extra: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP iocsink_queries_total Queries answered, by result, query type and protocol.\n# TYPE iocsink_queries_total counter\n");
        for (r, result) in RESULTS.iter().enumerate() {
            for (t, (_, qtype)) in QTYPES.iter().enumerate() {
                for (p, proto) in ["udp", "tcp"].iter().enumerate() {
                    let n = self.queries[r][t][p].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "iocsink_queries_total{{result=\"{result}\",qtype=\"{qtype}\",protocol=\"{proto}\"}} {n}"
                        );
                    }
                }
            }
        }
        out.push_str("# HELP iocsink_blocks_total Block-log events, by feed and malware family.\n# TYPE iocsink_blocks_total counter\n");
        for ((feed, family), n) in self.blocks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "iocsink_blocks_total{{feed=\"{}\",family=\"{}\"}} {n}",
                label(feed),
                label(family)
            );
        }
        out.push_str("# HELP iocsink_upstream_duration_seconds Upstream answer latency.\n# TYPE iocsink_upstream_duration_seconds histogram\n");
        for (addr, s) in self.upstream_addrs.iter().zip(&self.upstream) {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "iocsink_upstream_duration_seconds_bucket{{upstream=\"{addr}\",le=\"{bound}\"}} {}",
                    s.buckets[i].load(Ordering::Relaxed)
                );
            }
            let answers = s.answers.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "iocsink_upstream_duration_seconds_bucket{{upstream=\"{addr}\",le=\"+Inf\"}} {answers}"
            );
            let _ = writeln!(
                out,
                "iocsink_upstream_duration_seconds_sum{{upstream=\"{addr}\"}} {}",
                s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "iocsink_upstream_duration_seconds_count{{upstream=\"{addr}\"}} {answers}"
            );
        }
        out.push_str("# HELP iocsink_upstream_errors_total Upstream exchanges that failed, by kind.\n# TYPE iocsink_upstream_errors_total counter\n");
        for (addr, s) in self.upstream_addrs.iter().zip(&self.upstream) {
            let _ = writeln!(
                out,
                "iocsink_upstream_errors_total{{upstream=\"{addr}\",kind=\"error\"}} {}",
                s.errors.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "iocsink_upstream_errors_total{{upstream=\"{addr}\",kind=\"timeout\"}} {}",
                s.timeouts.load(Ordering::Relaxed)
            );
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "iocsink_cache_entries",
            "Answers in the cache.",
            "gauge",
            extra.cache_entries as f64,
        );
        gauge(
            &mut out,
            "iocsink_block_log_dropped_total",
            "Block-log events dropped because the queue was full.",
            "counter",
            extra.log_dropped as f64,
        );
        gauge(
            &mut out,
            "iocsink_reloads_total",
            "Policy reloads that worked.",
            "counter",
            self.reloads_ok.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "iocsink_reload_failures_total",
            "Policy reloads that failed (the running policy stayed).",
            "counter",
            self.reloads_failed.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "iocsink_last_reload_timestamp_seconds",
            "When the policy was last (re)built or a rebuild failed.",
            "gauge",
            self.last_reload.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "iocsink_last_reload_success",
            "1 if the last reload worked.",
            "gauge",
            self.last_reload_ok.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut out,
            "iocsink_uptime_seconds",
            "Seconds since start.",
            "gauge",
            self.started.elapsed().as_secs_f64(),
        );
        out.push_str("# HELP iocsink_feed_indicators Indicators loaded, per feed.\n# TYPE iocsink_feed_indicators gauge\n");
        for (feed, n) in &extra.feeds {
            let _ = writeln!(
                out,
                "iocsink_feed_indicators{{feed=\"{}\"}} {n}",
                label(feed)
            );
        }
        out
    }
}

/// Values owned by other parts, read when `/metrics` is served.
pub struct Gauges {
    pub cache_entries: usize,
    pub log_dropped: u64,
    pub feeds: Vec<(String, usize)>,
}

/// A Prometheus label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
