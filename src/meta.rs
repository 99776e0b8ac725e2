//! Compact storage for indicator metadata. A million ThreatFox rows repeat a handful of
//! families, threat types, reporters and tags, so those are interned into "profiles"; what is
//! unique per row (IOC id, dates, confidence, line) fits in 24 bytes. A hit is turned back
//! into readable [`LineMeta`] only when it is logged or shown.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::config::Action;
use crate::feed::{LineMeta, Meta};

const NONE: u32 = u32::MAX;
/// Stamps with this bit set are string ids (dates we could not parse are kept as written).
const STRING_STAMP: u32 = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Profile {
    feed: u16,
    action: Option<Action>,
    ioc_type: u32,
    threat_type: u32,
    malware: u32,
    reporter: u32,
    tags: u32,
    reference: u32,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    profile: u32,
    first_seen: u32,
    last_seen: u32,
    ioc_id: u32,
    line: u32,
    confidence: u8,
}

/// One source of an indicator, readable: which feed, what it asks for, what it says.
#[derive(Debug, Clone)]
pub struct Source {
    pub feed: Arc<str>,
    /// The feed's own action for this indicator (RPZ), if it set one.
    pub action: Option<Action>,
    pub meta: LineMeta,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct MetaStore {
    strings: Vec<Arc<str>>,
    string_ids: FxHashMap<Arc<str>, u32>,
    profiles: Vec<Profile>,
    profile_ids: FxHashMap<Profile, u32>,
    recs: Vec<Rec>,
    feeds: Vec<Arc<str>>,
}

impl MetaStore {
    /// Registers a feed name; returns its index for [`MetaStore::add`].
    pub fn add_feed(&mut self, name: &str) -> u16 {
        self.feeds.push(name.into());
        (self.feeds.len() - 1) as u16
    }

    /// Stores one indicator's metadata; returns its record id.
    pub fn add(&mut self, feed: u16, action: Option<Action>, meta: &Meta<'_>, line: usize) -> u32 {
        let profile = Profile {
            feed,
            action,
            ioc_type: self.intern(meta.ioc_type.as_deref()),
            threat_type: self.intern(meta.threat_type.as_deref()),
            malware: self.intern(meta.malware.as_deref()),
            reporter: self.intern(meta.reporter.as_deref()),
            tags: self.intern(meta.tags.as_deref()),
            reference: self.intern(meta.reference.as_deref()),
        };
        let profile = match self.profile_ids.get(&profile) {
            Some(&id) => id,
            None => {
                let id = self.profiles.len() as u32;
                self.profiles.push(profile);
                self.profile_ids.insert(profile, id);
                id
            }
        };
        let first_seen = self.stamp(meta.first_seen.as_deref());
        let last_seen = self.stamp(meta.last_seen.as_deref());
        let ioc_id = match meta.ioc_id.as_deref() {
            Some(id) => id
                .parse::<u32>()
                .ok()
                .filter(|&n| n != NONE)
                .unwrap_or(NONE),
            None => NONE,
        };
        self.recs.push(Rec {
            profile,
            first_seen,
            last_seen,
            ioc_id,
            line: line as u32,
            confidence: meta.confidence.map_or(u8::MAX, |c| c.min(100)),
        });
        (self.recs.len() - 1) as u32
    }

    /// The readable form of a record.
    pub fn source(&self, rec: u32) -> Source {
        let r = self.recs[rec as usize];
        let p = self.profiles[r.profile as usize];
        Source {
            feed: self.feeds[p.feed as usize].clone(),
            action: p.action,
            line: r.line as usize,
            meta: LineMeta {
                ioc_type: self.string(p.ioc_type),
                threat_type: self.string(p.threat_type),
                malware: self.string(p.malware),
                confidence: (r.confidence <= 100).then_some(r.confidence),
                first_seen: self.render_stamp(r.first_seen),
                last_seen: self.render_stamp(r.last_seen),
                reporter: self.string(p.reporter),
                tags: self.string(p.tags),
                reference: self.string(p.reference),
                ioc_id: (r.ioc_id != NONE).then(|| r.ioc_id.to_string().into()),
            },
        }
    }

    /// The feed index and action of a record, without building the whole source.
    pub fn feed_and_action(&self, rec: u32) -> (u16, Option<Action>) {
        let p = self.profiles[self.recs[rec as usize].profile as usize];
        (p.feed, p.action)
    }

    pub fn feed_name(&self, feed: u16) -> &str {
        &self.feeds[feed as usize]
    }

    /// Gives back the slack of growth once building is done.
    pub fn shrink_to_fit(&mut self) {
        self.recs.shrink_to_fit();
        self.profiles.shrink_to_fit();
        self.strings.shrink_to_fit();
    }

    fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return NONE };
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let s: Arc<str> = s.into();
        self.strings.push(s.clone());
        self.string_ids.insert(s, id);
        id
    }

    fn string(&self, id: u32) -> Option<Arc<str>> {
        (id != NONE).then(|| self.strings[id as usize].clone())
    }

    fn stamp(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return NONE };
        match parse_time(s).map(|t| t.unix_timestamp()) {
            Some(secs) if (0..i64::from(STRING_STAMP)).contains(&secs) => secs as u32,
            _ => STRING_STAMP | self.intern(Some(s)),
        }
    }

    fn render_stamp(&self, stamp: u32) -> Option<Arc<str>> {
        if stamp == NONE {
            None
        } else if stamp & STRING_STAMP != 0 {
            self.string(stamp & !STRING_STAMP)
        } else {
            let t = OffsetDateTime::from_unix_timestamp(i64::from(stamp)).ok()?;
            t.format(&Rfc3339).ok().map(Into::into)
        }
    }
}

/// Dates as threat feeds write them: `2026-05-24 13:29:53 UTC`, `2026-05-24 13:29:53`,
/// `2026-05-24`, or RFC 3339. Always UTC.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let s = s.strip_suffix(" UTC").unwrap_or(s);
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let full = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(s, full) {
        return Some(t.assume_utc());
    }
    let day = format_description!("[year]-[month]-[day]");
    Date::parse(s, day).ok().map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_metadata_and_shares_profiles() {
        let mut store = MetaStore::default();
        let feed = store.add_feed("tf");
        let meta = Meta {
            ioc_type: Some("domain".into()),
            malware: Some("MaskGramStealer".into()),
            threat_type: Some("botnet_cc".into()),
            confidence: Some(100),
            first_seen: Some("2026-05-24 00:00:00 UTC".into()),
            last_seen: Some("whenever".into()),
            ioc_id: Some("1760922".into()),
            ..Meta::default()
        };
        store.add(feed, None, &meta, 7);
        let b = store.add(feed, None, &meta, 8);
        assert_eq!(store.profiles.len(), 1);
        let s = store.source(b);
        assert_eq!(s.line, 8);
        assert_eq!(&*s.feed, "tf");
        assert_eq!(s.meta.malware.as_deref(), Some("MaskGramStealer"));
        assert_eq!(s.meta.first_seen.as_deref(), Some("2026-05-24T00:00:00Z"));
        assert_eq!(s.meta.last_seen.as_deref(), Some("whenever"));
        assert_eq!(s.meta.ioc_id.as_deref(), Some("1760922"));
        assert_eq!(s.meta.confidence, Some(100));
    }

    #[test]
    fn parses_feed_dates() {
        assert!(parse_time("2026-03-07 13:29:53 UTC").is_some());
        assert!(parse_time("2026-03-07 13:29:53").is_some());
        assert!(parse_time("2026-03-07").is_some());
        assert!(parse_time("2026-03-07T13:29:53Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
