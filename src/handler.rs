//! The request path, from packet to answer, transport-agnostic:
//! parse -> access control -> policy verdict -> blocked answer | cache | upstream.
//!
//! Split in two so the socket loops can answer everything local (blocks, cache hits, errors)
//! inline and spawn a task only for what must wait on an upstream.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::answer::{self, BlockAnswer};
use crate::blocklog::{self, BlockLog, Event};
use crate::cache::{Cache, CacheKey};
use crate::config::Action;
use crate::feed::LineMeta;
use crate::policy::{Decision, Match, Policy};
use crate::upstream::{QueryFlags, Upstream};

/// Largest answer over UDP to a client without EDNS (RFC 1035).
const PLAIN_UDP_MAX: usize = 512;
const TCP_MAX: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What the first, synchronous half decided.
pub enum Outcome {
    /// Answer now with these bytes.
    Reply(Vec<u8>),
    /// No answer is possible (not a query, or too short to echo).
    Drop,
    /// Needs the upstream; finish with [`Handler::forward`].
    Forward(Box<Pending>),
}

/// A query waiting on the upstream.
pub struct Pending {
    request: Message,
    key: CacheKey,
    max_size: usize,
    /// The event to log once the answer is known (for "allowed" and "logged" hits).
    event: Option<Event>,
}

pub struct Handler {
    policy: Arc<ArcSwap<Policy>>,
    upstream: Arc<Upstream>,
    cache: Cache,
    log: BlockLog,
    inflight: Arc<Semaphore>,
}

impl Handler {
    pub fn new(
        policy: Arc<ArcSwap<Policy>>,
        upstream: Arc<Upstream>,
        cache: Cache,
        log: BlockLog,
        max_inflight: usize,
    ) -> Handler {
        Handler {
            policy,
            upstream,
            cache,
            log,
            inflight: Arc::new(Semaphore::new(max_inflight)),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn log(&self) -> &BlockLog {
        &self.log
    }

    /// A slot for one upstream query, or None when `server.max_inflight` are already out.
    pub fn try_reserve(&self) -> Option<OwnedSemaphorePermit> {
        self.inflight.clone().try_acquire_owned().ok()
    }

    /// Both halves in one call, for TCP and tests.
    pub async fn handle(&self, packet: &[u8], src: SocketAddr, proto: Protocol) -> Option<Vec<u8>> {
        match self.begin(packet, src, proto) {
            Outcome::Reply(bytes) => Some(bytes),
            Outcome::Drop => None,
            Outcome::Forward(pending) => {
                let permit = self.try_reserve();
                Some(self.forward(pending, permit.is_some()).await)
            }
        }
    }

    /// The synchronous half: everything that needs no upstream.
    pub fn begin(&self, packet: &[u8], src: SocketAddr, proto: Protocol) -> Outcome {
        // Responses sent to us are never answered (RFC 1035; also stops reflection loops).
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return Outcome::Drop;
        }
        let policy = self.policy.load();
        let admitted = policy.admits(src.ip());
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) if admitted => {
                return reply_or_drop(answer::raw_error(packet, ResponseCode::FormErr));
            }
            Err(_) => return Outcome::Drop,
        };
        let max_size = match proto {
            Protocol::Tcp => TCP_MAX,
            Protocol::Udp => request.edns.as_ref().map_or(PLAIN_UDP_MAX, |e| {
                usize::from(e.max_payload().clamp(512, crate::upstream::EDNS_PAYLOAD))
            }),
        };
        let error = |rcode| {
            Outcome::Reply(answer::encode(
                &answer::response_to(&request, rcode),
                max_size,
            ))
        };
        if !admitted {
            return error(ResponseCode::Refused);
        }
        if request.metadata.message_type != MessageType::Query {
            return Outcome::Drop;
        }
        if request.metadata.op_code != OpCode::Query {
            return error(ResponseCode::NotImp);
        }
        if request.queries.len() != 1 {
            return error(ResponseCode::FormErr);
        }
        let question = &request.queries[0];
        // Zone transfers are not ours to give, and non-Internet classes have no upstream.
        if matches!(question.query_type(), RecordType::AXFR | RecordType::IXFR)
            || question.query_class() != DNSClass::IN
        {
            return error(ResponseCode::Refused);
        }

        let mut key_text = String::with_capacity(64);
        let listed = crate::domain::query_key(question.name(), &mut key_text);
        let decision = if listed {
            policy.decide(&key_text, src.ip())
        } else {
            Decision::Forward
        };
        let event = match decision {
            Decision::Refuse => return error(ResponseCode::Refused),
            Decision::Block(hit) => {
                let how = match hit.action() {
                    Action::Sinkhole => BlockAnswer::Sinkhole {
                        v4: policy.block.sinkhole_ipv4,
                        v6: policy.block.sinkhole_ipv6,
                    },
                    Action::Nodata => BlockAnswer::Nodata,
                    Action::Nxdomain | Action::Log => BlockAnswer::Nxdomain,
                };
                let reason = format!("iocsink: {} listed by {}", hit.indicator, hit.feeds());
                let msg = answer::blocked(&request, how, hit.indicator, policy.block.ttl, &reason);
                let action = match how {
                    BlockAnswer::Nxdomain => "nxdomain",
                    BlockAnswer::Sinkhole { .. } => "sinkhole",
                    BlockAnswer::Nodata => "nodata",
                };
                let event = make_event(&key_text, &request, src, proto, &hit, action, None);
                self.log.record(Event {
                    result_code: u16::from(msg.metadata.response_code),
                    ip_addresses: answer::addresses(&msg),
                    ..event
                });
                return Outcome::Reply(answer::encode(&msg, max_size));
            }
            Decision::Observe(hit) => Some(make_event(
                &key_text, &request, src, proto, &hit, "logged", None,
            )),
            Decision::Allow(hit, rule) => Some(make_event(
                &key_text,
                &request,
                src,
                proto,
                &hit,
                "allowed",
                Some(rule.to_string()),
            )),
            Decision::Forward => None,
        };
        drop(policy);

        let key = cache_key(&request);
        if let Some(cached) = self.cache.get(&key) {
            let msg = answer::relayed(&request, &cached);
            self.record_forwarded(event, &msg);
            return Outcome::Reply(answer::encode(&msg, max_size));
        }
        Outcome::Forward(Box::new(Pending {
            request,
            key,
            max_size,
            event,
        }))
    }

    /// The asynchronous half: ask the upstream, cache, relay. `admitted` is false when the
    /// in-flight limit was reached; the client then gets SERVFAIL at once.
    pub async fn forward(&self, pending: Box<Pending>, admitted: bool) -> Vec<u8> {
        let Pending {
            request,
            key,
            max_size,
            event,
        } = *pending;
        let result = if admitted {
            self.upstream.resolve(&request.queries[0], key.flags).await
        } else {
            Err("too many upstream queries in flight".into())
        };
        let msg = match result {
            Ok(upstream) => {
                self.cache.insert(key, &upstream);
                answer::relayed(&request, &upstream)
            }
            Err(e) => {
                tracing::debug!(error = %e, name = %request.queries[0].name(), "forward failed");
                answer::response_to(&request, ResponseCode::ServFail)
            }
        };
        self.record_forwarded(event, &msg);
        answer::encode(&msg, max_size)
    }

    fn record_forwarded(&self, event: Option<Event>, msg: &Message) {
        if let Some(event) = event {
            self.log.record(Event {
                result_code: u16::from(msg.metadata.response_code),
                ip_addresses: answer::addresses(msg),
                ..event
            });
        }
    }
}

fn reply_or_drop(bytes: Option<Vec<u8>>) -> Outcome {
    bytes.map_or(Outcome::Drop, Outcome::Reply)
}

fn cache_key(request: &Message) -> CacheKey {
    let q = &request.queries[0];
    let mut name = Vec::with_capacity(64);
    for label in q.name().iter() {
        name.push(label.len() as u8);
        name.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    CacheKey {
        name: name.into_boxed_slice(),
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
        flags: QueryFlags {
            recursion_desired: request.metadata.recursion_desired,
            checking_disabled: request.metadata.checking_disabled,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        },
    }
}

fn make_event(
    name: &str,
    request: &Message,
    src: SocketAddr,
    proto: Protocol,
    hit: &Match<'_>,
    action: &str,
    allow_rule: Option<String>,
) -> Event {
    let sources = hit.sources();
    let first = |f: fn(&LineMeta) -> Option<&Arc<str>>| {
        sources
            .iter()
            .find_map(|s| f(&s.meta))
            .map(|v| v.to_string())
    };
    let client = src.ip().to_canonical().to_string();
    Event {
        time_generated: blocklog::now_rfc3339(),
        computer: client.clone(),
        client_ip: client,
        name: name.to_string(),
        query_type: answer::type_name(request.queries[0].query_type()),
        result_code: 0,
        ip_addresses: String::new(),
        action: action.to_string(),
        indicator: if hit.wildcard {
            format!("*.{}", hit.indicator)
        } else {
            hit.indicator.to_string()
        },
        feed: hit.feeds(),
        malware_family: first(|m| m.malware.as_ref()),
        threat_type: first(|m| m.threat_type.as_ref()),
        confidence: sources.iter().find_map(|s| s.meta.confidence),
        first_seen: first(|m| m.first_seen.as_ref()),
        last_seen: first(|m| m.last_seen.as_ref()),
        reference: first(|m| m.reference.as_ref()),
        tags: first(|m| m.tags.as_ref()),
        ioc_id: first(|m| m.ioc_id.as_ref()),
        allow_rule,
        protocol: proto.as_str().to_string(),
    }
}
