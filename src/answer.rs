//! Building responses: blocked answers (NXDOMAIN or sinkhole, with a synthetic SOA and an
//! Extended DNS Error), relayed upstream answers, bare error responses, and encoding within
//! the client's size limit.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::upstream::EDNS_PAYLOAD;

/// RFC 8914 INFO-CODE 15, "Blocked".
pub const EDE_BLOCKED: u16 = 15;
/// EDNS option code of Extended DNS Errors.
pub const EDE_OPTION: u16 = 15;

/// How a block is answered.
#[derive(Debug, Clone, Copy)]
pub enum BlockAnswer {
    Nxdomain,
    /// NOERROR, no answer, the SOA (RPZ `CNAME *.`).
    Nodata,
    Sinkhole {
        v4: Ipv4Addr,
        v6: Ipv6Addr,
    },
}

/// A response skeleton for `request`: same ID, opcode, RD and CD, question echoed as asked,
/// RA set (we resolve for the client), and OPT if the client sent one.
pub fn response_to(request: &Message, rcode: ResponseCode) -> Message {
    let mut msg = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    msg.metadata.recursion_desired = request.metadata.recursion_desired;
    msg.metadata.checking_disabled = request.metadata.checking_disabled;
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = rcode;
    msg.queries = request.queries.clone();
    if let Some(req_edns) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(req_edns.flags().dnssec_ok);
        msg.set_edns(edns);
    }
    msg
}

/// The answer to a blocked query. `zone` is the listed name: it owns the synthetic SOA, so a
/// downstream cache holds the negative answer for `ttl` seconds (RFC 2308).
pub fn blocked(request: &Message, how: BlockAnswer, zone: &str, ttl: u32, reason: &str) -> Message {
    let qtype = request.queries[0].query_type();
    let owner = Name::from_ascii(zone).unwrap_or_else(|_| Name::root());
    let sink = match (how, qtype) {
        (BlockAnswer::Sinkhole { v4, .. }, RecordType::A) => Some(RData::A(A(v4))),
        (BlockAnswer::Sinkhole { v6, .. }, RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
        _ => None,
    };
    let rcode = match how {
        BlockAnswer::Nxdomain => ResponseCode::NXDomain,
        BlockAnswer::Sinkhole { .. } | BlockAnswer::Nodata => ResponseCode::NoError,
    };
    let mut msg = response_to(request, rcode);
    msg.metadata.authoritative = true;
    match sink {
        Some(rdata) => {
            let qname = request.queries[0].name().clone();
            msg.add_answer(Record::from_rdata(qname, ttl, rdata));
        }
        None => {
            msg.add_authority(soa_record(owner, ttl));
        }
    }
    if let Some(edns) = msg.edns.as_mut() {
        let mut data = EDE_BLOCKED.to_be_bytes().to_vec();
        data.extend_from_slice(reason.as_bytes());
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, data));
    }
    msg
}

fn soa_record(owner: Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("iocsink.invalid.").expect("static name");
    let rname = Name::from_ascii("hostmaster.iocsink.invalid.").expect("static name");
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86_400, ttl);
    Record::from_rdata(owner, ttl, RData::SOA(soa))
}

/// Relays an upstream (or cached) answer to the client of `request`: the client's ID and
/// question spelling, the upstream's rcode and sections. AD passes only to clients that
/// asked for DNSSEC data.
pub fn relayed(request: &Message, upstream: &Message) -> Message {
    let mut msg = response_to(request, upstream.metadata.response_code);
    let wants_ad =
        request.metadata.authentic_data || msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    msg.metadata.authentic_data = upstream.metadata.authentic_data && wants_ad;
    msg.answers = upstream.answers.clone();
    msg.authorities = upstream.authorities.clone();
    msg.additionals = upstream.additionals.clone();
    msg
}

/// Encodes a response within `max` bytes: if the full message does not fit, the answer is
/// cut to header, question and OPT with TC set, so the client retries over TCP.
pub fn encode(msg: &Message, max: usize) -> Vec<u8> {
    match msg.to_vec() {
        Ok(bytes) if bytes.len() <= max => bytes,
        Ok(_) => msg.truncate().to_vec().unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode response; answering SERVFAIL");
            let mut failed = msg.truncate();
            failed.metadata.truncation = false;
            failed.metadata.response_code = ResponseCode::ServFail;
            failed.to_vec().unwrap_or_default()
        }
    }
}

/// A header-only error response built from raw bytes, for packets that did not parse:
/// the ID and opcode are echoed, QR set, no sections.
pub fn raw_error(packet: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    if packet.len() < 12 {
        return None;
    }
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&packet[..2]);
    // QR=1, opcode and RD copied from the query.
    out[2] = 0x80 | (packet[2] & 0x79);
    out[3] = 0x80 | (u16::from(rcode) as u8 & 0x0f);
    Some(out)
}

/// A record type as DnsEvents writes it: the mnemonic, or TYPEnnn (RFC 3597) if unknown.
pub fn type_name(qtype: RecordType) -> String {
    match qtype {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        other => other.to_string(),
    }
}

/// Addresses in an answer section, comma-separated, as in DnsEvents' `IPAddresses`.
pub fn addresses(msg: &Message) -> String {
    let mut out = String::new();
    for r in &msg.answers {
        let ip = match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            _ => continue,
        };
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&ip);
    }
    out
}

/// The normalized target of a CNAME or DNAME record (a chain member), if it has one.
pub fn chain_target(data: &RData) -> Option<String> {
    let mut key = String::new();
    match data {
        RData::CNAME(c) => crate::domain::query_key(&c.0, &mut key).then_some(key),
        // hickory-proto keeps DNAME (type 39) as unknown data: an uncompressed name.
        RData::Unknown { code, rdata } if u16::from(*code) == 39 => {
            let bytes = &rdata.anything;
            let mut at = 0;
            while let Some(&len) = bytes.get(at) {
                if len == 0 {
                    return Some(key);
                }
                let label = bytes.get(at + 1..at + 1 + len as usize)?;
                if len > 63 || !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
                    return None;
                }
                if !key.is_empty() {
                    key.push('.');
                }
                key.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                at += 1 + len as usize;
            }
            None
        }
        _ => None,
    }
}
