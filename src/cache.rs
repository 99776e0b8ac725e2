//! The answer cache: upstream answers keyed by question and the client's DNSSEC/EDNS flags,
//! kept for their TTL (negative answers for the SOA minimum, RFC 2308). Entries are stored
//! encoded, with the offsets of their TTLs, so a hit is served by copying the bytes and
//! patching ID, question spelling and TTLs. Bounded by entry count; quick_cache shards it,
//! so lookups do not contend on one lock.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

use crate::config::CacheConfig;
use crate::policy::Policy;
use crate::upstream::QueryFlags;
use crate::wire;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The normalized name (lower-case dotted text), so case variants share an entry.
    pub name: Box<str>,
    pub qtype: u16,
    pub qclass: u16,
    pub flags: QueryFlags,
    /// Whether the client sent EDNS (the stored answer carries OPT or not).
    pub edns: bool,
}

pub struct Entry {
    wire: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    stored: Instant,
    ttl: u32,
    /// CNAME/DNAME targets (normalized) and addresses in the answer, for re-inspection.
    targets: Box<[Box<str>]>,
    addrs: Box<[IpAddr]>,
    /// The policy generation under which nothing in the answer was listed (0: none yet).
    clean_in: AtomicU64,
}

impl Entry {
    /// Whether nothing in this answer is listed by `policy` (checked once per policy: a
    /// reload that lists a CNAME target or an address makes the next hit re-inspect).
    pub fn clean_under(&self, policy: &Policy) -> bool {
        if self.clean_in.load(Ordering::Relaxed) == policy.generation {
            return true;
        }
        let listed = (policy.inspect.cname
            && self.targets.iter().any(|t| policy.lookup(t).is_some()))
            || (policy.inspect.ip && self.addrs.iter().any(|&ip| policy.lists_ip(ip)));
        if !listed {
            self.clean_in.store(policy.generation, Ordering::Relaxed);
        }
        !listed
    }

    /// Seconds since stored, or None once expired.
    fn age(&self) -> Option<u32> {
        let age = self.stored.elapsed().as_secs();
        (age < u64::from(self.ttl)).then_some(age as u32)
    }

    /// Writes this answer for the query in `packet` (same name, any case) into `out`, if it
    /// is still fresh and fits in `max` bytes.
    pub fn serve(&self, packet: &[u8], name_end: usize, max: usize, out: &mut Vec<u8>) -> bool {
        let Some(age) = self.age() else { return false };
        if self.wire.len() > max || self.wire.len() < name_end || packet.len() < name_end {
            return false;
        }
        out.clear();
        out.extend_from_slice(&self.wire);
        out[..2].copy_from_slice(&packet[..2]);
        out[12..name_end].copy_from_slice(&packet[12..name_end]);
        wire::age_ttls(out, &self.ttl_offsets, age);
        true
    }

    /// The answer as a message, TTLs counted down (for the full path).
    pub fn message(&self) -> Option<Message> {
        let age = self.age()?;
        let mut bytes = self.wire.to_vec();
        wire::age_ttls(&mut bytes, &self.ttl_offsets, age);
        Message::from_vec(&bytes).ok()
    }
}

pub struct Cache {
    inner: Option<quick_cache::sync::Cache<CacheKey, Arc<Entry>>>,
    max_ttl: u32,
    max_negative_ttl: u32,
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Cache {
        Cache {
            inner: (config.size > 0).then(|| quick_cache::sync::Cache::new(config.size)),
            max_ttl: config.max_ttl,
            max_negative_ttl: config.max_negative_ttl,
        }
    }

    /// The entry for a key, fresh or not (the caller checks as it serves).
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.inner.as_ref()?.get(key)
    }

    /// Stores an answer as relayed to a client (`relayed`, encoded in full as `wire`) if the
    /// upstream's answer may be cached, for as long as it may be.
    pub fn insert(&self, key: CacheKey, relayed: &Message, wire_bytes: &[u8]) {
        let Some(inner) = &self.inner else { return };
        let Some(ttl) = self.ttl_of(relayed).filter(|&t| t > 0) else {
            return;
        };
        let Some(offsets) = wire::ttl_offsets(wire_bytes) else {
            return;
        };
        let mut targets = Vec::new();
        let mut addrs = Vec::new();
        for r in &relayed.answers {
            match &r.data {
                RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
                other => {
                    targets.extend(crate::answer::chain_target(other).map(String::into_boxed_str))
                }
            }
        }
        inner.insert(
            key,
            Arc::new(Entry {
                wire: wire_bytes.into(),
                ttl_offsets: offsets.into(),
                stored: Instant::now(),
                ttl,
                targets: targets.into(),
                addrs: addrs.into(),
                clean_in: AtomicU64::new(0),
            }),
        );
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long an answer may be kept: the smallest answer TTL, or for NXDOMAIN/NODATA the
    /// SOA's min(TTL, MINIMUM). Answers without either are not cached.
    fn ttl_of(&self, answer: &Message) -> Option<u32> {
        if answer.metadata.truncation {
            return None;
        }
        match answer.metadata.response_code {
            ResponseCode::NoError if !answer.answers.is_empty() => answer
                .answers
                .iter()
                .map(|r| r.ttl)
                .min()
                .map(|t| t.min(self.max_ttl)),
            ResponseCode::NoError | ResponseCode::NXDomain => answer
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })
                .map(|t| t.min(self.max_negative_ttl)),
            _ => None,
        }
    }
}
