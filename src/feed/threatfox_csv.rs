//! ThreatFox CSV exports: `#` banner, a commented header naming the columns, rows of quoted
//! fields separated by `", "`, literal `None` for nulls, and a `# Number of entries` footer.
//! Columns are found by the header's names, since older exports lack `is_compromised`.

use std::borrow::Cow;

use super::ioc::Ioc;
use super::{Meta, Out};

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

pub fn parse<'t>(text: &'t str, out: &mut Out<'t, '_>) {
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
                columns.names = fields.iter().map(|f| f.to_string()).collect();
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let Some(fields) = split_fields(line) else {
            out.skip(line_no, "malformed CSV (unbalanced quotes)");
            continue;
        };
        if fields.len() != columns.names.len() {
            out.skip(
                line_no,
                format!(
                    "expected {} CSV fields, found {}",
                    columns.names.len(),
                    fields.len()
                ),
            );
            continue;
        }
        row(out, &columns, fields, line_no);
    }
}

fn row<'t>(
    out: &mut Out<'t, '_>,
    columns: &Columns,
    mut fields: Vec<Cow<'t, str>>,
    line_no: usize,
) {
    let mut take = |name: &str| -> Option<Cow<'t, str>> {
        let v = std::mem::take(fields.get_mut(columns.index(name)?)?);
        let trimmed = v.trim();
        if trimmed.is_empty() || trimmed == "None" {
            return None;
        }
        Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        })
    };
    let ioc = Ioc {
        value: take("ioc_value"),
        ioc_type: take("ioc_type"),
        confidence: take("confidence_level"),
        meta: Meta {
            threat_type: take("threat_type"),
            malware: take("malware_printable").or_else(|| take("fk_malware")),
            first_seen: take("first_seen_utc"),
            last_seen: take("last_seen_utc"),
            reporter: take("reporter"),
            tags: take("tags"),
            reference: take("reference"),
            ioc_id: take("ioc_id"),
            ..Meta::default()
        },
    };
    ioc.push_to(out, line_no);
}

/// Splits one CSV line of quoted (or bare) fields separated by commas with optional spaces.
/// `""` inside quotes is a quote. Fields borrow from the line unless they hold an escaped
/// quote. Returns None when quotes do not balance.
fn split_fields(line: &str) -> Option<Vec<Cow<'_, str>>> {
    let bytes = line.as_bytes();
    let mut fields = Vec::with_capacity(16);
    let mut i = 0;
    loop {
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                match bytes.get(j)? {
                    b'"' if bytes.get(j + 1) == Some(&b'"') => {
                        escaped = true;
                        j += 2;
                    }
                    b'"' => break,
                    _ => j += 1,
                }
            }
            let raw = &line[start..j];
            fields.push(if escaped {
                Cow::Owned(raw.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(raw)
            });
            i = j + 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            fields.push(Cow::Borrowed(&line[start..i]));
        }
        match bytes.get(i) {
            None => return Some(fields),
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
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
        let feed = super::super::parse(SAMPLE, crate::config::FeedFormat::ThreatfoxCsv).unwrap();
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["fernsecur.windfield.in.net", "evil.example.org"]
        );
        let meta = &feed.indicators[0].meta;
        assert_eq!(meta.malware.as_deref(), Some("ClearFake"));
        assert_eq!(meta.threat_type.as_deref(), Some("payload_delivery"));
        assert_eq!(meta.confidence, Some(100));
        assert_eq!(meta.reference, None);
        assert_eq!(meta.ioc_id.as_deref(), Some("1760922"));
        assert_eq!(feed.indicators[1].meta.tags.as_deref(), Some("a,b"));
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
        let feed = super::super::parse(text, crate::config::FeedFormat::ThreatfoxCsv).unwrap();
        assert_eq!(feed.indicators[0].pattern.name, "ws.bad.sbs");
        let meta = &feed.indicators[0].meta;
        assert_eq!(meta.malware.as_deref(), Some("MaskGramStealer"));
        assert_eq!(meta.confidence, Some(100));
    }
}
