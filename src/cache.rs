//! The answer cache: upstream answers keyed by question and DNSSEC flags, kept for their TTL
//! (negative answers for the SOA minimum, RFC 2308) and served with TTLs counted down.
//! Bounded by entry count; quick_cache shards it, so lookups do not contend on one lock.

use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record};

use crate::config::CacheConfig;
use crate::upstream::QueryFlags;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Lower-case wire-format name, so case variants share an entry.
    pub name: Box<[u8]>,
    pub qtype: u16,
    pub qclass: u16,
    pub flags: QueryFlags,
}

struct Entry {
    answer: Message,
    stored: Instant,
    ttl: u32,
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

    /// A cached answer with its TTLs counted down, if one is still fresh.
    pub fn get(&self, key: &CacheKey) -> Option<Message> {
        let entry = self.inner.as_ref()?.get(key)?;
        let age = entry.stored.elapsed().as_secs();
        if age >= u64::from(entry.ttl) {
            return None;
        }
        let mut answer = entry.answer.clone();
        age_records(&mut answer, age as u32);
        Some(answer)
    }

    /// Stores an upstream answer if it may be cached, for as long as it may be.
    pub fn insert(&self, key: CacheKey, answer: &Message) {
        let Some(inner) = &self.inner else { return };
        if let Some(ttl) = self.ttl_of(answer).filter(|&t| t > 0) {
            inner.insert(
                key,
                Arc::new(Entry {
                    answer: answer.clone(),
                    stored: Instant::now(),
                    ttl,
                }),
            );
        }
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

fn age_records(answer: &mut Message, age: u32) {
    let age_one = |r: &mut Record| r.ttl = r.ttl.saturating_sub(age);
    answer.answers.iter_mut().for_each(age_one);
    answer.authorities.iter_mut().for_each(age_one);
    answer.additionals.iter_mut().for_each(age_one);
}
