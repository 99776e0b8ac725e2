//! The policy: indicators, allowlists and access control, built from a config off the hot
//! path and then immutable. The server holds it behind an `ArcSwap` and swaps in a new one on
//! reload, so a lookup never waits on a rebuild.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use ipnet::IpNet;

use crate::config::{Action, BlockConfig, Config, FeedConfig, FeedFormat, InspectConfig};
use crate::domain::normalize_pattern;
use crate::feed::{self, Indicator, IpIndicator, LineMeta, Meta, Report, Skipped};
use crate::matcher::NameTable;
use crate::meta::{MetaStore, Source};

/// What loading one feed gave, for `validate`, `feeds` and the start-up log.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    pub name: String,
    /// The file or URL.
    pub source: String,
    /// The file the data was read from (the cached copy, for a remote feed).
    pub path: PathBuf,
    pub format: FeedFormat,
    pub indicators: usize,
    pub skipped: BTreeMap<String, usize>,
    pub ignored: BTreeMap<String, usize>,
    /// Indicators dropped by the feed's filters, by filter.
    pub filtered: BTreeMap<String, usize>,
    /// The first few skipped lines, with their line numbers, to show the user.
    pub first_skips: Vec<Skipped>,
    /// Modification time of the data read.
    pub data_time: Option<std::time::SystemTime>,
    /// Why a remote feed has no data yet.
    pub missing: Option<String>,
}

/// Why a listed name was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Client(IpNet),
    Domain(String),
    /// A feed's own exemption (RPZ `rpz-passthru.`).
    FeedPassthru {
        feed: String,
        name: String,
    },
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowRule::Client(net) => write!(f, "allow.clients {net}"),
            AllowRule::Domain(d) => write!(f, "allow.domains {d}"),
            AllowRule::FeedPassthru { feed, name } => {
                write!(f, "rpz-passthru {name} in feed {feed}")
            }
        }
    }
}

/// The indicator records of a hit: almost always one or two, kept inline.
pub type Recs = smallvec::SmallVec<[u32; 4]>;

/// An indicator hit: the listed name that covered the query and the records listing it.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    pub indicator: &'a str,
    pub wildcard: bool,
    recs: Recs,
    policy: &'a Policy,
}

impl Match<'_> {
    /// The indicator records, in config order.
    pub fn recs(&self) -> &[u32] {
        &self.recs
    }

    /// The action to take: the first source that blocks decides how; a name listed only by
    /// observe-only feeds is only logged.
    pub fn action(&self) -> Action {
        self.recs
            .iter()
            .map(|&r| self.policy.action_of(r))
            .find(|a| *a != Action::Log)
            .unwrap_or(Action::Log)
    }

    /// All feed names listing it, comma-separated, in config order of first listing.
    pub fn feeds(&self) -> String {
        let mut out = String::new();
        self.feeds_into(&mut out);
        out
    }

    /// [`Match::feeds`], appended to `out` without allocating.
    pub fn feeds_into(&self, out: &mut String) {
        let mut first = true;
        for (i, &r) in self.recs.iter().enumerate() {
            let feed = self.policy.feed_of(r);
            if self.recs[..i]
                .iter()
                .any(|&earlier| self.policy.feed_of(earlier) == feed)
            {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(self.policy.meta.feed_name(feed));
        }
    }

    /// The records, taken.
    pub fn into_recs(self) -> Recs {
        self.recs
    }

    /// Every source listing it, readable.
    pub fn sources(&self) -> Vec<Source> {
        self.recs
            .iter()
            .map(|&r| self.policy.source_of(r))
            .collect()
    }

    /// The action each source asks for, in the same order as [`Match::sources`].
    pub fn source_actions(&self) -> Vec<Action> {
        self.recs
            .iter()
            .map(|&r| self.policy.action_of(r))
            .collect()
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
    indicators: NameTable,
    meta: MetaStore,
    /// Effective action per metadata record.
    actions: Vec<Action>,
    /// Per feed: its metadata defaults and action, for indicators that carry nothing else.
    feed_plain: Vec<(LineMeta, Action)>,
    allow_domains: NameTable,
    allow_rules: Vec<AllowRule>,
    allow_clients: Vec<IpNet>,
    access: Vec<IpNet>,
    /// `ip:port` indicators, kept for answer inspection, with their feed.
    pub ip_indicators: Vec<(Arc<str>, IpIndicator)>,
    ips: FxHashMap<IpAddr, u32>,
    /// What to inspect in forwarded answers.
    pub inspect: InspectConfig,
    pub block: BlockConfig,
    pub feeds: Vec<FeedStatus>,
    /// Distinct per build: cached answers checked clean under one policy are checked again
    /// under the next.
    pub generation: u64,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Policy {
    /// Reads every feed of `config` and builds the policy. An unreadable local feed or an
    /// unparseable document is an error naming where; bad lines are skipped and counted.
    pub fn build(config: &Config) -> Result<Policy, String> {
        Policy::build_like(config, None)
    }

    /// [`Policy::build`], with tables sized like `previous` (a reload), so the rebuild does
    /// not grow them by doubling while the running policy still holds its own.
    pub fn build_like(config: &Config, previous: Option<&Policy>) -> Result<Policy, String> {
        let mut policy = Policy {
            indicators: previous
                .map_or_else(NameTable::default, |p| NameTable::sized_like(&p.indicators)),
            meta: MetaStore::default(),
            actions: Vec::new(),
            feed_plain: Vec::new(),
            allow_domains: NameTable::default(),
            allow_rules: Vec::new(),
            allow_clients: config.allow.clients.clone(),
            access: config.server.allow_clients.clone(),
            ip_indicators: Vec::new(),
            ips: FxHashMap::default(),
            inspect: config.inspect.clone(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            block: config.block.clone(),
            feeds: Vec::new(),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for feed_cfg in &config.feeds {
            let path = match &feed_cfg.path {
                Some(p) => p.clone(),
                None => {
                    crate::remote::cache_path(&config.download.cache_dir, feed_cfg.name.get_ref())
                }
            };
            let data_time = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let at = || {
                format!(
                    "{}: feed {:?}",
                    config.at(feed_cfg.name.span().start),
                    feed_cfg.name.get_ref()
                )
            };
            let (status, missing) = match policy.add_feed(config, feed_cfg, &path, now) {
                Ok(status) => (status, None),
                // A remote feed without a cached copy yet is empty until its first download.
                Err(feed::ParseFileError::Io(e)) if feed_cfg.path.is_none() => {
                    let why = format!("no cached copy yet ({}: {e})", path.display());
                    let empty = policy.add_feed_report(feed_cfg, Report::default());
                    (empty, Some(why))
                }
                Err(feed::ParseFileError::Io(e)) => {
                    return Err(format!("{}: cannot read {}: {e}", at(), path.display()));
                }
                Err(feed::ParseFileError::Parse(e)) => {
                    return Err(format!("{}: {}: {e}", at(), path.display()));
                }
            };
            policy.feeds.push(FeedStatus {
                path,
                data_time,
                missing,
                ..status
            });
        }
        for entry in &config.allow.domains {
            // Validated in Config::parse; a failure here would be a bug, so skip rather than panic.
            if let Ok(p) = normalize_pattern(entry.get_ref()) {
                let rule = AllowRule::Domain(entry.get_ref().trim().to_ascii_lowercase());
                policy.add_allow(&p.name, p.below_only, rule);
            }
        }
        policy.indicators.shrink_to_fit();
        policy.meta.shrink_to_fit();
        policy.actions.shrink_to_fit();
        Ok(policy)
    }

    /// The feed index of an indicator value.
    fn feed_of(&self, value: u32) -> u16 {
        match plain_parts(value) {
            Some((feed, _)) => feed,
            None => self.meta.feed_and_action(value).0,
        }
    }

    fn action_of(&self, value: u32) -> Action {
        match plain_parts(value) {
            Some((feed, _)) => self.feed_plain[feed as usize].1,
            None => self.actions[value as usize],
        }
    }

    fn source_of(&self, value: u32) -> Source {
        match plain_parts(value) {
            Some((feed, line)) => Source {
                feed: self.meta.feed_name(feed).into(),
                action: None,
                meta: self.feed_plain[feed as usize].0.clone(),
                line: line as usize,
            },
            None => self.meta.source(value),
        }
    }

    fn add_allow(&mut self, name: &str, below_only: bool, rule: AllowRule) {
        self.allow_domains
            .insert(name, below_only, self.allow_rules.len() as u32);
        self.allow_rules.push(rule);
    }

    /// Parses one feed's text straight into the tables (no intermediate list, so a big
    /// feed costs its compact form, not its parsed form), applying the feed's filters.
    fn add_feed(
        &mut self,
        config: &Config,
        cfg: &FeedConfig,
        path: &std::path::Path,
        now: i64,
    ) -> Result<FeedStatus, feed::ParseFileError> {
        let feed_index = self.meta.add_feed(cfg.name.get_ref());
        let defaults = Meta {
            threat_type: cfg.threat_type.as_deref().map(Cow::Borrowed),
            malware: cfg.malware.as_deref().map(Cow::Borrowed),
            confidence: cfg.confidence,
            first_seen: cfg.first_seen.as_deref().map(Cow::Borrowed),
            reference: cfg.reference.as_deref().map(Cow::Borrowed),
            ..Meta::default()
        };
        let global = config.block.action;
        let feed_action = cfg.action.unwrap_or(global);
        self.feed_plain
            .push((defaults.to_owned_meta(), feed_action));
        let mut filtered = BTreeMap::new();
        let mut loaded = 0;
        let (names, store, actions) = (&mut self.indicators, &mut self.meta, &mut self.actions);
        // Lines without metadata of their own all pass or fail the filters alike.
        let plain_filtered = filter_out(cfg, &defaults, now);
        let mut sink = |ind: Indicator<'_>| {
            // One listing per feed and name is enough (a host behind many URL IOCs, say).
            let listed_here = names.exact(&ind.pattern.name).any(|(v, below)| {
                below == ind.pattern.below_only
                    && plain_parts(v).map_or_else(|| store.feed_and_action(v).0, |(f, _)| f)
                        == feed_index
            });
            if listed_here {
                *filtered
                    .entry("listed again in this feed".to_string())
                    .or_default() += 1;
                return;
            }
            // Lines that say nothing of their own cost no metadata record at all.
            if ind.meta == Meta::default()
                && ind.action.is_none()
                && let Some(value) = plain_value(feed_index, ind.line)
            {
                match &plain_filtered {
                    None => {
                        names.insert(&ind.pattern.name, ind.pattern.below_only, value);
                        loaded += 1;
                    }
                    Some(why) => *filtered.entry(why.clone()).or_default() += 1,
                }
                return;
            }
            let meta = ind.meta.or(&defaults);
            if let Some(why) = filter_out(cfg, &meta, now) {
                *filtered.entry(why).or_default() += 1;
                return;
            }
            // A feed's explicit action wins; observe-only mode observes even RPZ's own actions.
            let action = cfg
                .action
                .or(if global == Action::Log {
                    None
                } else {
                    ind.action
                })
                .unwrap_or(global);
            let rec = store.add(feed_index, ind.action, &meta, ind.line);
            actions.push(action);
            names.insert(&ind.pattern.name, ind.pattern.below_only, rec);
            loaded += 1;
        };
        let report = feed::parse_file(path, cfg.format, &mut sink)?;
        let mut status = self.add_feed_report(cfg, report);
        status.indicators = loaded;
        status.filtered = filtered;
        Ok(status)
    }

    /// What a feed's parse set aside (exemptions, IP indicators), and its status. For a
    /// feed with no data yet this registers the feed with nothing in it.
    fn add_feed_report(&mut self, cfg: &FeedConfig, report: Report) -> FeedStatus {
        for pass in &report.passthru {
            let rule = AllowRule::FeedPassthru {
                feed: cfg.name.get_ref().clone(),
                name: pass.name.clone(),
            };
            self.add_allow(&pass.name, pass.below_only, rule);
        }
        let feed_name: Arc<str> = cfg.name.get_ref().as_str().into();
        for ip in &report.ips {
            self.ips
                .entry(ip.ip)
                .or_insert(self.ip_indicators.len() as u32);
            self.ip_indicators.push((feed_name.clone(), ip.clone()));
        }
        FeedStatus {
            name: cfg.name.get_ref().clone(),
            source: cfg.source(),
            path: PathBuf::new(),
            format: report.format.unwrap_or(cfg.format),
            indicators: report.indicators,
            skipped: report.skipped_by_reason.clone(),
            ignored: report.ignored.clone(),
            filtered: BTreeMap::new(),
            first_skips: report.skipped.iter().take(5).cloned().collect(),
            data_time: None,
            missing: None,
        }
    }

    /// Distinct listed names across all feeds.
    pub fn indicator_count(&self) -> usize {
        self.indicators.len()
    }

    /// The `ip:port` indicator listing an address, with its feed.
    pub fn ip_indicator(&self, ip: IpAddr) -> Option<&(Arc<str>, IpIndicator)> {
        let i = *self.ips.get(&ip.to_canonical())?;
        self.ip_indicators.get(i as usize)
    }

    /// Whether any indicator lists this address (cheap: for cached answers).
    pub fn lists_ip(&self, ip: IpAddr) -> bool {
        !self.ips.is_empty() && self.ips.contains_key(&ip.to_canonical())
    }

    /// Whether `client` is allowlisted (never blocked).
    pub fn client_allowlisted(&self, client: IpAddr) -> bool {
        self.client_rule(client).is_some()
    }

    /// The `allow.clients` network covering `client`, if any.
    fn client_rule(&self, client: IpAddr) -> Option<&IpNet> {
        let client = client.to_canonical();
        self.allow_clients.iter().find(|n| n.contains(&client))
    }

    /// Whether a name is covered by a domain allow rule.
    pub fn domain_allowlisted(&self, key: &str) -> bool {
        self.allow_domains.lookup(key).is_some()
    }

    /// Whether `client` may query at all.
    pub fn admits(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.access.iter().any(|n| n.contains(&client))
    }

    /// A match rebuilt from its parts (for the block-log writer).
    pub fn match_of<'a>(&'a self, indicator: &'a str, wildcard: bool, recs: Recs) -> Match<'a> {
        Match {
            indicator,
            wildcard,
            recs,
            policy: self,
        }
    }

    /// The indicator covering a normalized name, if any, ignoring allow rules.
    pub fn lookup(&self, key: &str) -> Option<Match<'_>> {
        let hit = self.indicators.lookup(key)?;
        let mut recs: Recs = hit.values().collect();
        recs.reverse(); // the table keeps newest first; sources read in config order
        Some(Match {
            indicator: hit.listed,
            wildcard: hit.wildcard_only(),
            recs,
            policy: self,
        })
    }

    /// Decides one query. Precedence: client allowlist > domain allowlist > indicator.
    pub fn decide(&self, key: &str, client: IpAddr) -> Decision<'_> {
        if !self.admits(client) {
            return Decision::Refuse;
        }
        let Some(hit) = self.lookup(key) else {
            return Decision::Forward;
        };
        if let Some(net) = self.client_rule(client) {
            return Decision::Allow(hit, AllowRule::Client(*net));
        }
        if let Some(allow) = self.allow_domains.lookup(key)
            && let Some(rule) = allow.values().next()
        {
            let rule = self.allow_rules[rule as usize].clone();
            return Decision::Allow(hit, rule);
        }
        match hit.action() {
            Action::Log => Decision::Observe(hit),
            _ => Decision::Block(hit),
        }
    }
}

/// Indicator values with the top bit set are "plain": feed index and line packed in, no
/// metadata record (7 bits of feed, 24 of line).
const PLAIN: u32 = 1 << 31;

fn plain_value(feed: u16, line: usize) -> Option<u32> {
    (feed < 128 && line < 1 << 24).then(|| PLAIN | (u32::from(feed) << 24) | line as u32)
}

fn plain_parts(value: u32) -> Option<(u16, u32)> {
    (value & PLAIN != 0).then_some((((value >> 24) & 0x7f) as u16, value & 0x00ff_ffff))
}

/// Which filter of the feed, if any, drops an indicator.
fn filter_out(cfg: &FeedConfig, meta: &Meta<'_>, now: i64) -> Option<String> {
    if let Some(min) = cfg.min_confidence
        && meta.confidence.unwrap_or(0) < min
    {
        return Some(format!("confidence below {min}"));
    }
    if let Some(types) = &cfg.threat_types
        && !meta
            .threat_type
            .as_deref()
            .is_some_and(|t| types.iter().any(|w| w.eq_ignore_ascii_case(t)))
    {
        return Some(format!("threat type not in {types:?}"));
    }
    if let Some(days) = cfg.max_age_days {
        let seen = meta
            .last_seen
            .as_deref()
            .or(meta.first_seen.as_deref())
            .and_then(crate::meta::parse_time)
            .map(|t| t.unix_timestamp());
        match seen {
            Some(secs) if now - secs > i64::from(days) * 86_400 => {
                return Some(format!("last/first seen more than {days} days ago"));
            }
            None => return Some("no date to apply max_age_days to".into()),
            _ => {}
        }
    }
    None
}
