//! The block log: one JSON object per line, field names from Sentinel's `DnsEvents` plus IOC
//! metadata. Queries hand events to a bounded channel; one writer task owns the file, so a
//! slow disk delays log lines, never answers. When the queue is full, events are dropped and
//! counted rather than blocking a query.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use hickory_proto::rr::RecordType;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::feed::LineMeta;
use crate::policy::Policy;

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
}

/// An event as the request path hands it over: what was asked and answered, and the
/// indicator records. Turning records into readable fields and JSON is the writer's work,
/// so a blocked query pays for a few copies, not for formatting.
pub struct Pending {
    pub time: SystemTime,
    pub client: IpAddr,
    /// The query name, normalized.
    pub name: String,
    pub qtype: RecordType,
    pub rcode: u16,
    pub ip_addresses: String,
    pub action: &'static str,
    /// The listed name: a suffix of `name` starting here.
    pub indicator_at: usize,
    pub wildcard: bool,
    pub recs: Vec<u32>,
    /// The policy the records belong to (a reload may have replaced it since).
    pub policy: Arc<Policy>,
    pub allow_rule: Option<String>,
    pub protocol: &'static str,
}

impl Event {
    /// The readable event for a pending one.
    pub fn from_pending(p: &Pending) -> Event {
        let indicator = p.name.get(p.indicator_at..).unwrap_or_default();
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
            name: p.name.clone(),
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
        }
    }
}

/// The sending side, cheap to clone into every request.
#[derive(Clone)]
pub struct BlockLog {
    tx: mpsc::Sender<Pending>,
    dropped: Arc<AtomicU64>,
}

impl BlockLog {
    /// Opens the log (creating its directory) and starts the writer task. `"-"` is stdout.
    pub fn start(path: &str, queue: usize) -> std::io::Result<BlockLog> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = Path::new(path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let (tx, rx) = mpsc::channel(queue);
        // The writer does blocking file I/O, so it gets a thread of its own, off the runtime.
        std::thread::Builder::new()
            .name("blocklog".into())
            .spawn(move || write_loop(rx, std::io::BufWriter::new(out)))?;
        Ok(BlockLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues an event; never waits.
    pub fn record(&self, event: Pending) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(mut rx: mpsc::Receiver<Pending>, mut out: impl Write) {
    while let Some(event) = rx.blocking_recv() {
        let mut next = Some(event);
        // Write whatever is queued, then flush once: a line is on disk soon after its query.
        while let Some(pending) = next {
            if let Err(e) = write_event(&mut out, &Event::from_pending(&pending)) {
                tracing::error!(error = %e, "block log write failed");
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "block log flush failed");
        }
    }
}

fn write_event(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}

/// A time as `TimeGenerated` wants it: RFC 3339, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
