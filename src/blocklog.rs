//! The block log: one JSON object per line, field names from Sentinel's `DnsEvents` plus IOC
//! metadata. Queries hand events to a bounded channel; one writer thread owns the file and
//! writes every 20 ms, so a slow disk delays log lines, never answers. When the queue is full, events are dropped and
//! counted rather than blocking a query.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hickory_proto::rr::RecordType;
use serde::Serialize;
use std::sync::mpsc;

use crate::feed::LineMeta;
use crate::logfile::LogFile;
use crate::metrics::Metrics;
use crate::policy::{Policy, Recs};
use arrayvec::ArrayString;

/// One block-log line. This is a public contract: see the README's "Block log" section.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// RFC 3339 UTC.
    pub time_generated: String,
    #[serde(rename = "ClientIP")]
    pub client_ip: String,
    pub computer: String,
    pub name: String,
    pub query_type: String,
    pub result_code: u16,
    #[serde(rename = "IPAddresses")]
    pub ip_addresses: String,
    /// nxdomain | sinkhole | logged | allowed
    pub action: String,
    pub indicator: String,
    pub feed: String,
    pub malware_family: Option<String>,
    pub threat_type: Option<String>,
    pub confidence: Option<u8>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub reference: Option<String>,
    pub tags: Option<String>,
    pub ioc_id: Option<String>,
    /// The rule that let an indicator hit through (only for Action "allowed").
    pub allow_rule: Option<String>,
    /// udp | tcp
    pub protocol: String,
    /// For hits found in a forwarded answer: the chain that led there, e.g.
    /// `cdn.example.com > c2.bad.sbs` (CNAME cloaking) or `www.example.com > 203.0.113.7`.
    pub via: Option<String>,
}

/// An event as the request path hands it over: what was asked and answered, and the
/// indicator records. Turning records into readable fields and JSON is the writer's work,
/// so a blocked query pays for a few copies, not for formatting.
pub struct Pending {
    pub time: SystemTime,
    pub client: IpAddr,
    /// The query name, normalized (inline: no allocation per event).
    pub name: ArrayString<256>,
    pub qtype: RecordType,
    pub rcode: u16,
    pub ip_addresses: String,
    pub action: &'static str,
    /// The listed name: a suffix of `name` starting here.
    pub indicator_at: usize,
    pub wildcard: bool,
    pub recs: Recs,
    /// The policy the records belong to (a reload may have replaced it since).
    pub policy: Arc<Policy>,
    pub allow_rule: Option<String>,
    pub protocol: &'static str,
    /// The listed name when it is not a suffix of `name` (a hit in a CNAME chain).
    pub indicator: Option<Box<str>>,
    pub via: Option<String>,
}

impl Event {
    /// The readable event for a pending one.
    pub fn from_pending(p: &Pending) -> Event {
        let indicator = match &p.indicator {
            Some(listed) => listed,
            None => p.name.get(p.indicator_at..).unwrap_or_default(),
        };
        let hit = p.policy.match_of(indicator, p.wildcard, p.recs.clone());
        let sources = hit.sources();
        let first = |f: fn(&LineMeta) -> Option<&Arc<str>>| {
            sources
                .iter()
                .find_map(|s| f(&s.meta))
                .map(|v| v.to_string())
        };
        let client = p.client.to_canonical().to_string();
        Event {
            time_generated: rfc3339(p.time),
            computer: client.clone(),
            client_ip: client,
            name: p.name.to_string(),
            query_type: crate::answer::type_name(p.qtype),
            result_code: p.rcode,
            ip_addresses: p.ip_addresses.clone(),
            action: p.action.to_string(),
            indicator: if p.wildcard {
                format!("*.{indicator}")
            } else {
                indicator.to_string()
            },
            feed: hit.feeds(),
            malware_family: first(|m| m.malware.as_ref()),
            threat_type: first(|m| m.threat_type.as_ref()),
            confidence: sources.iter().find_map(|s| s.meta.confidence),
            first_seen: first(|m| m.first_seen.as_ref()),
            last_seen: first(|m| m.last_seen.as_ref()),
            reference: first(|m| m.reference.as_ref()),
            tags: first(|m| m.tags.as_ref()),
            ioc_id: first(|m| m.ioc_id.as_ref()),
            allow_rule: p.allow_rule.clone(),
            protocol: p.protocol.to_string(),
            via: p.via.clone(),
        }
    }
}

/// What goes through the queue: a hit to format, or an event already formed (IP hits).
/// The hit stays inline on purpose: boxing it would cost an allocation per blocked query.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Pending(Pending),
    Ready(Box<Event>),
}

/// How often the writer wakes to write what queued up. Queries never wake it: a wake-up
/// per event would cost the hot path a syscall and a context switch.
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// The sending side, cheap to clone into every request.
#[derive(Clone)]
pub struct BlockLog {
    tx: mpsc::SyncSender<Record>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

impl BlockLog {
    /// Opens the log (creating its directory) and starts the writer task. `"-"` is stdout.
    pub fn start(path: &str, queue: usize) -> std::io::Result<BlockLog> {
        let config = crate::config::LogConfig {
            blocks: path.into(),
            queue,
            ..Default::default()
        };
        BlockLog::open(&config, None)
    }

    /// Opens the log as configured (rotation, format) and starts the writer.
    pub fn open(
        config: &crate::config::LogConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> std::io::Result<BlockLog> {
        let out = LogFile::open(&config.blocks, config.max_bytes, config.keep)?;
        let queue = config.queue;
        let asim = config.format == crate::config::LogFormat::Asim;
        let reopen = Arc::new(AtomicBool::new(false));
        let reopen_flag = reopen.clone();
        let (tx, rx) = mpsc::sync_channel(queue);
        // The writer does blocking file I/O, so it gets a thread of its own, off the runtime.
        std::thread::Builder::new()
            .name("blocklog".into())
            .spawn(move || {
                lower_priority();
                write_loop(rx, out, metrics, reopen_flag, asim)
            })?;
        Ok(BlockLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            reopen,
        })
    }

    /// Queues an event; never waits.
    pub fn record(&self, event: Pending) {
        self.send(Record::Pending(event));
    }

    /// Queues an event already formed; never waits.
    pub fn record_event(&self, event: Event) {
        self.send(Record::Ready(Box::new(event)));
    }

    fn send(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the writer to reopen the file (after an external logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(
    rx: mpsc::Receiver<Record>,
    mut out: LogFile,
    metrics: Option<Arc<Metrics>>,
    reopen: Arc<AtomicBool>,
    asim: bool,
) {
    let mut lines = LineWriter {
        asim,
        ..LineWriter::default()
    };
    loop {
        std::thread::sleep(WRITE_EVERY);
        if reopen.swap(false, Ordering::Relaxed)
            && let Err(e) = out.reopen()
        {
            tracing::error!(error = %e, "block log reopen failed");
        }
        let mut wrote = 0usize;
        loop {
            match rx.try_recv() {
                Ok(record) => {
                    let (line, feed, family) = match &record {
                        Record::Pending(pending) => lines.line(pending),
                        Record::Ready(event) => lines.event(event),
                    };
                    if let Some(m) = &metrics {
                        let nanos = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_nanos() as u64;
                        m.block_logged(feed, family, nanos, line);
                    }
                    if let Err(e) = out.write_line(line) {
                        tracing::error!(error = %e, "block log write failed");
                    }
                    wrote += 1;
                    // Short bursts: on a shared core, answers wait at most one burst.
                    if wrote.is_multiple_of(BURST) {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote > 0
            && let Err(e) = out.flush()
        {
            tracing::error!(error = %e, "block log flush failed");
        }
    }
}

/// Events written between pauses.
const BURST: usize = 64;

/// The writer yields to the serving threads: on a busy core its batches must not delay
/// answers (nice 10 for this thread only).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// The indicator part of an event: the same for every hit on the same records.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IndicatorFields<'a> {
    indicator: &'a str,
    feed: &'a str,
    malware_family: &'a Option<String>,
    threat_type: &'a Option<String>,
    confidence: Option<u8>,
    first_seen: &'a Option<String>,
    last_seen: &'a Option<String>,
    reference: &'a Option<String>,
    tags: &'a Option<String>,
    ioc_id: &'a Option<String>,
}

/// Writes event lines. What repeats is made once: the indicator fields per set of records
/// (a blocked C2 is usually asked again and again) and the date and time per second.
#[derive(Default)]
struct LineWriter {
    policy: usize,
    /// Per set of records: the JSON fragment, and the feeds and family (for metrics).
    fragments: rustc_hash::FxHashMap<(bool, Recs), (String, String, String)>,
    client: Option<(IpAddr, String)>,
    /// Write ASIM DNS field names instead of DnsEvents ones.
    asim: bool,
    second: u64,
    second_text: String,
    line: String,
    feed_family: (String, String),
}

/// Indicator fragments kept per policy before starting over.
const MAX_FRAGMENTS: usize = 1000;

impl LineWriter {
    fn event<'a>(&'a mut self, event: &'a Event) -> (&'a str, &'a str, &'a str) {
        self.line.clear();
        let json = if self.asim {
            serde_json::to_string(&crate::asim::AsimEvent::from(event))
        } else {
            serde_json::to_string(event)
        };
        self.line.push_str(&json.unwrap_or_default());
        self.line.push('\n');
        (
            &self.line,
            &event.feed,
            event.malware_family.as_deref().unwrap_or(""),
        )
    }

    fn line(&mut self, p: &Pending) -> (&str, &str, &str) {
        if self.asim {
            let event = Event::from_pending(p);
            self.line.clear();
            self.line.push_str(
                &serde_json::to_string(&crate::asim::AsimEvent::from(&event)).unwrap_or_default(),
            );
            self.line.push('\n');
            self.feed_family = (
                event.feed.clone(),
                event.malware_family.clone().unwrap_or_default(),
            );
            return (&self.line, &self.feed_family.0, &self.feed_family.1);
        }
        let policy = Arc::as_ptr(&p.policy) as usize;
        if policy != self.policy || self.fragments.len() >= MAX_FRAGMENTS {
            self.fragments.clear();
            self.policy = policy;
        }
        let key = (p.wildcard, p.recs.clone());
        let fragment = self.fragments.entry(key).or_insert_with(|| {
            let e = Event::from_pending(p);
            let fields = IndicatorFields {
                indicator: &e.indicator,
                feed: &e.feed,
                malware_family: &e.malware_family,
                threat_type: &e.threat_type,
                confidence: e.confidence,
                first_seen: &e.first_seen,
                last_seen: &e.last_seen,
                reference: &e.reference,
                tags: &e.tags,
                ioc_id: &e.ioc_id,
            };
            let json = serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into());
            let family = e.malware_family.clone().unwrap_or_default();
            (json[1..json.len() - 1].to_string(), e.feed.clone(), family)
        });
        let (fragment, feed, family) = (&fragment.0, &fragment.1, &fragment.2);
        let since = p
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if since.as_secs() != self.second || self.second_text.is_empty() {
            self.second = since.as_secs();
            let t = time::OffsetDateTime::from(
                SystemTime::UNIX_EPOCH + Duration::from_secs(self.second),
            );
            self.second_text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        let client_ip = p.client.to_canonical();
        if self.client.as_ref().is_none_or(|(ip, _)| *ip != client_ip) {
            self.client = Some((client_ip, client_ip.to_string()));
        }
        let client = self.client.as_ref().map_or("", |(_, text)| text.as_str());
        let line = &mut self.line;
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "{{\"TimeGenerated\":\"{}.{:09}Z\",\"ClientIP\":\"{client}\",\"Computer\":\"{client}\",\"Name\":",
            self.second_text,
            since.subsec_nanos()
        );
        push_json_str(line, &p.name);
        let _ = write!(
            line,
            ",\"QueryType\":\"{}\",\"ResultCode\":{},\"IPAddresses\":\"{}\",\"Action\":\"{}\",{},\"AllowRule\":",
            crate::answer::type_name(p.qtype),
            p.rcode,
            p.ip_addresses,
            p.action,
            fragment
        );
        match &p.allow_rule {
            Some(rule) => push_json_str(line, rule),
            None => line.push_str("null"),
        }
        let _ = write!(line, ",\"Protocol\":\"{}\",\"Via\":", p.protocol);
        match &p.via {
            Some(via) => push_json_str(line, via),
            None => line.push_str("null"),
        }
        line.push_str("}\n");
        (line, feed, family)
    }
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A time as `TimeGenerated` wants it: RFC 3339, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn fast_lines_say_what_the_event_says() {
        let dir = std::env::temp_dir().join(format!("iocsink-blocklog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let feed = dir.join("feed.csv");
        std::fs::write(&feed, "# \"first_seen_utc\",\"ioc_value\",\"ioc_type\",\"malware_printable\",\"confidence_level\",\"tags\"\n\"2026-05-24 00:00:00\", \"bad.sbs\", \"domain\", \"Mask\"\"Gram\", \"100\", \"a,b\"\n").unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n[[feed]]\nname = \"tf\"\npath = \"{}\"\n",
            feed.display()
        );
        let policy =
            Arc::new(Policy::build(&Config::parse(&text, Path::new("t.toml")).unwrap()).unwrap());
        let recs = policy.lookup("ws.bad.sbs").unwrap().into_recs();
        let pending = Pending {
            time: SystemTime::now(),
            client: "::ffff:10.0.0.7".parse().unwrap(),
            name: ArrayString::from("ws.bad.sbs").unwrap(),
            qtype: RecordType::AAAA,
            rcode: 3,
            ip_addresses: String::new(),
            action: "nxdomain",
            indicator_at: 3,
            wildcard: false,
            recs,
            policy,
            allow_rule: Some("allow.domains \"x\"".into()),
            protocol: "udp",
            indicator: None,
            via: Some("a > b".into()),
        };
        let mut writer = LineWriter::default();
        let fast: serde_json::Value = serde_json::from_str(writer.line(&pending).0).unwrap();
        let slow = serde_json::to_value(Event::from_pending(&pending)).unwrap();
        let parse = |v: &serde_json::Value| {
            time::OffsetDateTime::parse(
                v.as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        assert_eq!(parse(&fast["TimeGenerated"]), parse(&slow["TimeGenerated"]));
        let strip = |mut v: serde_json::Value| {
            v.as_object_mut().unwrap().remove("TimeGenerated");
            v
        };
        assert_eq!(strip(fast.clone()), strip(slow));
        assert_eq!(fast["MalwareFamily"], "Mask\"Gram");
        assert_eq!(fast["ClientIP"], "10.0.0.7");
        // The second line for the same records comes from the cached fragment.
        let again: serde_json::Value = serde_json::from_str(writer.line(&pending).0).unwrap();
        assert_eq!(strip(again), strip(fast));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
