//! Feeds: one parser per format, each turning text into [`Indicator`]s plus a count of the
//! lines it skipped and why. Parsers never fail on a bad line; they report it with its line.

mod domains;
mod hosts;
mod ioc;
mod markdown;
mod rpz;
mod threatfox_csv;
mod threatfox_json;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Action, FeedFormat};
use crate::domain::Pattern;

/// What a feed line may say about its indicator; feed-level config fills the gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMeta {
    pub ioc_type: Option<Arc<str>>,
    pub threat_type: Option<Arc<str>>,
    pub malware: Option<Arc<str>>,
    pub confidence: Option<u8>,
    pub first_seen: Option<Arc<str>>,
    pub last_seen: Option<Arc<str>>,
    pub reporter: Option<Arc<str>>,
    pub tags: Option<Arc<str>>,
    pub reference: Option<Arc<str>>,
    pub ioc_id: Option<Arc<str>>,
}

impl LineMeta {
    /// This line's metadata, with `defaults` where the line says nothing.
    pub fn or(&self, defaults: &LineMeta) -> LineMeta {
        let pick = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| a.clone().or_else(|| b.clone());
        LineMeta {
            ioc_type: pick(&self.ioc_type, &defaults.ioc_type),
            threat_type: pick(&self.threat_type, &defaults.threat_type),
            malware: pick(&self.malware, &defaults.malware),
            confidence: self.confidence.or(defaults.confidence),
            first_seen: pick(&self.first_seen, &defaults.first_seen),
            last_seen: pick(&self.last_seen, &defaults.last_seen),
            reporter: pick(&self.reporter, &defaults.reporter),
            tags: pick(&self.tags, &defaults.tags),
            reference: pick(&self.reference, &defaults.reference),
            ioc_id: pick(&self.ioc_id, &defaults.ioc_id),
        }
    }
}

/// A domain indicator from one feed line.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub pattern: Pattern,
    pub line: usize,
    pub meta: Option<Box<LineMeta>>,
    /// The feed's own answer for it (RPZ actions); None uses the configured action.
    pub action: Option<Action>,
}

/// An `ip:port` IOC, kept with its metadata for answer inspection.
#[derive(Debug, Clone)]
pub struct IpIndicator {
    pub ip: std::net::IpAddr,
    pub port: Option<u16>,
    pub line: usize,
    pub meta: LineMeta,
}

/// A line the parser could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// Everything a parser got out of one feed text.
#[derive(Debug, Default)]
pub struct ParsedFeed {
    pub format: Option<FeedFormat>,
    pub indicators: Vec<Indicator>,
    /// Names the feed itself exempts (RPZ `rpz-passthru.`).
    pub passthru: Vec<Indicator>,
    pub ips: Vec<IpIndicator>,
    pub skipped: Vec<Skipped>,
    /// Lines that were understood but are not name indicators (hashes, ip:port), by kind.
    pub ignored: BTreeMap<String, usize>,
}

impl ParsedFeed {
    fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            reason: reason.into(),
        });
    }

    fn ignore(&mut self, kind: &str) {
        *self.ignored.entry(kind.to_string()).or_default() += 1;
    }

    /// Skipped lines grouped by reason, for `validate` and `feeds` output.
    pub fn skipped_by_reason(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason.clone()).or_default() += 1;
        }
        counts
    }
}

/// Parses feed text in the given format (`Auto` detects it from the content). Only a
/// document that cannot be read at all (JSON that does not parse) is an error, with its line.
pub fn parse(text: &str, format: FeedFormat) -> Result<ParsedFeed, String> {
    let format = match format {
        FeedFormat::Auto => detect(text),
        other => other,
    };
    let mut feed = match format {
        FeedFormat::Domains | FeedFormat::Adblock | FeedFormat::Auto => domains::parse(text),
        FeedFormat::Hosts => hosts::parse(text),
        FeedFormat::ThreatfoxCsv => threatfox_csv::parse(text),
        FeedFormat::ThreatfoxJson => threatfox_json::parse(text)?,
        FeedFormat::Rpz => rpz::parse(text),
        FeedFormat::Markdown => markdown::parse(text),
    };
    feed.format = Some(format);
    Ok(feed)
}

/// Guesses a format from the first meaningful lines.
pub fn detect(text: &str) -> FeedFormat {
    let head: Vec<&str> = text.lines().take(400).map(str::trim).collect();
    if text.trim_start().starts_with(['{', '[']) {
        return FeedFormat::ThreatfoxJson;
    }
    if head.iter().any(|l| markdown::is_ioc_header(l)) {
        return FeedFormat::Markdown;
    }
    if head
        .iter()
        .any(|l| l.starts_with("$ORIGIN") || l.starts_with("$TTL") || rpz::is_policy_line(l))
    {
        return FeedFormat::Rpz;
    }
    for &line in &head {
        if line.starts_with("# \"first_seen_utc\"") || line.starts_with("#\"first_seen_utc\"") {
            return FeedFormat::ThreatfoxCsv;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        if line.starts_with('"') && line.contains("\",") {
            return FeedFormat::ThreatfoxCsv;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if first.parse::<std::net::IpAddr>().is_ok() {
            return FeedFormat::Hosts;
        }
        return FeedFormat::Domains;
    }
    FeedFormat::Domains
}

/// Removes a trailing `# comment` from a line.
fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect("# list\nbad.sbs\n"), FeedFormat::Domains);
        assert_eq!(detect("# hosts\n127.0.0.1 bad.sbs\n"), FeedFormat::Hosts);
        assert_eq!(detect("||bad.sbs^\n"), FeedFormat::Domains);
        assert_eq!(
            detect("# \"first_seen_utc\",\"ioc_id\"\n\"2026-05-24\", \"1\"\n"),
            FeedFormat::ThreatfoxCsv
        );
        assert_eq!(
            detect("{\"query_status\": \"ok\"}"),
            FeedFormat::ThreatfoxJson
        );
        assert_eq!(
            detect("$TTL 60\n@ SOA a. b. 1 1 1 1 1\nbad.sbs CNAME .\n"),
            FeedFormat::Rpz
        );
        assert_eq!(detect("bad.sbs CNAME .\n"), FeedFormat::Rpz);
        assert_eq!(
            detect("Report\n| Type | Value | Threat Type |\n|---|---|---|\n"),
            FeedFormat::Markdown
        );
    }
}
