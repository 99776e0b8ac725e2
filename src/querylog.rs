//! The optional query log (`[log] queries`, off by default): one JSON line per answered
//! query, whatever the verdict, for troubleshooting and for SOCs that want all DNS. Same
//! shape as the block log's first fields, same writer design (bounded queue, a thread that
//! writes every 20 ms, rotation with the block log's settings).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use arrayvec::ArrayString;
use serde::Serialize;

use crate::logfile::LogFile;

struct Entry {
    time: SystemTime,
    client: IpAddr,
    name: ArrayString<256>,
    qtype: u16,
    rcode: u8,
    protocol: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Line<'a> {
    time_generated: String,
    #[serde(rename = "ClientIP")]
    client_ip: String,
    name: &'a str,
    query_type: String,
    result_code: u8,
    protocol: &'a str,
}

#[derive(Clone)]
pub struct QueryLog {
    tx: mpsc::SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
}

impl QueryLog {
    pub fn open(
        path: &str,
        max_bytes: u64,
        keep: usize,
        queue: usize,
    ) -> std::io::Result<QueryLog> {
        let mut out = LogFile::open(path, max_bytes, keep)?;
        let (tx, rx) = mpsc::sync_channel::<Entry>(queue);
        std::thread::Builder::new()
            .name("querylog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut wrote = false;
                    loop {
                        match rx.try_recv() {
                            Ok(e) => {
                                let line = Line {
                                    time_generated: crate::blocklog::rfc3339(e.time),
                                    client_ip: e.client.to_canonical().to_string(),
                                    name: &e.name,
                                    query_type: crate::answer::type_name(e.qtype.into()),
                                    result_code: e.rcode,
                                    protocol: e.protocol,
                                };
                                let mut text = serde_json::to_string(&line).unwrap_or_default();
                                text.push('\n');
                                if let Err(err) = out.write_line(&text) {
                                    tracing::error!(error = %err, "query log write failed");
                                }
                                wrote = true;
                            }
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => {
                                let _ = out.flush();
                                return;
                            }
                        }
                    }
                    if wrote {
                        let _ = out.flush();
                    }
                }
            })?;
        Ok(QueryLog {
            tx,
            dropped: Arc::default(),
        })
    }

    /// Records an answer sent to `client`; never waits.
    pub fn record(&self, client: IpAddr, reply: &[u8], protocol: &'static str) {
        let Some((name, qtype, rcode)) = crate::wire::answered(reply) else {
            return;
        };
        let entry = Entry {
            time: SystemTime::now(),
            client,
            name: ArrayString::from(&name).unwrap_or_default(),
            qtype,
            rcode,
            protocol,
        };
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
