//! Configuration: the TOML schema, loading and validation.
//!
//! Owns turning a file into a checked `Config`; every error names the file and, where it can,
//! the line and key. It never opens sockets or reads feeds (that is `policy`'s job).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

/// A whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub block: BlockConfig,
    #[serde(default, rename = "feed")]
    pub feeds: Vec<FeedConfig>,
    #[serde(default)]
    pub allow: AllowConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub download: DownloadConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub inspect: InspectConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// The file this was read from (for error messages and reloads); not part of the schema.
    #[serde(skip)]
    pub source: PathBuf,
    /// The text it was read from, to turn spans into line numbers.
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Each address is served on UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Networks allowed to query; everyone else gets REFUSED. Never an open resolver by default.
    #[serde(default = "default_allow_clients")]
    pub allow_clients: Vec<IpNet>,
    /// Forwarded queries in flight at once; beyond it new forwards get SERVFAIL.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    /// Concurrent TCP connections; beyond it new connections are closed at once.
    #[serde(default = "default_max_tcp")]
    pub max_tcp_connections: usize,
    /// UDP serving threads per listen address (default: the CPUs this process may use, up to 8).
    pub udp_threads: Option<usize>,
    /// A TCP connection idle this long is closed.
    #[serde(default = "default_tcp_idle_ms")]
    pub tcp_idle_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub servers: Vec<SocketAddr>,
    /// The whole budget for one forwarded query, across every upstream tried.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Nxdomain,
    Sinkhole,
    /// NOERROR with no answer, plus the SOA (RPZ `CNAME *.`).
    Nodata,
    /// Observe only: forward as usual and log.
    Log,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Sinkhole => "sinkhole",
            Action::Nodata => "nodata",
            Action::Log => "log",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    #[serde(default = "default_action")]
    pub action: Action,
    #[serde(default = "default_sink4")]
    pub sinkhole_ipv4: Ipv4Addr,
    #[serde(default = "default_sink6")]
    pub sinkhole_ipv6: Ipv6Addr,
    /// TTL of blocked answers and of their SOA's negative-caching minimum.
    #[serde(default = "default_block_ttl")]
    pub ttl: u32,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            action: default_action(),
            sinkhole_ipv4: default_sink4(),
            sinkhole_ipv6: default_sink6(),
            ttl: default_block_ttl(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedFormat {
    Auto,
    Domains,
    Hosts,
    Adblock,
    ThreatfoxCsv,
    ThreatfoxJson,
    Rpz,
    Markdown,
}

impl FeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Auto => "auto",
            FeedFormat::Domains => "domains",
            FeedFormat::Hosts => "hosts",
            FeedFormat::Adblock => "adblock",
            FeedFormat::ThreatfoxCsv => "threatfox-csv",
            FeedFormat::ThreatfoxJson => "threatfox-json",
            FeedFormat::Rpz => "rpz",
            FeedFormat::Markdown => "markdown",
        }
    }
}

/// One `[[feed]]`: where its indicators come from, what is known about them, which to use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub name: Spanned<String>,
    /// A local file (reloaded when it changes) ...
    pub path: Option<PathBuf>,
    /// ... or a remote source, downloaded every `refresh` and cached in `[download] cache_dir`.
    pub url: Option<String>,
    /// How often a remote feed is fetched again, e.g. "1h", "30m".
    #[serde(default, with = "humantime_serde_opt")]
    pub refresh: Option<std::time::Duration>,
    #[serde(default = "default_format")]
    pub format: FeedFormat,
    /// Feed-level metadata, used where a line carries none of its own.
    pub malware: Option<String>,
    pub threat_type: Option<String>,
    pub confidence: Option<u8>,
    pub first_seen: Option<String>,
    pub reference: Option<String>,
    /// Overrides `[block] action` for this feed's indicators.
    pub action: Option<Action>,
    /// Filters: drop indicators below this confidence ...
    pub min_confidence: Option<u8>,
    /// ... last seen (else first seen) more than this many days ago ...
    pub max_age_days: Option<u32>,
    /// ... or whose threat type is not one of these (e.g. ["botnet_cc"]).
    pub threat_types: Option<Vec<String>>,
}

impl FeedConfig {
    /// Where the feed comes from, for messages.
    pub fn source(&self) -> String {
        match (&self.path, &self.url) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(u)) => u.clone(),
            (None, None) => String::new(),
        }
    }
}

/// `refresh = "1h"` as an optional duration.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like \"1h\" or \"30m\": {e}"
            ))
        })
    }
}

/// The operations listener: metrics, health, the blocks page. Off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: Option<SocketAddr>,
}

/// What is checked in forwarded answers (CNAME cloaking, IP indicators).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectConfig {
    /// Block an answer whose CNAME/DNAME chain reaches a listed name.
    #[serde(default = "default_true")]
    pub cname: bool,
    /// Act on answers carrying an address from an `ip:port` indicator.
    #[serde(default = "default_true")]
    pub ip: bool,
    /// `block` the whole answer, or `strip` the listed addresses from it.
    #[serde(default = "default_ip_action")]
    pub ip_action: IpAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpAction {
    Block,
    Strip,
}

fn default_ip_action() -> IpAction {
    IpAction::Block
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            cname: true,
            ip: true,
            ip_action: IpAction::Block,
        }
    }
}

/// Abuse limits for UDP clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Queries per second per client address over UDP; 0 turns the limit off.
    #[serde(default = "default_client_qps")]
    pub client_qps: u32,
    /// Burst allowance per client (at least `client_qps`).
    #[serde(default = "default_client_burst")]
    pub client_burst: u32,
    /// Every n-th query over the limit gets a truncated answer (retry over TCP); 0: drop all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// Clients never limited; loopback by default (local tools, not spoofable from outside).
    #[serde(default = "default_exempt")]
    pub exempt: Vec<IpNet>,
}

fn default_exempt() -> Vec<IpNet> {
    vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            client_qps: default_client_qps(),
            client_burst: default_client_burst(),
            slip: default_slip(),
            exempt: default_exempt(),
        }
    }
}

fn default_client_qps() -> u32 {
    2000
}
fn default_client_burst() -> u32 {
    4000
}
fn default_slip() -> u32 {
    2
}

/// Automatic reloads (SIGHUP always reloads).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Reload when the config file or a local feed file changes.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// How often files are checked for changes.
    #[serde(default = "default_watch_ms")]
    pub interval_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval_ms: default_watch_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_watch_ms() -> u64 {
    1000
}

/// Downloads of remote feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadConfig {
    /// Last good copy of every remote feed, used at start and when a refresh fails.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    #[serde(default = "default_download_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest download accepted (after decompression).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            cache_dir: default_cache_dir(),
            timeout_ms: default_download_timeout_ms(),
            max_bytes: default_max_bytes(),
        }
    }
}

fn default_cache_dir() -> PathBuf {
    "cache/feeds".into()
}
fn default_download_timeout_ms() -> u64 {
    60_000
}
fn default_max_bytes() -> u64 {
    256 * 1024 * 1024
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// Names (and everything below them) never blocked; `*.d` allows only below `d`.
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    /// Clients never blocked (their hits are logged as "allowed").
    #[serde(default)]
    pub clients: Vec<IpNet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Block log path (JSON Lines), or "-" for stdout.
    #[serde(default = "default_block_log")]
    pub blocks: String,
    /// Events queued for the writer; beyond it events are dropped (and counted), never queries.
    #[serde(default = "default_log_queue")]
    pub queue: usize,
    /// Rotate the block log when it would grow past this many bytes; 0: never.
    #[serde(default = "default_log_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`blocks.jsonl.1` is the newest).
    #[serde(default = "default_log_keep")]
    pub keep: usize,
    /// Field names: `dnsevents` (Sentinel DnsEvents) or `asim` (ASIM DNS, for ASimDnsActivityLogs).
    #[serde(default)]
    pub format: LogFormat,
    /// A log of every answered query (JSON Lines); off unless set.
    pub queries: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Dnsevents,
    Asim,
}

fn default_log_max_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_log_keep() -> usize {
    5
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            blocks: default_block_log(),
            queue: default_log_queue(),
            max_bytes: default_log_max_bytes(),
            keep: default_log_keep(),
            format: LogFormat::default(),
            queries: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Answers kept at most; 0 disables the cache.
    #[serde(default = "default_cache_size")]
    pub size: usize,
    /// Upper bound on how long any answer is kept, whatever its TTL.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: u32,
    /// Upper bound for negative answers (RFC 2308).
    #[serde(default = "default_max_negative_ttl")]
    pub max_negative_ttl: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            size: default_cache_size(),
            max_ttl: default_max_ttl(),
            max_negative_ttl: default_max_negative_ttl(),
        }
    }
}

fn default_allow_clients() -> Vec<IpNet> {
    vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
}
fn default_max_inflight() -> usize {
    4096
}
fn default_max_tcp() -> usize {
    256
}
fn default_tcp_idle_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_action() -> Action {
    Action::Nxdomain
}
fn default_sink4() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}
fn default_sink6() -> Ipv6Addr {
    Ipv6Addr::UNSPECIFIED
}
fn default_block_ttl() -> u32 {
    60
}
fn default_format() -> FeedFormat {
    FeedFormat::Auto
}
fn default_block_log() -> String {
    "logs/blocks.jsonl".into()
}
fn default_log_queue() -> usize {
    4096
}
fn default_cache_size() -> usize {
    100_000
}
fn default_max_ttl() -> u32 {
    86_400
}
fn default_max_negative_ttl() -> u32 {
    3600
}

/// A configuration problem, already phrased for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `source` names it in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            ConfigError(format!(
                "{}: {}",
                source.display(),
                e.to_string().trim_end()
            ))
        })?;
        config.source = source.to_path_buf();
        config.text = text.to_string();
        config.validate()?;
        Ok(config)
    }

    /// "file:line" for a byte offset into the config text.
    pub fn at(&self, offset: usize) -> String {
        format!("{}:{}", self.source.display(), line_of(&self.text, offset))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let file = self.source.display();
        if self.server.listen.is_empty() {
            return Err(ConfigError(format!(
                "{file}: key server.listen: at least one address is needed"
            )));
        }
        if self.upstream.servers.is_empty() {
            return Err(ConfigError(format!(
                "{file}: key upstream.servers: at least one upstream is needed"
            )));
        }
        if self.upstream.timeout_ms == 0 {
            return Err(ConfigError(format!(
                "{file}: key upstream.timeout_ms: must be greater than 0"
            )));
        }
        for upstream in &self.upstream.servers {
            if self.server.listen.contains(upstream) {
                return Err(ConfigError(format!(
                    "{file}: key upstream.servers: {upstream} is also in server.listen (a forwarding loop)"
                )));
            }
        }
        if self.server.max_inflight == 0
            || self.server.max_tcp_connections == 0
            || self.server.udp_threads == Some(0)
        {
            return Err(ConfigError(format!(
                "{file}: keys server.max_inflight, server.max_tcp_connections and server.udp_threads must be greater than 0"
            )));
        }
        if self.log.queue == 0 {
            return Err(ConfigError(format!(
                "{file}: key log.queue: must be greater than 0"
            )));
        }
        let mut names = std::collections::HashSet::new();
        for (i, feed) in self.feeds.iter().enumerate() {
            let at = self.at(feed.name.span().start);
            let key = format!("feed[{i}] ({:?})", feed.name.get_ref());
            let fail = |what: String| Err(ConfigError(format!("{at}: key {key}: {what}")));
            if feed.name.get_ref().trim().is_empty() {
                return fail("name must not be empty".into());
            }
            if !names.insert(feed.name.get_ref().as_str()) {
                return fail("this feed name is used twice".into());
            }
            match (&feed.path, &feed.url) {
                (Some(_), Some(_)) => return fail("give either path or url, not both".into()),
                (None, None) => return fail("needs a path or a url".into()),
                (None, Some(url))
                    if !(url.starts_with("http://") || url.starts_with("https://")) =>
                {
                    return fail(format!("url {url:?} must start with http:// or https://"));
                }
                (Some(_), None) if feed.refresh.is_some() => {
                    return fail(
                        "refresh applies to url feeds (local files reload when they change)".into(),
                    );
                }
                _ => {}
            }
            if feed
                .refresh
                .is_some_and(|r| r < std::time::Duration::from_secs(1))
            {
                return fail("refresh must be at least 1s".into());
            }
            for (field, value) in [
                ("confidence", feed.confidence),
                ("min_confidence", feed.min_confidence),
            ] {
                if value.is_some_and(|c| c > 100) {
                    return fail(format!("{field} must be 0-100"));
                }
            }
            if let Some(date) = &feed.first_seen
                && crate::meta::parse_time(date).is_none()
            {
                return fail(format!("first_seen {date:?} is not a date like 2026-05-24"));
            }
        }
        for entry in &self.allow.domains {
            if let Err(why) = crate::domain::normalize_pattern(entry.get_ref()) {
                return Err(ConfigError(format!(
                    "{}: key allow.domains: {:?}: {why}",
                    self.at(entry.span().start),
                    entry.get_ref()
                )));
            }
        }
        Ok(())
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
