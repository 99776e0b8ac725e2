//! The policy: indicators, allowlists and access control, built from a config off the hot
//! path and then immutable. The server holds it behind an `ArcSwap` and swaps in a new one on
//! reload, so a lookup never waits on a rebuild.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;

use crate::config::{Action, BlockConfig, Config, FeedFormat};
use crate::domain::normalize_pattern;
use crate::feed::{self, LineMeta, Skipped};
use crate::matcher::SuffixMap;

/// One source listing a name: its feed, the action it asks for, and what it says about it.
#[derive(Debug, Clone)]
pub struct Source {
    pub feed: Arc<str>,
    pub action: Action,
    pub meta: LineMeta,
    /// Line of the feed file the indicator came from.
    pub line: usize,
}

/// What loading one feed gave, for `validate`, `feeds` and the start-up log.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub name: String,
    pub path: PathBuf,
    pub format: FeedFormat,
    pub indicators: usize,
    pub skipped: BTreeMap<String, usize>,
    pub ignored: BTreeMap<String, usize>,
    /// The first few skipped lines, with their line numbers, to show the user.
    pub first_skips: Vec<Skipped>,
}

/// Why a listed name was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Client(IpNet),
    Domain(String),
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowRule::Client(net) => write!(f, "allow.clients {net}"),
            AllowRule::Domain(d) => write!(f, "allow.domains {d}"),
        }
    }
}

/// An indicator hit: the listed name that covered the query and every source listing it.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    pub indicator: &'a str,
    pub wildcard: bool,
    pub sources: Vec<&'a Source>,
}

impl Match<'_> {
    /// The action to take: the first source that blocks decides how; a name listed only by
    /// observe-only feeds is only logged.
    pub fn action(&self) -> Action {
        self.sources
            .iter()
            .map(|s| s.action)
            .find(|a| *a != Action::Log)
            .unwrap_or(Action::Log)
    }

    /// All feed names listing it, comma-separated, in config order.
    pub fn feeds(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.sources {
            if !names.contains(&&*s.feed) {
                names.push(&s.feed);
            }
        }
        names.join(",")
    }

    /// The first source that has a value for a metadata field.
    pub fn first<T>(&self, field: impl Fn(&LineMeta) -> Option<T>) -> Option<T> {
        self.sources.iter().find_map(|s| field(&s.meta))
    }
}

/// The verdict for one query.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Client outside `server.allow_clients`.
    Refuse,
    /// Nothing listed: forward.
    Forward,
    /// Listed and blocking: answer locally.
    Block(Match<'a>),
    /// Listed by observe-only feeds: forward, and log as "logged".
    Observe(Match<'a>),
    /// Listed, but an allow rule wins: forward, and log as "allowed".
    Allow(Match<'a>, AllowRule),
}

#[derive(Debug)]
pub struct Policy {
    indicators: SuffixMap<Source>,
    allow_domains: SuffixMap<()>,
    allow_clients: Vec<IpNet>,
    access: Vec<IpNet>,
    pub block: BlockConfig,
    pub feeds: Vec<FeedStatus>,
    pub built_at: Instant,
}

impl Policy {
    /// Reads every feed of `config` and builds the policy. An unreadable feed is an error;
    /// bad lines inside a feed are skipped and counted.
    pub fn build(config: &Config) -> Result<Policy, String> {
        let mut indicators = SuffixMap::default();
        let mut feeds = Vec::new();
        for feed_cfg in &config.feeds {
            let path = feed_cfg.path.get_ref();
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "{}: feed {:?}: cannot read {}: {e}",
                    config.at(feed_cfg.path.span().start),
                    feed_cfg.name,
                    path.display()
                )
            })?;
            let parsed = feed::parse(&text, feed_cfg.format);
            let name: Arc<str> = feed_cfg.name.as_str().into();
            let defaults = LineMeta {
                threat_type: feed_cfg.threat_type.as_deref().map(Into::into),
                malware: feed_cfg.malware.as_deref().map(Into::into),
                confidence: feed_cfg.confidence,
                first_seen: feed_cfg.first_seen.as_deref().map(Into::into),
                reference: feed_cfg.reference.as_deref().map(Into::into),
                ..LineMeta::default()
            };
            let action = feed_cfg.action.unwrap_or(config.block.action);
            for ind in &parsed.indicators {
                let meta = match &ind.meta {
                    Some(line) => merge(line, &defaults),
                    None => defaults.clone(),
                };
                indicators.insert(
                    &ind.pattern.name,
                    ind.pattern.below_only,
                    Source {
                        feed: name.clone(),
                        action,
                        meta,
                        line: ind.line,
                    },
                );
            }
            feeds.push(FeedStatus {
                name: feed_cfg.name.clone(),
                path: path.clone(),
                format: parsed.format.unwrap_or(feed_cfg.format),
                indicators: parsed.indicators.len(),
                skipped: parsed.skipped_by_reason(),
                ignored: parsed.ignored.clone(),
                first_skips: parsed.skipped.iter().take(5).cloned().collect(),
            });
        }
        let mut allow_domains = SuffixMap::default();
        for entry in &config.allow.domains {
            // Validated in Config::parse; a failure here would be a bug, so skip rather than panic.
            if let Ok(p) = normalize_pattern(entry.get_ref()) {
                allow_domains.insert(&p.name, p.below_only, ());
            }
        }
        Ok(Policy {
            indicators,
            allow_domains,
            allow_clients: config.allow.clients.clone(),
            access: config.server.allow_clients.clone(),
            block: config.block.clone(),
            feeds,
            built_at: Instant::now(),
        })
    }

    /// Distinct listed names across all feeds.
    pub fn indicator_count(&self) -> usize {
        self.indicators.len()
    }

    /// Whether `client` may query at all.
    pub fn admits(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        self.access.iter().any(|n| n.contains(&client))
    }

    /// The indicator covering a normalized name, if any, ignoring allow rules.
    pub fn lookup(&self, key: &str) -> Option<Match<'_>> {
        let hit = self.indicators.lookup(key)?;
        Some(Match {
            indicator: hit.listed,
            wildcard: hit.wildcard_only(),
            sources: hit.values().collect(),
        })
    }

    /// Decides one query. Precedence: client allowlist > domain allowlist > indicator.
    pub fn decide(&self, key: &str, client: IpAddr) -> Decision<'_> {
        let client = canonical(client);
        if !self.access.iter().any(|n| n.contains(&client)) {
            return Decision::Refuse;
        }
        let Some(hit) = self.lookup(key) else {
            return Decision::Forward;
        };
        if let Some(net) = self.allow_clients.iter().find(|n| n.contains(&client)) {
            return Decision::Allow(hit, AllowRule::Client(*net));
        }
        if let Some(allow) = self.allow_domains.lookup(key) {
            let rule = if allow.wildcard_only() {
                format!("*.{}", allow.listed)
            } else {
                allow.listed.to_string()
            };
            return Decision::Allow(hit, AllowRule::Domain(rule));
        }
        match hit.action() {
            Action::Log => Decision::Observe(hit),
            _ => Decision::Block(hit),
        }
    }
}

/// IPv4-mapped IPv6 clients (from dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A line's own metadata, with the feed's defaults where the line says nothing.
fn merge(line: &LineMeta, defaults: &LineMeta) -> LineMeta {
    let pick = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| a.clone().or_else(|| b.clone());
    LineMeta {
        ioc_type: pick(&line.ioc_type, &defaults.ioc_type),
        threat_type: pick(&line.threat_type, &defaults.threat_type),
        malware: pick(&line.malware, &defaults.malware),
        confidence: line.confidence.or(defaults.confidence),
        first_seen: pick(&line.first_seen, &defaults.first_seen),
        last_seen: pick(&line.last_seen, &defaults.last_seen),
        reporter: pick(&line.reporter, &defaults.reporter),
        tags: pick(&line.tags, &defaults.tags),
        reference: pick(&line.reference, &defaults.reference),
        ioc_id: pick(&line.ioc_id, &defaults.ioc_id),
    }
}
