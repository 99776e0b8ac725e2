//! Response Policy Zones (the format ThreatFox and most TI vendors also publish): QNAME
//! triggers with their actions. `name CNAME .` = NXDOMAIN, `name CNAME *.` = NODATA,
//! `name CNAME rpz-passthru.` = exempt, `*.name` = names below, local data (`A`, `AAAA`, other
//! CNAME targets) = blocked with the configured action. IP and NSDNAME triggers are counted.

use super::{Indicator, Meta, Out};
use crate::config::Action;
use crate::domain::normalize_pattern;

/// Whether a line looks like an RPZ policy record (for format detection).
pub fn is_policy_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).any(|w| {
        w[0].eq_ignore_ascii_case("CNAME")
            && matches!(w[1], "." | "*." | "rpz-passthru." | "rpz-drop.")
    })
}

/// Record types a policy record may carry (local data included).
const RECORD_TYPES: &[&str] = &[
    "CNAME", "A", "AAAA", "TXT", "MX", "PTR", "SRV", "DNAME", "HTTPS", "SVCB",
];

pub fn parse<'t>(text: &'t str, feed: &mut Out<'t, '_>) {
    let mut origin = String::new();
    let mut depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split(';').next().unwrap_or_default();
        // Multi-line records (the SOA) are bracketed; nothing in them is a trigger.
        let was_inside = depth > 0;
        depth += line.matches('(').count();
        depth = depth.saturating_sub(line.matches(')').count());
        if was_inside || line.trim().is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0].eq_ignore_ascii_case("$ORIGIN") {
            origin = words
                .get(1)
                .map(|o| o.trim_end_matches('.').to_ascii_lowercase())
                .unwrap_or_default();
            continue;
        }
        if words[0].starts_with('$') || raw.starts_with([' ', '\t']) || words[0] == "@" {
            continue; // $TTL, records continuing the previous owner (NS), the apex
        }
        let mut rest = &words[1..];
        while let Some(w) = rest.first() {
            if w.parse::<u32>().is_ok() || w.eq_ignore_ascii_case("IN") {
                rest = &rest[1..];
            } else {
                break;
            }
        }
        let (Some(rtype), Some(rdata)) = (rest.first(), rest.get(1)) else {
            feed.skip(line_no, "RPZ record without type and data");
            continue;
        };
        let rtype = rtype.to_ascii_uppercase();
        if matches!(rtype.as_str(), "SOA" | "NS") {
            continue;
        }
        if !RECORD_TYPES.contains(&rtype.as_str()) {
            feed.skip(line_no, format!("unrecognised RPZ record type {rtype:?}"));
            continue;
        }
        let owner = relative_owner(words[0], &origin);
        if owner
            .split('.')
            .any(|l| matches!(l, "rpz-ip" | "rpz-nsip" | "rpz-nsdname" | "rpz-client-ip"))
        {
            feed.ignore("RPZ trigger other than a query name");
            continue;
        }
        let (action, passthru) = match (rtype.as_str(), *rdata) {
            ("CNAME", ".") => (Some(Action::Nxdomain), false),
            ("CNAME", "*.") => (Some(Action::Nodata), false),
            ("CNAME", "rpz-passthru.") => (None, true),
            ("CNAME", "rpz-drop.") => (Some(Action::Nxdomain), false),
            ("CNAME", "rpz-tcp-only.") => {
                feed.ignore("rpz-tcp-only");
                continue;
            }
            _ => (None, false), // local data: blocked with the configured action
        };
        let pattern = match normalize_pattern(&owner) {
            Ok(p) => p,
            Err(why) => {
                feed.skip(line_no, why);
                continue;
            }
        };
        if passthru {
            feed.report.passthru.push(pattern);
        } else {
            feed.indicator(Indicator {
                pattern,
                line: line_no,
                meta: Meta::default(),
                action,
            });
        }
    }
}

/// An owner name relative to the policy zone: `bad.sbs.rpz.example.` with origin
/// `rpz.example` -> `bad.sbs`; names without a trailing dot are already relative.
fn relative_owner(owner: &str, origin: &str) -> String {
    let owner = owner.to_ascii_lowercase();
    match owner.strip_suffix('.') {
        Some(absolute) if !origin.is_empty() => absolute
            .strip_suffix(origin)
            .and_then(|s| s.strip_suffix('.'))
            .unwrap_or(absolute)
            .to_string(),
        Some(absolute) => absolute.to_string(),
        None => owner,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Action;

    const ZONE: &str = "$TTL 30
$ORIGIN rpz.threatfox.abuse.ch.
@ SOA rpz.threatfox.abuse.ch. hostmaster.threatfox.abuse.ch. (
    2026120401 ; serial
    300 1800 604800 30 )
  NS localhost.
; ThreatFox RPZ
geschmeidig6307-kotyatanet.sbs CNAME .
*.geschmeidig6307-kotyatanet.sbs CNAME .
ws.bad.sbs.rpz.threatfox.abuse.ch. 300 IN CNAME .
quiet.test CNAME *.
good.test CNAME rpz-passthru.
sink.test A 10.0.0.1
32.1.2.0.192.rpz-ip CNAME .
bad name.test CNAME .
broken.test CNAME
";

    #[test]
    fn reads_triggers_and_actions() {
        let feed = super::super::parse(ZONE, crate::config::FeedFormat::Rpz).unwrap();
        let got: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| (i.pattern.name.as_str(), i.pattern.below_only, i.action))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "geschmeidig6307-kotyatanet.sbs",
                    false,
                    Some(Action::Nxdomain)
                ),
                (
                    "geschmeidig6307-kotyatanet.sbs",
                    true,
                    Some(Action::Nxdomain)
                ),
                ("ws.bad.sbs", false, Some(Action::Nxdomain)),
                ("quiet.test", false, Some(Action::Nodata)),
                ("sink.test", false, None),
            ]
        );
        assert_eq!(feed.passthru[0].name, "good.test");
        assert_eq!(feed.ignored.values().sum::<usize>(), 1);
        let lines: Vec<_> = feed.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![15, 16]);
    }
}
