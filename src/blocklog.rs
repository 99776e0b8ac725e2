//! The block log: one JSON object per line, field names from Sentinel's `DnsEvents` plus IOC
//! metadata. Queries hand events to a bounded channel; one writer task owns the file, so a
//! slow disk delays log lines, never answers. When the queue is full, events are dropped and
//! counted rather than blocking a query.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

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

/// The sending side, cheap to clone into every request.
#[derive(Clone)]
pub struct BlockLog {
    tx: mpsc::Sender<Event>,
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
    pub fn record(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(mut rx: mpsc::Receiver<Event>, mut out: impl Write) {
    while let Some(event) = rx.blocking_recv() {
        let mut next = Some(event);
        // Write whatever is queued, then flush once: a line is on disk soon after its query.
        while let Some(event) = next {
            if let Err(e) = write_event(&mut out, &event) {
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

/// Now, as `TimeGenerated` wants it.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
