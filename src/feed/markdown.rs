//! IOC tables in threat reports (Markdown or the plain-text form the seed report uses):
//! `| Type | Value | Threat Type | First Seen | Confidence |` rows, with the family from a
//! `Malware Family:` line. Defanged values (`bad[.]sbs`, `hxxp://`) are refanged.

use std::borrow::Cow;

use super::ioc::Ioc;
use super::{Meta, Out};

/// Whether a line is the header row of an IOC table (it has Type and Value columns).
pub fn is_ioc_header(line: &str) -> bool {
    if !line.starts_with('|') {
        return false;
    }
    let cells = cells(line);
    cells.iter().any(|c| c.eq_ignore_ascii_case("value"))
        && cells.iter().any(|c| c.eq_ignore_ascii_case("type"))
}

pub fn parse<'t>(text: &'t str, out: &mut Out<'t, '_>) {
    let family: Option<Cow<'t, str>> = text.lines().find_map(family_of).map(Cow::Borrowed);
    let mut columns: Option<Vec<String>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if !line.starts_with('|') {
            columns = None; // a table ends at the first line that is not a row
            continue;
        }
        if is_ioc_header(line) {
            columns = Some(cells(line).iter().map(|c| c.to_ascii_lowercase()).collect());
            continue;
        }
        let Some(cols) = &columns else { continue };
        let row = cells(line);
        if row
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        {
            continue; // |---|---|
        }
        if row.len() != cols.len() {
            out.skip(
                line_no,
                format!(
                    "table row has {} cells, header has {}",
                    row.len(),
                    cols.len()
                ),
            );
            continue;
        }
        let get = |name: &str| -> Option<&'t str> {
            let v = row[cols.iter().position(|c| c == name)?]
                .trim_matches('`')
                .trim();
            (!v.is_empty() && v != "-").then_some(v)
        };
        let text_of = |name: &str| get(name).map(Cow::Borrowed);
        Ioc {
            value: text_of("value"),
            ioc_type: text_of("type"),
            confidence: text_of("confidence"),
            meta: Meta {
                threat_type: text_of("threat type"),
                malware: text_of("malware").or_else(|| family.clone()),
                first_seen: text_of("first seen"),
                last_seen: text_of("last seen"),
                tags: text_of("tags"),
                reference: text_of("reference"),
                ..Meta::default()
            },
        }
        .push_to(out, line_no);
    }
}

fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

/// `Malware Family: MaskGramStealer Total IOCs: 2 ...` -> `MaskGramStealer`.
fn family_of(line: &str) -> Option<&str> {
    let rest = line.split_once("Malware Family:")?.1.trim_start();
    let rest = rest.trim_start_matches(['*', '_']);
    let end = ["Total IOCs", "IOC Types", "|", "*"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    let family = rest[..end].trim();
    (!family.is_empty()).then_some(family)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_seed_report() {
        let report = include_str!("../../tests/data/threatfox-maskgramstealer-report.txt");
        let feed = super::super::parse(report, crate::config::FeedFormat::Markdown).unwrap();
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "geschmeidig6307-kotyatanet.sbs",
                "ws.geschmeidig6307-kotyatanet.sbs"
            ]
        );
        let meta = &feed.indicators[1].meta;
        assert_eq!(meta.malware.as_deref(), Some("MaskGramStealer"));
        assert_eq!(meta.threat_type.as_deref(), Some("botnet_cc"));
        assert_eq!(meta.first_seen.as_deref(), Some("2026-05-24"));
        assert_eq!(meta.confidence, Some(100));
        assert!(feed.skipped.is_empty(), "{:?}", feed.skipped);
    }

    #[test]
    fn refangs_and_reports_bad_rows() {
        let text = "**Malware Family:** Cobalt Strike\n\n| Type | Value | Confidence |\n|:--|:--|--:|\n| url | hxxps://cdn[.]evil[.]test/x | 80% |\n| domain | `two.evil.test` | 75 |\n| domain | short |\n| domain | x.test | lots |\n";
        let feed = super::super::parse(text, crate::config::FeedFormat::Markdown).unwrap();
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(names, vec!["cdn.evil.test", "two.evil.test"]);
        assert_eq!(
            feed.indicators[0].meta.malware.as_deref(),
            Some("Cobalt Strike")
        );
        assert_eq!(
            feed.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![7, 8]
        );
    }
}
