//! Remote feeds: conditional downloads (ETag / Last-Modified), a size limit, gzip and zip as
//! ThreatFox serves them, and the last good copy kept in `[download] cache_dir` so a restart
//! answers at once from it. A download that fails or does not parse leaves that copy alone.
//!
//! Host names are resolved through the configured upstreams, never the system resolver
//! (which may be this very server).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};

use crate::config::{DownloadConfig, FeedConfig};
use crate::upstream::{QueryFlags, Upstream};

/// The cached copy of a remote feed.
pub fn cache_path(dir: &Path, feed: &str) -> PathBuf {
    dir.join(format!("{}.feed", file_stem(feed)))
}

fn state_path(dir: &Path, feed: &str) -> PathBuf {
    dir.join(format!("{}.state.json", file_stem(feed)))
}

/// A feed name made safe as a file name.
fn file_stem(feed: &str) -> String {
    feed.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What we remember about a remote feed between downloads (and restarts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FetchState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix seconds of the last download that succeeded (or was not modified).
    pub last_success: Option<i64>,
    pub last_attempt: Option<i64>,
    pub last_error: Option<String>,
    pub bytes: Option<u64>,
}

pub fn load_state(dir: &Path, feed: &str) -> FetchState {
    std::fs::read(state_path(dir, feed))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(dir: &Path, feed: &str, state: &FetchState) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    write_atomically(&state_path(dir, feed), &bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Whether a download changed the cached copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    Changed,
    NotModified,
}

pub struct Fetcher {
    client: reqwest::Client,
    cache_dir: PathBuf,
    max_bytes: u64,
}

impl Fetcher {
    pub fn new(download: &DownloadConfig, upstream: Arc<Upstream>) -> Result<Fetcher, String> {
        // reqwest is built without a bundled crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(download.timeout_ms))
            .connect_timeout(Duration::from_millis(download.timeout_ms.min(10_000)))
            .dns_resolver(Arc::new(UpstreamResolver(upstream)))
            .no_proxy()
            .user_agent(concat!("iocsink/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Fetcher {
            client,
            cache_dir: download.cache_dir.clone(),
            max_bytes: download.max_bytes,
        })
    }

    /// Downloads one feed if it changed, checks that it parses, and replaces the cached copy.
    /// The outcome (or error) is recorded in the feed's state file either way.
    pub async fn fetch(&self, feed: &FeedConfig) -> Result<Fetched, String> {
        let name = feed.name.get_ref();
        let mut state = load_state(&self.cache_dir, name);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        state.last_attempt = Some(now);
        let result = self.download(feed, &mut state).await;
        match &result {
            Ok(_) => {
                state.last_success = Some(now);
                state.last_error = None;
            }
            Err(e) => state.last_error = Some(e.clone()),
        }
        if let Err(e) = std::fs::create_dir_all(&self.cache_dir)
            .and_then(|_| save_state(&self.cache_dir, name, &state))
        {
            tracing::warn!(feed = %name, error = %e, "cannot save feed state");
        }
        result
    }

    async fn download(&self, feed: &FeedConfig, state: &mut FetchState) -> Result<Fetched, String> {
        let url = feed.url.as_deref().ok_or("feed has no url")?;
        let cached = cache_path(&self.cache_dir, feed.name.get_ref());
        let mut request = self.client.get(url);
        if cached.exists() {
            if let Some(etag) = &state.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &state.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(format!(
                "GET {url}: larger than max_bytes ({})",
                self.max_bytes
            ));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (
            header(reqwest::header::ETAG),
            header(reqwest::header::LAST_MODIFIED),
        );
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.max_bytes {
                return Err(format!(
                    "GET {url}: larger than max_bytes ({})",
                    self.max_bytes
                ));
            }
        }
        let body = unpack(body, self.max_bytes).map_err(|e| format!("GET {url}: {e}"))?;
        let text = String::from_utf8(body).map_err(|_| format!("GET {url}: not UTF-8 text"))?;
        // Parse to check it, counting only: the tables are built by the reload that follows.
        let parsed = crate::feed::parse_into(&text, feed.format, &mut |_| {})
            .map_err(|e| format!("GET {url}: {e}"))?;
        if parsed.indicators == 0 && !parsed.skipped.is_empty() {
            return Err(format!(
                "GET {url}: no usable indicator ({} lines skipped, first at line {}: {}); keeping the last good copy",
                parsed.skipped.len(),
                parsed.skipped[0].line,
                parsed.skipped[0].reason
            ));
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| format!("{}: {e}", self.cache_dir.display()))?;
        let path = cache_path(&self.cache_dir, feed.name.get_ref());
        write_atomically(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        state.etag = etag;
        state.last_modified = last_modified;
        state.bytes = Some(text.len() as u64);
        Ok(Fetched::Changed)
    }
}

/// reqwest's errors keep the cause (refused, timed out, DNS) in their source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Unpacks gzip and zip bodies (by their magic bytes); anything else is returned as is.
fn unpack(body: Vec<u8>, max: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if body.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(&body[..])
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip: {e}"))?;
    } else if body.starts_with(b"PK\x03\x04") {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body))
            .map_err(|e| format!("bad zip: {e}"))?;
        let index = (0..archive.len())
            .find(|&i| archive.by_index(i).is_ok_and(|f| f.is_file()))
            .ok_or("zip holds no file")?;
        let file = archive
            .by_index(index)
            .map_err(|e| format!("bad zip: {e}"))?;
        file.take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad zip: {e}"))?;
    } else {
        return Ok(body);
    }
    if out.len() as u64 > max {
        return Err(format!("unpacked data larger than max_bytes ({max})"));
    }
    Ok(out)
}

/// Resolves download hosts through the configured upstreams.
struct UpstreamResolver(Arc<Upstream>);

impl reqwest::dns::Resolve for UpstreamResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let upstream = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let fqdn = Name::from_ascii(format!("{}.", host.trim_end_matches('.')))?;
            let flags = QueryFlags {
                recursion_desired: true,
                checking_disabled: false,
                dnssec_ok: false,
            };
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Ok(answer) = upstream
                    .resolve(&Query::query(fqdn.clone(), rtype), flags)
                    .await
                {
                    addrs.extend(answer.answers.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(SocketAddr::new(a.0.into(), 0)),
                        RData::AAAA(a) => Some(SocketAddr::new(a.0.into(), 0)),
                        _ => None,
                    }));
                }
            }
            if addrs.is_empty() {
                return Err(format!("{host}: no address from the configured upstreams").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_gzip_and_zip() {
        use std::io::Write;
        let text = b"bad.sbs\n".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        assert_eq!(unpack(gz.finish().unwrap(), 100).unwrap(), text);

        let mut zipped = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut zipped);
        w.start_file("full.csv", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&text).unwrap();
        w.finish().unwrap();
        assert_eq!(unpack(zipped.into_inner(), 100).unwrap(), text);

        assert_eq!(unpack(text.clone(), 100).unwrap(), text);
        assert!(
            unpack(text, 3).is_ok(),
            "plain bodies are limited while downloading"
        );
    }

    #[test]
    fn feed_names_become_safe_file_names() {
        assert_eq!(
            cache_path(Path::new("c"), "tf/../x y"),
            Path::new("c/tf____x_y.feed")
        );
    }
}
