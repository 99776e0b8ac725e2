//! Feeds: one parser per format, each turning text into [`Indicator`]s plus a count of the
//! lines it skipped and why. Parsers never fail on a bad line; they report it with its line.

mod domains;
mod hosts;
mod ioc;
mod markdown;
mod rpz;
mod threatfox_csv;
mod threatfox_json;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Action, FeedFormat};
use crate::domain::Pattern;

/// What a feed line says about its indicator, borrowed from the feed text where it can be
/// (a million rows should not cost ten million small allocations); feed-level config fills
/// the gaps. [`LineMeta`] is the owned, readable form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta<'t> {
    pub ioc_type: Option<Cow<'t, str>>,
    pub threat_type: Option<Cow<'t, str>>,
    pub malware: Option<Cow<'t, str>>,
    pub confidence: Option<u8>,
    pub first_seen: Option<Cow<'t, str>>,
    pub last_seen: Option<Cow<'t, str>>,
    pub reporter: Option<Cow<'t, str>>,
    pub tags: Option<Cow<'t, str>>,
    pub reference: Option<Cow<'t, str>>,
    pub ioc_id: Option<Cow<'t, str>>,
}

impl<'t> Meta<'t> {
    /// This line's metadata, with `defaults` where the line says nothing.
    pub fn or(self, defaults: &Meta<'t>) -> Meta<'t> {
        let pick = |a: Option<Cow<'t, str>>, b: &Option<Cow<'t, str>>| a.or_else(|| b.clone());
        Meta {
            ioc_type: pick(self.ioc_type, &defaults.ioc_type),
            threat_type: pick(self.threat_type, &defaults.threat_type),
            malware: pick(self.malware, &defaults.malware),
            confidence: self.confidence.or(defaults.confidence),
            first_seen: pick(self.first_seen, &defaults.first_seen),
            last_seen: pick(self.last_seen, &defaults.last_seen),
            reporter: pick(self.reporter, &defaults.reporter),
            tags: pick(self.tags, &defaults.tags),
            reference: pick(self.reference, &defaults.reference),
            ioc_id: pick(self.ioc_id, &defaults.ioc_id),
        }
    }

    /// The owned form.
    pub fn to_owned_meta(&self) -> LineMeta {
        let own = |v: &Option<Cow<'t, str>>| v.as_deref().map(Arc::<str>::from);
        LineMeta {
            ioc_type: own(&self.ioc_type),
            threat_type: own(&self.threat_type),
            malware: own(&self.malware),
            confidence: self.confidence,
            first_seen: own(&self.first_seen),
            last_seen: own(&self.last_seen),
            reporter: own(&self.reporter),
            tags: own(&self.tags),
            reference: own(&self.reference),
            ioc_id: own(&self.ioc_id),
        }
    }
}

/// Indicator metadata in readable, owned form (for `check`, the log, IP indicators).
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
pub struct Indicator<'t> {
    pub pattern: Pattern,
    pub line: usize,
    pub meta: Meta<'t>,
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

/// Skipped lines kept with their line numbers; beyond this only counts are kept.
const SKIPS_KEPT: usize = 100;

/// Everything but the indicators: what a parse skipped, ignored and set aside.
#[derive(Debug, Default)]
pub struct Report {
    pub format: Option<FeedFormat>,
    pub indicators: usize,
    /// Names the feed itself exempts (RPZ `rpz-passthru.`).
    pub passthru: Vec<Pattern>,
    pub ips: Vec<IpIndicator>,
    /// The first skipped lines, with line numbers.
    pub skipped: Vec<Skipped>,
    /// All skipped lines, counted by reason.
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// Lines understood but not name indicators (hashes, ...), by kind.
    pub ignored: BTreeMap<String, usize>,
}

/// Where a parser puts what it finds: indicators go to the sink as they are found.
pub struct Out<'t, 's> {
    sink: &'s mut dyn FnMut(Indicator<'t>),
    pub report: Report,
    /// Lines before this text (when a file is parsed in chunks).
    line_base: usize,
}

impl<'t> Out<'t, '_> {
    fn indicator(&mut self, mut ind: Indicator<'t>) {
        self.report.indicators += 1;
        ind.line += self.line_base;
        (self.sink)(ind);
    }

    /// A bare name from a list (no metadata of its own), or a skip saying why it is not one.
    fn name(&mut self, line: usize, raw: &str) {
        match crate::domain::normalize_pattern(raw) {
            Ok(pattern) => self.indicator(Indicator {
                pattern,
                line,
                meta: Meta::default(),
                action: None,
            }),
            Err(why) => self.skip(line, why),
        }
    }

    fn ip(&mut self, mut ip: IpIndicator) {
        ip.line += self.line_base;
        self.report.ips.push(ip);
    }

    fn skip(&mut self, line: usize, reason: impl Into<String>) {
        let line = line + self.line_base;
        let reason = reason.into();
        if self.report.skipped.len() < SKIPS_KEPT {
            self.report.skipped.push(Skipped {
                line,
                reason: reason.clone(),
            });
        }
        *self.report.skipped_by_reason.entry(reason).or_default() += 1;
    }

    fn ignore(&mut self, kind: &str) {
        *self.report.ignored.entry(kind.to_string()).or_default() += 1;
    }
}

/// Parses feed text in the given format (`Auto` detects it), handing each indicator to
/// `sink` as it is found. Only a document that cannot be read at all (JSON that does not
/// parse) is an error, with its line; bad lines are skipped and reported.
pub fn parse_into<'t>(
    text: &'t str,
    format: FeedFormat,
    sink: &mut dyn FnMut(Indicator<'t>),
) -> Result<Report, String> {
    parse_chunk(text, format, 0, sink)
}

/// Parses one piece of a feed whose first line is `line_base + 1`.
fn parse_chunk<'t>(
    text: &'t str,
    format: FeedFormat,
    line_base: usize,
    sink: &mut dyn FnMut(Indicator<'t>),
) -> Result<Report, String> {
    let format = match format {
        FeedFormat::Auto => detect(text),
        other => other,
    };
    let mut out = Out {
        sink,
        report: Report::default(),
        line_base,
    };
    match format {
        FeedFormat::Domains | FeedFormat::Adblock | FeedFormat::Auto => {
            domains::parse(text, &mut out)
        }
        FeedFormat::Hosts => hosts::parse(text, &mut out),
        FeedFormat::ThreatfoxCsv => threatfox_csv::parse(text, &mut out),
        FeedFormat::ThreatfoxJson => threatfox_json::parse(text, &mut out)?,
        FeedFormat::Rpz => rpz::parse(text, &mut out),
        FeedFormat::Markdown => markdown::parse(text, &mut out),
    }
    out.report.format = Some(format);
    Ok(out.report)
}

/// A whole parse, indicators collected (for tests and download checks).
#[derive(Debug)]
pub struct ParsedFeed<'t> {
    pub indicators: Vec<Indicator<'t>>,
    pub report: Report,
}

/// Bytes read at a time from a big line-oriented feed.
const CHUNK: usize = 4 << 20;

/// Parses a feed file. Line-oriented lists (domains, hosts, adblock: one indicator per line,
/// no state between lines) are read a few MiB at a time, so a big list never sits in memory
/// whole next to the tables it fills; other formats are read whole.
pub fn parse_file(
    path: &std::path::Path,
    format: FeedFormat,
    sink: &mut dyn FnMut(Indicator<'_>),
) -> Result<Report, ParseFileError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(ParseFileError::Io)?;
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    (&mut file)
        .take(CHUNK as u64)
        .read_to_end(&mut buf)
        .map_err(ParseFileError::Io)?;
    let format = match format {
        FeedFormat::Auto => detect(&String::from_utf8_lossy(&buf[..buf.len().min(64 << 10)])),
        other => other,
    };
    if !matches!(
        format,
        FeedFormat::Domains | FeedFormat::Hosts | FeedFormat::Adblock
    ) {
        file.read_to_end(&mut buf).map_err(ParseFileError::Io)?;
        let text = String::from_utf8(buf).map_err(|e| {
            ParseFileError::Parse(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        return parse_chunk(&text, format, 0, sink).map_err(ParseFileError::Parse);
    }
    let mut total = Report::default();
    let mut line_base = 0;
    loop {
        let at_end = buf.len() < CHUNK;
        // Parse up to the last complete line; keep the rest for the next chunk.
        let cut = if at_end {
            buf.len()
        } else {
            buf.iter()
                .rposition(|&b| b == b'\n')
                .map_or(buf.len(), |i| i + 1)
        };
        let text = String::from_utf8_lossy(&buf[..cut]);
        let report = parse_chunk(&text, format, line_base, sink).map_err(ParseFileError::Parse)?;
        line_base += text.lines().count();
        total.absorb(report);
        if at_end {
            break;
        }
        buf.drain(..cut);
        let want = (CHUNK - buf.len()) as u64;
        (&mut file)
            .take(want)
            .read_to_end(&mut buf)
            .map_err(ParseFileError::Io)?;
        if buf.is_empty() {
            break;
        }
    }
    total.format = Some(format);
    Ok(total)
}

/// Why a feed file gave nothing.
#[derive(Debug)]
pub enum ParseFileError {
    /// It could not be read.
    Io(std::io::Error),
    /// It could not be parsed at all (a JSON document, say).
    Parse(String),
}

impl Report {
    /// Adds what another piece of the same feed reported.
    fn absorb(&mut self, other: Report) {
        self.format = self.format.or(other.format);
        self.indicators += other.indicators;
        self.passthru.extend(other.passthru);
        self.ips.extend(other.ips);
        let room = SKIPS_KEPT.saturating_sub(self.skipped.len());
        self.skipped.extend(other.skipped.into_iter().take(room));
        for (reason, n) in other.skipped_by_reason {
            *self.skipped_by_reason.entry(reason).or_default() += n;
        }
        for (kind, n) in other.ignored {
            *self.ignored.entry(kind).or_default() += n;
        }
    }
}

impl std::ops::Deref for ParsedFeed<'_> {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.report
    }
}

pub fn parse(text: &str, format: FeedFormat) -> Result<ParsedFeed<'_>, String> {
    let mut indicators = Vec::new();
    let report = parse_into(text, format, &mut |ind| indicators.push(ind))?;
    Ok(ParsedFeed { indicators, report })
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
