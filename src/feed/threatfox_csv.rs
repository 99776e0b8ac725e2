//! ThreatFox CSV exports: `#` banner, a commented header naming the columns, rows of quoted
//! fields separated by `", "`, literal `None` for nulls, and a `# Number of entries` footer.
//! Columns are found by the header's names, since older exports lack `is_compromised`.

use std::sync::Arc;

use super::ioc::Ioc;
use super::{LineMeta, ParsedFeed};

/// The documented column order, used when a file has no header line.
const DEFAULT_COLUMNS: &[&str] = &[
    "first_seen_utc",
    "ioc_id",
    "ioc_value",
    "ioc_type",
    "threat_type",
    "fk_malware",
    "malware_alias",
    "malware_printable",
    "last_seen_utc",
    "confidence_level",
    "is_compromised",
    "reference",
    "tags",
    "anonymous",
    "reporter",
];

struct Columns {
    names: Vec<String>,
}

impl Columns {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

pub fn parse(text: &str) -> ParsedFeed {
    let mut feed = ParsedFeed::default();
    let mut columns = Columns {
        names: DEFAULT_COLUMNS.iter().map(|s| s.to_string()).collect(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if comment.starts_with("\"first_seen_utc\"")
                && let Some(fields) = split_fields(comment)
            {
                columns.names = fields;
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let Some(fields) = split_fields(line) else {
            feed.skip(line_no, "malformed CSV (unbalanced quotes)");
            continue;
        };
        if fields.len() != columns.names.len() {
            feed.skip(
                line_no,
                format!(
                    "expected {} CSV fields, found {}",
                    columns.names.len(),
                    fields.len()
                ),
            );
            continue;
        }
        row(&mut feed, &columns, &fields, line_no);
    }
    feed
}

fn row(feed: &mut ParsedFeed, columns: &Columns, fields: &[String], line_no: usize) {
    let get = |name: &str| -> Option<&str> {
        let v = fields.get(columns.index(name)?)?.trim();
        (!v.is_empty() && v != "None").then_some(v)
    };
    let text = |name: &str| get(name).map(Arc::<str>::from);
    let ioc = Ioc {
        value: get("ioc_value"),
        ioc_type: get("ioc_type"),
        confidence: get("confidence_level"),
        meta: LineMeta {
            threat_type: text("threat_type"),
            malware: text("malware_printable").or_else(|| text("fk_malware")),
            first_seen: text("first_seen_utc"),
            last_seen: text("last_seen_utc"),
            reporter: text("reporter"),
            tags: text("tags"),
            reference: text("reference"),
            ioc_id: text("ioc_id"),
            ..LineMeta::default()
        },
    };
    ioc.push_to(feed, line_no);
}

/// Splits one CSV line of quoted (or bare) fields separated by commas with optional spaces.
/// `""` inside quotes is a quote. Returns None when quotes do not balance.
fn split_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            None => return Some(fields),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"################################################################
# ThreatFox IOCs: recent additions - CSV format                #
################################################################
# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","is_compromised","reference","tags","anonymous","reporter"
"2026-03-07 13:29:53", "1760922", "fernsecur.windfield.in.net", "domain", "payload_delivery", "js.clearfake", "None", "ClearFake", "2026-03-07 13:30:20", "100", "False", "None", "ClearFake", "0", "threatcat_ch"
"2026-03-07 13:29:54", "1760923", "http://evil.example.org:8080/gate.php", "url", "payload_delivery", "win.x", "None", "X", "", "75", "False", "None", "a,b", "0", "r"
"2026-03-07 13:29:55", "1760924", "1.2.3.4:443", "ip:port", "botnet_cc", "win.x", "None", "X", "", "75", "False", "None", "None", "0", "r"
"2026-03-07 13:29:56", "1760925", "d41d8cd98f00b204e9800998ecf8427e", "md5_hash", "payload", "win.x", "None", "X", "", "75", "False", "None", "None", "0", "r"
"2026-03-07 13:29:57", "1760926", "broken
"2026-03-07 13:29:58", "1760927", "bad name.test", "domain", "botnet_cc", "win.x", "None", "X", "", "75", "False", "None", "None", "0", "r"
# Number of entries: 6
"#;

    #[test]
    fn reads_domains_urls_and_metadata() {
        let feed = parse(SAMPLE);
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["fernsecur.windfield.in.net", "evil.example.org"]
        );
        let meta = feed.indicators[0].meta.as_ref().unwrap();
        assert_eq!(meta.malware.as_deref(), Some("ClearFake"));
        assert_eq!(meta.threat_type.as_deref(), Some("payload_delivery"));
        assert_eq!(meta.confidence, Some(100));
        assert_eq!(meta.reference, None);
        assert_eq!(meta.ioc_id.as_deref(), Some("1760922"));
        assert_eq!(
            feed.indicators[1].meta.as_ref().unwrap().tags.as_deref(),
            Some("a,b")
        );
        assert_eq!(feed.ignored.values().sum::<usize>(), 1, "the hash");
        assert_eq!(feed.ips.len(), 1, "ip:port kept");
        assert_eq!(feed.ips[0].port, Some(443));
        assert_eq!(
            feed.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![9, 10]
        );
    }

    #[test]
    fn follows_the_header_when_columns_differ() {
        let text = "# \"first_seen_utc\",\"ioc_value\",\"ioc_type\",\"malware_printable\",\"confidence_level\"\n\"2026-05-24\", \"ws.bad.sbs\", \"domain\", \"MaskGramStealer\", \"100\"\n";
        let feed = parse(text);
        assert_eq!(feed.indicators[0].pattern.name, "ws.bad.sbs");
        let meta = feed.indicators[0].meta.as_ref().unwrap();
        assert_eq!(meta.malware.as_deref(), Some("MaskGramStealer"));
        assert_eq!(meta.confidence, Some(100));
    }
}
