//! The fast path's wire format work: reading the one question of an ordinary query straight
//! from the packet, writing blocked answers as bytes, and finding the TTLs of an encoded
//! answer so a cached one can be served by copying and patching.
//!
//! Only plain queries take this path (QR=0, opcode QUERY, one question, no answer or
//! authority records, at most an OPT record, no compression in the question). Everything
//! else returns None here and goes through hickory-proto's full parser.

/// An ordinary query, read in place.
#[derive(Debug, Clone, Copy)]
pub struct QueryView {
    pub id: u16,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// End of the question name (exclusive); the name starts at offset 12.
    pub name_end: usize,
    pub qtype: u16,
    pub qclass: u16,
    /// End of the question section.
    pub question_end: usize,
    /// The client's EDNS: (UDP payload size, DO bit).
    pub edns: Option<(u16, bool)>,
}

const OPT: u16 = 41;

/// Reads an ordinary query; writes its name as lower-case dotted text into `key`.
pub fn parse_query(packet: &[u8], key: &mut String) -> Option<QueryView> {
    if packet.len() < 17 {
        return None;
    }
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    // QR=0, opcode 0; AA/TC/Z bits are ignored as a resolver does.
    if flags & 0xf800 != 0 {
        return None;
    }
    let counts = |i: usize| u16::from_be_bytes([packet[4 + 2 * i], packet[5 + 2 * i]]);
    if counts(0) != 1 || counts(1) != 0 || counts(2) != 0 || counts(3) > 1 {
        return None;
    }
    let at = read_name(packet, key)?;
    let name_end = at;
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
    let question_end = at + 4;
    let edns = if counts(3) == 1 {
        // OPT: root name, type 41, class = payload, TTL = ext-rcode|version|DO|Z, rdata.
        let opt = packet.get(question_end..question_end + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != OPT {
            return None;
        }
        let version = opt[6];
        let rdlen = u16::from_be_bytes([opt[9], opt[10]]) as usize;
        if version != 0 || question_end + 11 + rdlen != packet.len() {
            return None;
        }
        Some((u16::from_be_bytes([opt[3], opt[4]]), opt[7] & 0x80 != 0))
    } else {
        if question_end != packet.len() {
            return None;
        }
        None
    };
    Some(QueryView {
        id: u16::from_be_bytes([packet[0], packet[1]]),
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        name_end,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

/// Reads the question name at offset 12 (no compression) as lower-case dotted text into
/// `key`; returns where the name ends.
fn read_name(packet: &[u8], key: &mut String) -> Option<usize> {
    key.clear();
    let mut at = 12;
    loop {
        let len = *packet.get(at)? as usize;
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 || at + 1 + len >= packet.len() {
            return None; // compression pointers or labels too long: the full parser decides
        }
        if !key.is_empty() {
            key.push('.');
        }
        for &b in &packet[at + 1..at + 1 + len] {
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            key.push(b.to_ascii_lowercase() as char);
        }
        at += 1 + len;
        if at - 12 > 255 {
            return None;
        }
    }
}

/// The question (name, type) and rcode of an encoded answer, for the query log.
pub fn answered(reply: &[u8]) -> Option<(String, u16, u8)> {
    if reply.len() < 12 || u16::from_be_bytes([reply[4], reply[5]]) != 1 {
        return None;
    }
    let mut name = String::new();
    let at = read_name(reply, &mut name)?;
    let qtype = u16::from_be_bytes([*reply.get(at)?, *reply.get(at + 1)?]);
    Some((name, qtype, reply[3] & 0x0f))
}

/// What a blocked answer carries.
pub struct Blocked<'a> {
    /// 3 for NXDOMAIN, 0 for sinkhole/NODATA.
    pub rcode: u8,
    /// A sinkhole address record's data (4 or 16 bytes), if the answer has one.
    pub address: Option<&'a [u8]>,
    /// Where in the question name the listed zone starts (for the SOA owner pointer).
    pub zone_offset: usize,
    pub ttl: u32,
    /// Extended DNS Error text (sent only to EDNS clients).
    pub reason: &'a str,
}

/// Writes a blocked answer to `q` into `out`: the question echoed, a sinkhole record or the
/// synthetic SOA (owner: the listed zone, by pointer into the question), and OPT with EDE 15.
pub fn blocked_response(packet: &[u8], q: &QueryView, b: &Blocked<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&packet[..2]);
    let rd = if q.recursion_desired { 0x01 } else { 0 };
    let cd = if q.checking_disabled { 0x10 } else { 0 };
    out.push(0x84 | rd); // QR, AA, RD
    out.push(0x80 | cd | b.rcode); // RA, CD, RCODE
    let (answers, authority) = if b.address.is_some() {
        (1u16, 0u16)
    } else {
        (0, 1)
    };
    let additional = u16::from(q.edns.is_some());
    for count in [1, answers, authority, additional] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out.extend_from_slice(&packet[12..q.question_end]);
    if let Some(addr) = b.address {
        out.extend_from_slice(&[0xc0, 12]); // owner: the question name
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&b.ttl.to_be_bytes());
        out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        out.extend_from_slice(addr);
    } else {
        let owner = 12 + b.zone_offset;
        out.extend_from_slice(&[0xc0 | (owner >> 8) as u8, owner as u8]);
        out.extend_from_slice(&6u16.to_be_bytes()); // SOA
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&b.ttl.to_be_bytes());
        let rdata_at = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(b"\x07iocsink\x07invalid\x00");
        out.extend_from_slice(b"\x0ahostmaster\x07iocsink\x07invalid\x00");
        for v in [1u32, 3600, 600, 86_400, b.ttl] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let rdlen = (out.len() - rdata_at - 2) as u16;
        out[rdata_at..rdata_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
    if let Some((_, dnssec_ok)) = q.edns {
        out.push(0); // root
        out.extend_from_slice(&OPT.to_be_bytes());
        out.extend_from_slice(&crate::upstream::EDNS_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        let reason = &b.reason.as_bytes()[..b.reason.len().min(400)];
        let option_len = 2 + reason.len() as u16;
        out.extend_from_slice(&(4 + option_len).to_be_bytes());
        out.extend_from_slice(&crate::answer::EDE_OPTION.to_be_bytes());
        out.extend_from_slice(&option_len.to_be_bytes());
        out.extend_from_slice(&crate::answer::EDE_BLOCKED.to_be_bytes());
        out.extend_from_slice(reason);
    }
}

/// A truncated answer (TC set, question echoed, nothing else) to an ordinary query: never
/// longer than the query. None if the query is not one the fast path reads.
pub fn truncated(packet: &[u8]) -> Option<Vec<u8>> {
    let mut key = String::new();
    let q = parse_query(packet, &mut key)?;
    let mut out = packet[..q.question_end].to_vec();
    out[2] = 0x80 | (packet[2] & 0x01) | 0x02; // QR, RD as asked, TC
    out[3] = 0x80; // RA, NOERROR
    out[10..12].copy_from_slice(&[0, 0]); // no additional records
    Some(out)
}

/// Offsets of the TTL fields of every record but OPT in an encoded message, or None if the
/// message does not walk cleanly.
pub fn ttl_offsets(msg: &[u8]) -> Option<Vec<u16>> {
    let count = |i: usize| u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]]) as usize;
    if msg.len() < 12 {
        return None;
    }
    let mut at = 12;
    for _ in 0..count(0) {
        at = skip_name(msg, at)? + 4;
    }
    let mut offsets = Vec::new();
    for _ in 0..count(1) + count(2) + count(3) {
        at = skip_name(msg, at)?;
        let rtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
        if rtype != OPT {
            offsets.push(u16::try_from(at + 4).ok()?);
        }
        let rdlen = u16::from_be_bytes([*msg.get(at + 8)?, *msg.get(at + 9)?]) as usize;
        at += 10 + rdlen;
        if at > msg.len() {
            return None;
        }
    }
    (at == msg.len()).then_some(offsets)
}

fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l <= 63 => at += 1 + l as usize,
            _ => return None,
        }
    }
}

/// Counts a cached answer down by `age` seconds in place.
pub fn age_ttls(msg: &mut [u8], offsets: &[u16], age: u32) {
    for &o in offsets {
        let o = o as usize;
        let ttl = u32::from_be_bytes([msg[o], msg[o + 1], msg[o + 2], msg[o + 3]]);
        msg[o..o + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};

    fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0xbeef;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            e.set_dnssec_ok(true);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn reads_plain_queries_and_leaves_the_rest() {
        let mut key = String::new();
        let q = parse_query(&query("WS.Bad.SBS.", RecordType::AAAA, true), &mut key).unwrap();
        assert_eq!(key, "ws.bad.sbs");
        assert_eq!((q.id, q.qtype, q.qclass), (0xbeef, 28, 1));
        assert_eq!(q.edns, Some((4096, true)));
        assert!(q.recursion_desired);
        assert!(
            parse_query(&query("a.test.", RecordType::A, false), &mut key)
                .unwrap()
                .edns
                .is_none()
        );
        let mut response = query("a.test.", RecordType::A, false);
        response[2] |= 0x80;
        assert!(
            parse_query(&response, &mut key).is_none(),
            "responses take the slow path"
        );
        assert!(parse_query(&[0u8; 11], &mut key).is_none());
    }

    #[test]
    fn blocked_answers_parse_as_dns() {
        let mut key = String::new();
        let packet = query("ws.bad.sbs.", RecordType::A, true);
        let q = parse_query(&packet, &mut key).unwrap();
        let mut out = Vec::new();
        let zone_offset = key.find("bad.sbs").unwrap();
        blocked_response(
            &packet,
            &q,
            &Blocked {
                rcode: 3,
                address: None,
                zone_offset,
                ttl: 60,
                reason: "iocsink: test",
            },
            &mut out,
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(
            m.metadata.authoritative
                && m.metadata.recursion_available
                && m.metadata.recursion_desired
        );
        assert_eq!(m.authorities[0].name.to_ascii(), "bad.sbs.");
        match &m.authorities[0].data {
            RData::SOA(soa) => assert_eq!(soa.minimum, 60),
            other => panic!("{other:?}"),
        }
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(ttl_offsets(&out).unwrap().len(), 1);

        blocked_response(
            &packet,
            &q,
            &Blocked {
                rcode: 0,
                address: Some(&[10, 0, 0, 1]),
                zone_offset,
                ttl: 30,
                reason: "r",
            },
            &mut out,
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(
            m.answers[0].data,
            RData::A(hickory_proto::rr::rdata::A::new(10, 0, 0, 1))
        );
        assert_eq!(m.answers[0].ttl, 30);
    }

    #[test]
    fn ttls_are_found_and_counted_down() {
        let mut m = Message::from_vec(&query("a.test.", RecordType::A, true)).unwrap();
        m.metadata.message_type = hickory_proto::op::MessageType::Response;
        for ttl in [300, 20] {
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("a.test.").unwrap(),
                ttl,
                RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
            ));
        }
        let mut bytes = m.to_vec().unwrap();
        let offsets = ttl_offsets(&bytes).unwrap();
        assert_eq!(offsets.len(), 2, "OPT is not a TTL");
        age_ttls(&mut bytes, &offsets, 25);
        let aged = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            aged.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            vec![275, 0]
        );
        assert!(aged.edns.is_some());
    }
}
