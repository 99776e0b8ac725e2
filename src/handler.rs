//! The request path, from packet to answer, transport-agnostic:
//! parse -> access control -> policy verdict -> blocked answer | cache | upstream.
//!
//! Two tiers. Ordinary queries for blocked names and cached answers take a byte-level fast
//! path ([`crate::wire`]): no message is parsed into owned structures and the answer is
//! written straight into bytes. Everything else (errors, allowed or observed hits, odd
//! packets) takes the full path through hickory-proto. And two halves, so the socket loops
//! answer everything local inline and spawn a task only for what waits on an upstream.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use arrayvec::ArrayString;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::answer::{self, BlockAnswer};
use crate::blocklog::{BlockLog, Pending as PendingEvent};
use crate::cache::{Cache, CacheKey};
use crate::config::{Action, IpAction};
use crate::metrics::Metrics;
use crate::policy::{Decision, Match, Policy};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::upstream::{EDNS_PAYLOAD, QueryFlags, Upstream};
use crate::wire::{self, Blocked, QueryView};

thread_local! {
    /// Scratch space for Extended DNS Error texts, so a block allocates none.
    static REASON: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(256));
}

/// Largest answer over UDP to a client without EDNS (RFC 1035).
const PLAIN_UDP_MAX: usize = 512;
const TCP_MAX: usize = 65_535;
/// Longest Extended DNS Error text we send.
const MAX_REASON: usize = 200;

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

    /// Largest answer a client can take: 64 KiB over TCP; over UDP its EDNS payload (at
    /// least 512, at most what we advertise), or 512 without EDNS.
    fn max_size(self, edns_payload: Option<u16>) -> usize {
        match (self, edns_payload) {
            (Protocol::Tcp, _) => TCP_MAX,
            (Protocol::Udp, Some(p)) => usize::from(p.clamp(512, EDNS_PAYLOAD)),
            (Protocol::Udp, None) => PLAIN_UDP_MAX,
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
    client: IpAddr,
    proto: Protocol,
    /// The event to log once the answer is known (for "allowed" and "logged" hits).
    event: Option<PendingEvent>,
}

pub struct Handler {
    querylog: Option<crate::querylog::QueryLog>,
    metrics: Arc<Metrics>,
    limiter: Option<RateLimiter>,
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
            querylog: None,
            metrics: Arc::new(Metrics::new(&[])),
            limiter: None,
            policy,
            upstream,
            cache,
            log,
            inflight: Arc::new(Semaphore::new(max_inflight)),
        }
    }

    /// Logs every answer to the query log.
    pub fn with_query_log(mut self, log: Option<crate::querylog::QueryLog>) -> Handler {
        self.querylog = log;
        self
    }

    /// Counts queries into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Handler {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Limits UDP queries per client (see [`crate::ratelimit`]).
    pub fn with_rate_limit(mut self, limiter: Option<RateLimiter>) -> Handler {
        self.limiter = limiter;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn log(&self) -> &BlockLog {
        &self.log
    }

    /// Stores `answer` as the upstream's answer to `query` (for benchmarks and tests).
    pub fn prime_cache(&self, query: &[u8], answer: &Message) {
        if let Ok(request) = Message::from_vec(query) {
            let relayed = answer::relayed(&request, answer);
            let bytes = answer::encode(&relayed, TCP_MAX);
            self.cache.insert(cache_key(&request), &relayed, &bytes);
        }
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
        let outcome = self.answer(packet, src, proto);
        match &outcome {
            Outcome::Drop => self.count(crate::metrics::Result::Dropped, 0, proto),
            Outcome::Reply(bytes) => {
                if let Some(log) = &self.querylog {
                    log.record(src.ip(), bytes, proto.as_str());
                }
            }
            // Logged when the upstream's answer is sent (see `forward`).
            Outcome::Forward(_) => {}
        }
        outcome
    }

    fn count(&self, result: crate::metrics::Result, qtype: u16, proto: Protocol) {
        self.metrics.query(result, qtype, proto == Protocol::Tcp);
    }

    fn answer(&self, packet: &[u8], src: SocketAddr, proto: Protocol) -> Outcome {
        // Responses sent to us are never answered (RFC 1035; also stops reflection loops).
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return Outcome::Drop;
        }
        if proto == Protocol::Udp
            && let Some(limiter) = &self.limiter
        {
            match limiter.check(src.ip()) {
                Verdict::Allow => {}
                Verdict::Drop => return Outcome::Drop,
                Verdict::Slip => return reply_or_drop(wire::truncated(packet)),
            }
        }
        let mut key = String::with_capacity(64);
        if let Some(q) = wire::parse_query(packet, &mut key)
            && let Some(reply) = self.fast(packet, &q, &key, src.ip(), proto)
        {
            return Outcome::Reply(reply);
        }
        self.full(packet, src, proto)
    }

    /// Blocked names and fresh cache hits for ordinary queries, straight from bytes. None
    /// sends the query down the full path (which also handles every error).
    fn fast(
        &self,
        packet: &[u8],
        q: &QueryView,
        key: &str,
        client: IpAddr,
        proto: Protocol,
    ) -> Option<Vec<u8>> {
        if q.qclass != u16::from(DNSClass::IN) || matches!(q.qtype, 251 | 252) {
            return None;
        }
        let policy = self.policy.load();
        let max = proto.max_size(q.edns.map(|e| e.0));
        match policy.decide(key, client) {
            Decision::Block(hit) => {
                let action = hit.action();
                let sink4 = policy.block.sinkhole_ipv4.octets();
                let sink6 = policy.block.sinkhole_ipv6.octets();
                let address: Option<&[u8]> = match (action, q.qtype) {
                    (Action::Sinkhole, 1) => Some(&sink4),
                    (Action::Sinkhole, 28) => Some(&sink6),
                    _ => None,
                };
                let rcode = if action == Action::Nxdomain { 3 } else { 0 };
                let mut out = Vec::with_capacity(512);
                let zone_offset = key.len() - hit.indicator.len();
                REASON.with_borrow_mut(|reason| {
                    reason.clear();
                    reason.push_str("iocsink: ");
                    reason.push_str(hit.indicator);
                    reason.push_str(" listed by ");
                    hit.feeds_into(reason);
                    truncate_text(reason);
                    let blocked = Blocked {
                        rcode,
                        address,
                        zone_offset,
                        ttl: policy.block.ttl,
                        reason,
                    };
                    wire::blocked_response(packet, q, &blocked, &mut out);
                });
                if out.len() > max {
                    return None; // a long EDE text to a small client: the full path truncates
                }
                let ip_addresses = match address {
                    Some(a) if a.len() == 4 => policy.block.sinkhole_ipv4.to_string(),
                    Some(_) => policy.block.sinkhole_ipv6.to_string(),
                    None => String::new(),
                };
                self.count(crate::metrics::Result::Blocked, q.qtype, proto);
                // The event takes the records (inline, no allocation) and a copy of the key.
                self.log.record(PendingEvent {
                    time: SystemTime::now(),
                    client,
                    name: ArrayString::from(key).unwrap_or_default(),
                    qtype: RecordType::from(q.qtype),
                    rcode: rcode.into(),
                    ip_addresses,
                    action: block_action_name(action),
                    indicator_at: zone_offset,
                    wildcard: hit.wildcard,
                    recs: hit.into_recs(),
                    policy: Arc::clone(&policy),
                    allow_rule: None,
                    protocol: proto.as_str(),
                    indicator: None,
                    via: None,
                });
                Some(out)
            }
            Decision::Forward => {
                let cache_key = CacheKey {
                    name: key[..].into(),
                    qtype: q.qtype,
                    qclass: q.qclass,
                    flags: QueryFlags {
                        recursion_desired: q.recursion_desired,
                        checking_disabled: q.checking_disabled,
                        dnssec_ok: q.edns.is_some_and(|e| e.1),
                    },
                    edns: q.edns.is_some(),
                };
                let entry = self.cache.get(&cache_key)?;
                if !entry.clean_under(&policy) {
                    return None; // something in it is listed now: the full path inspects
                }
                let mut out = Vec::with_capacity(512);
                let served = entry.serve(packet, q.name_end, max, &mut out);
                if served {
                    self.count(crate::metrics::Result::Cached, q.qtype, proto);
                }
                served.then_some(out)
            }
            Decision::Refuse | Decision::Observe(_) | Decision::Allow(..) => None,
        }
    }

    /// The full path: hickory-proto parses the query; every rule and error is handled here.
    fn full(&self, packet: &[u8], src: SocketAddr, proto: Protocol) -> Outcome {
        let policy = self.policy.load();
        let admitted = policy.admits(src.ip());
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) if admitted => {
                return reply_or_drop(answer::raw_error(packet, ResponseCode::FormErr));
            }
            Err(_) => return Outcome::Drop,
        };
        let max_size = proto.max_size(request.edns.as_ref().map(|e| e.max_payload()));
        let qtype = request
            .queries
            .first()
            .map_or(0, |q| u16::from(q.query_type()));
        let error = |rcode| {
            self.count(
                if rcode == ResponseCode::Refused {
                    crate::metrics::Result::Refused
                } else {
                    crate::metrics::Result::Error
                },
                qtype,
                proto,
            );
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

        let mut key = String::with_capacity(64);
        let listed = crate::domain::query_key(question.name(), &mut key);
        let decision = if listed {
            policy.decide(&key, src.ip())
        } else {
            Decision::Forward
        };
        let qtype = question.query_type();
        let event = match decision {
            Decision::Refuse => return error(ResponseCode::Refused),
            Decision::Block(hit) => {
                let action = hit.action();
                let how = block_answer(&policy, action);
                let mut reason = format!("iocsink: {} listed by {}", hit.indicator, hit.feeds());
                truncate_text(&mut reason);
                let msg = answer::blocked(&request, how, hit.indicator, policy.block.ttl, &reason);
                self.count(crate::metrics::Result::Blocked, u16::from(qtype), proto);
                let rcode = u16::from(msg.metadata.response_code);
                self.log.record(PendingEvent {
                    ip_addresses: answer::addresses(&msg),
                    ..self.event(
                        &policy,
                        &key,
                        qtype,
                        src.ip(),
                        proto,
                        &hit,
                        block_action_name(action),
                        None,
                        rcode,
                    )
                });
                return Outcome::Reply(answer::encode(&msg, max_size));
            }
            Decision::Observe(hit) => Some(self.event(
                &policy,
                &key,
                qtype,
                src.ip(),
                proto,
                &hit,
                "logged",
                None,
                0,
            )),
            Decision::Allow(hit, rule) => Some(self.event(
                &policy,
                &key,
                qtype,
                src.ip(),
                proto,
                &hit,
                "allowed",
                Some(rule.to_string()),
                0,
            )),
            Decision::Forward => None,
        };
        drop(policy);

        let key = cache_key(&request);
        if let Some(cached) = self.cache.get(&key).and_then(|e| e.message()) {
            let msg = answer::relayed(&request, &cached);
            if let Some(blocked) = self.inspect(&request, &msg, src.ip(), proto) {
                self.count(crate::metrics::Result::Blocked, u16::from(qtype), proto);
                return Outcome::Reply(answer::encode(&blocked, max_size));
            }
            self.count(crate::metrics::Result::Cached, u16::from(qtype), proto);
            self.record_forwarded(event, &msg);
            return Outcome::Reply(answer::encode(&msg, max_size));
        }
        Outcome::Forward(Box::new(Pending {
            request,
            key,
            max_size,
            client: src.ip(),
            proto,
            event,
        }))
    }

    /// The asynchronous half: ask the upstream, cache, relay. `admitted` is false when the
    /// in-flight limit was reached; the client then gets SERVFAIL at once.
    pub async fn forward(&self, pending: Box<Pending>, admitted: bool) -> Vec<u8> {
        let (client, proto) = (pending.client, pending.proto);
        let reply = self.forward_inner(pending, admitted).await;
        if let Some(log) = &self.querylog {
            log.record(client, &reply, proto.as_str());
        }
        reply
    }

    async fn forward_inner(&self, pending: Box<Pending>, admitted: bool) -> Vec<u8> {
        let Pending {
            request,
            key,
            max_size,
            client,
            proto,
            event,
        } = *pending;
        let result = if admitted {
            self.upstream.resolve(&request.queries[0], key.flags).await
        } else {
            Err("too many upstream queries in flight".into())
        };
        let qtype = u16::from(request.queries[0].query_type());
        let result_kind = if result.is_ok() {
            crate::metrics::Result::Forwarded
        } else {
            crate::metrics::Result::ServFail
        };
        self.count(result_kind, qtype, proto);
        let msg = match result {
            Ok(upstream) => {
                let msg = answer::relayed(&request, &upstream);
                let full = answer::encode(&msg, TCP_MAX);
                self.cache.insert(key, &msg, &full);
                if let Some(blocked) = self.inspect(&request, &msg, client, proto) {
                    return answer::encode(&blocked, max_size);
                }
                if full.len() <= max_size {
                    self.record_forwarded(event, &msg);
                    return full;
                }
                msg
            }
            Err(e) => {
                tracing::debug!(error = %e, name = %request.queries[0].name(), "forward failed");
                answer::response_to(&request, ResponseCode::ServFail)
            }
        };
        self.record_forwarded(event, &msg);
        answer::encode(&msg, max_size)
    }

    /// Looks through a forwarded answer for what the question hid: a CNAME/DNAME chain
    /// that reaches a listed name (cloaking), or an address listed by an `ip:port` IOC.
    /// Returns the answer to send instead, having logged the hit. Allowlisted clients and
    /// allowlisted query names are not inspected; allowlisted chain members are passed over.
    fn inspect(
        &self,
        request: &Message,
        answer: &Message,
        client: IpAddr,
        proto: Protocol,
    ) -> Option<Message> {
        let policy = self.policy.load_full();
        let inspect = &policy.inspect;
        if !(inspect.cname || inspect.ip)
            || answer.answers.is_empty()
            || policy.client_allowlisted(client)
        {
            return None;
        }
        let mut qname = String::with_capacity(64);
        if !crate::domain::query_key(request.queries[0].name(), &mut qname)
            || policy.domain_allowlisted(&qname)
        {
            return None;
        }
        let qtype = request.queries[0].query_type();
        let mut via = qname.clone();
        if inspect.cname {
            for record in &answer.answers {
                let Some(target) = answer::chain_target(&record.data) else {
                    continue;
                };
                via.push_str(" > ");
                via.push_str(&target);
                let (hit, action, blocking) = match policy.decide(&target, client) {
                    Decision::Block(hit) => {
                        let action = hit.action();
                        (hit, block_action_name(action), Some(action))
                    }
                    Decision::Observe(hit) => (hit, "logged", None),
                    _ => continue,
                };
                let reply = blocking.map(|a| {
                    self.cloaked_answer(&policy, request, &qname, a, hit.indicator, &hit.feeds())
                });
                let rcode = reply
                    .as_ref()
                    .map_or(u16::from(answer.metadata.response_code), |r| {
                        u16::from(r.metadata.response_code)
                    });
                let ip_addresses = answer::addresses(reply.as_ref().unwrap_or(answer));
                self.log.record(PendingEvent {
                    time: SystemTime::now(),
                    client,
                    name: ArrayString::from(&qname).unwrap_or_default(),
                    qtype,
                    rcode,
                    ip_addresses,
                    action,
                    indicator_at: 0,
                    wildcard: hit.wildcard,
                    indicator: Some(hit.indicator.into()),
                    recs: hit.into_recs(),
                    policy: policy.clone(),
                    allow_rule: None,
                    protocol: proto.as_str(),
                    via: Some(via.clone()),
                });
                if reply.is_some() {
                    return reply;
                }
            }
        }
        if inspect.ip {
            let listed = |r: &hickory_proto::rr::Record| match &r.data {
                RData::A(a) => policy.ip_indicator(IpAddr::V4(a.0)),
                RData::AAAA(a) => policy.ip_indicator(IpAddr::V6(a.0)),
                _ => None,
            };
            let (feed, ioc) = answer.answers.iter().find_map(listed)?;
            let action = policy.block.action;
            let reply = match (action, inspect.ip_action) {
                (Action::Log, _) => None,
                (_, IpAction::Strip) => {
                    let mut stripped = answer.clone();
                    stripped.answers.retain(|r| listed(r).is_none());
                    Some(stripped)
                }
                (_, IpAction::Block) => {
                    Some(self.cloaked_answer(&policy, request, &qname, action, &qname, feed))
                }
            };
            let shown = match ioc.port {
                Some(port) => std::net::SocketAddr::new(ioc.ip, port).to_string(),
                None => ioc.ip.to_string(),
            };
            via.push_str(" > ");
            via.push_str(&ioc.ip.to_string());
            let meta = &ioc.meta;
            let text = |v: &Option<Arc<str>>| v.as_deref().map(str::to_string);
            let client_text = client.to_canonical().to_string();
            let shown_reply = reply.as_ref().unwrap_or(answer);
            self.log.record_event(crate::blocklog::Event {
                time_generated: crate::blocklog::rfc3339(SystemTime::now()),
                computer: client_text.clone(),
                client_ip: client_text,
                name: qname.clone(),
                query_type: answer::type_name(qtype),
                result_code: u16::from(shown_reply.metadata.response_code),
                ip_addresses: answer::addresses(shown_reply),
                action: match (action, inspect.ip_action) {
                    (Action::Log, _) => "logged".into(),
                    (_, IpAction::Strip) => "stripped".into(),
                    (a, IpAction::Block) => block_action_name(a).into(),
                },
                indicator: shown,
                feed: feed.to_string(),
                malware_family: text(&meta.malware),
                threat_type: text(&meta.threat_type),
                confidence: meta.confidence,
                first_seen: text(&meta.first_seen),
                last_seen: text(&meta.last_seen),
                reference: text(&meta.reference),
                tags: text(&meta.tags),
                ioc_id: text(&meta.ioc_id),
                allow_rule: None,
                protocol: proto.as_str().into(),
                via: Some(via),
            });
            return reply;
        }
        None
    }

    /// The blocked answer for a query whose answer led to a listed name or address.
    fn cloaked_answer(
        &self,
        policy: &Policy,
        request: &Message,
        qname: &str,
        action: Action,
        indicator: &str,
        feeds: &str,
    ) -> Message {
        let how = block_answer(policy, action);
        let mut reason = format!("iocsink: {indicator} listed by {feeds} (in the answer)");
        truncate_text(&mut reason);
        // The SOA is owned by the queried name: the listed name is not above it.
        answer::blocked(request, how, qname, policy.block.ttl, &reason)
    }

    fn record_forwarded(&self, event: Option<PendingEvent>, msg: &Message) {
        if let Some(event) = event {
            self.log.record(PendingEvent {
                rcode: u16::from(msg.metadata.response_code),
                ip_addresses: answer::addresses(msg),
                ..event
            });
        }
    }

    /// A block-log event for a hit; the writer thread turns it into fields.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        policy: &Arc<Policy>,
        key: &str,
        qtype: RecordType,
        client: IpAddr,
        proto: Protocol,
        hit: &Match<'_>,
        action: &'static str,
        allow_rule: Option<String>,
        rcode: u16,
    ) -> PendingEvent {
        PendingEvent {
            time: SystemTime::now(),
            client,
            name: ArrayString::from(key).unwrap_or_default(),
            qtype,
            rcode,
            ip_addresses: String::new(),
            action,
            indicator_at: key.len() - hit.indicator.len(),
            wildcard: hit.wildcard,
            recs: hit.recs().into(),
            policy: policy.clone(),
            allow_rule,
            protocol: proto.as_str(),
            indicator: None,
            via: None,
        }
    }
}

/// Cuts an Extended DNS Error text to `MAX_REASON` bytes, on a character boundary.
fn truncate_text(text: &mut String) {
    let cut = (0..=text.len().min(MAX_REASON))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text.truncate(cut);
}

/// How a block with `action` is answered under `policy`.
fn block_answer(policy: &Policy, action: Action) -> BlockAnswer {
    match action {
        Action::Sinkhole => BlockAnswer::Sinkhole {
            v4: policy.block.sinkhole_ipv4,
            v6: policy.block.sinkhole_ipv6,
        },
        Action::Nodata => BlockAnswer::Nodata,
        Action::Nxdomain | Action::Log => BlockAnswer::Nxdomain,
    }
}

fn block_action_name(action: Action) -> &'static str {
    match action {
        Action::Sinkhole => "sinkhole",
        Action::Nodata => "nodata",
        Action::Nxdomain | Action::Log => "nxdomain",
    }
}

fn reply_or_drop(bytes: Option<Vec<u8>>) -> Outcome {
    bytes.map_or(Outcome::Drop, Outcome::Reply)
}

/// The cache key of a parsed query; the same as the fast path builds from bytes.
fn cache_key(request: &Message) -> CacheKey {
    let q = &request.queries[0];
    let mut name = String::with_capacity(64);
    if !crate::domain::query_key(q.name(), &mut name) {
        // Names the fast path cannot read: keyed by their lower-case wire form, marked apart.
        name = format!("\0{}", q.name().to_lowercase());
    }
    CacheKey {
        name: name.into(),
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
        flags: QueryFlags {
            recursion_desired: request.metadata.recursion_desired,
            checking_disabled: request.metadata.checking_disabled,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        },
        edns: request.edns.is_some(),
    }
}
