//! Feeds: one parser per format, each turning text into [`Indicator`]s plus a count of the
//! lines it skipped and why. Parsers never fail on a bad line; they report it with its line.

mod domains;
mod hosts;
mod threatfox_csv;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::FeedFormat;
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

/// A domain indicator from one feed line.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub pattern: Pattern,
    pub line: usize,
    pub meta: Option<Box<LineMeta>>,
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

/// Parses feed text in the given format (`Auto` detects it from the content).
pub fn parse(text: &str, format: FeedFormat) -> ParsedFeed {
    let format = match format {
        FeedFormat::Auto => detect(text),
        other => other,
    };
    let mut feed = match format {
        FeedFormat::Domains | FeedFormat::Auto => domains::parse(text),
        FeedFormat::Hosts => hosts::parse(text),
        FeedFormat::ThreatfoxCsv => threatfox_csv::parse(text),
    };
    feed.format = Some(format);
    feed
}

/// Guesses a format from the first meaningful lines.
pub fn detect(text: &str) -> FeedFormat {
    for line in text.lines().take(200) {
        let line = line.trim();
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
    }
}
