//! ThreatFox JSON: the API envelope `{"query_status": "ok", "data": [...]}`, the export keyed
//! by IOC id `{"1760922": [{...}]}`, or a bare array of IOC objects. Field names of the API
//! (`ioc`, `first_seen`) and of the export (`ioc_value`, `first_seen_utc`) are both accepted.

use std::borrow::Cow;

use serde_json::Value;

use super::ioc::Ioc;
use super::{Meta, Out};
use crate::config::line_of;

pub fn parse<'t>(text: &'t str, out: &mut Out<'t, '_>) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| format!("line {}: not valid JSON: {e}", e.line()))?;
    let records: Vec<(Option<&str>, &Value)> = match &doc {
        Value::Array(items) => items.iter().map(|v| (None, v)).collect(),
        Value::Object(map) if map.contains_key("query_status") => {
            let status = map["query_status"].as_str().unwrap_or("?");
            match map.get("data") {
                Some(Value::Array(items)) => items.iter().map(|v| (None, v)).collect(),
                _ if status == "no_result" => Vec::new(),
                _ => {
                    return Err(format!(
                        "ThreatFox API answered query_status {status:?} without data"
                    ));
                }
            }
        }
        Value::Object(map) => map
            .iter()
            .flat_map(|(id, v)| match v {
                Value::Array(items) => items.iter().map(|i| (Some(id.as_str()), i)).collect(),
                other => vec![(Some(id.as_str()), other)],
            })
            .collect(),
        _ => return Err("line 1: expected a JSON object or array of IOCs".into()),
    };
    // Records carry no line numbers once parsed; point at where the IOC value appears.
    let mut search_from = 0;
    for (n, (id, record)) in records.into_iter().enumerate() {
        let Value::Object(obj) = record else {
            out.skip(1, format!("record {} is not an object", n + 1));
            continue;
        };
        let field = |names: &[&str]| -> Option<String> {
            names.iter().find_map(|k| match obj.get(*k)? {
                Value::String(s) if !s.is_empty() && s != "None" => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Array(items) => {
                    let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    (!parts.is_empty()).then(|| parts.join(","))
                }
                _ => None,
            })
        };
        let value = field(&["ioc", "ioc_value"]);
        let line = match value.as_deref().and_then(|v| text[search_from..].find(v)) {
            Some(at) => {
                search_from += at;
                line_of(text, search_from)
            }
            None => line_of(text, search_from),
        };
        let text_of = |names: &[&str]| field(names).map(Cow::Owned);
        Ioc {
            value: value.map(Cow::Owned),
            ioc_type: text_of(&["ioc_type"]),
            confidence: text_of(&["confidence_level"]),
            meta: Meta {
                threat_type: text_of(&["threat_type"]),
                malware: text_of(&["malware_printable", "malware"]),
                first_seen: text_of(&["first_seen", "first_seen_utc"]),
                last_seen: text_of(&["last_seen", "last_seen_utc"]),
                reporter: text_of(&["reporter"]),
                tags: text_of(&["tags"]),
                reference: text_of(&["reference"]),
                ioc_id: text_of(&["id", "ioc_id"])
                    .or_else(|| id.map(|i| Cow::Owned(i.to_string()))),
                ..Meta::default()
            },
        }
        .push_to(out, line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    const API: &str = r#"{
  "query_status": "ok",
  "data": [
    {
      "id": "1760922",
      "ioc": "fernsecur.windfield.in.net",
      "threat_type": "payload_delivery",
      "ioc_type": "domain",
      "malware": "js.clearfake",
      "malware_printable": "ClearFake",
      "confidence_level": 100,
      "first_seen": "2026-03-07 13:29:53 UTC",
      "last_seen": null,
      "reference": null,
      "reporter": "threatcat_ch",
      "tags": ["ClearFake", "js"]
    },
    {
      "id": "1760923",
      "ioc": "203.0.113.9:8443",
      "ioc_type": "ip:port",
      "threat_type": "botnet_cc",
      "malware_printable": "Cobalt Strike",
      "confidence_level": 75
    },
    {
      "id": "1760924",
      "ioc": "not a domain",
      "ioc_type": "domain",
      "confidence_level": 50
    }
  ]
}"#;

    #[test]
    fn reads_the_api_envelope() {
        let feed = super::super::parse(API, crate::config::FeedFormat::ThreatfoxJson).unwrap();
        assert_eq!(feed.indicators.len(), 1);
        let ind = &feed.indicators[0];
        assert_eq!(ind.pattern.name, "fernsecur.windfield.in.net");
        assert_eq!(ind.line, 6);
        let meta = &ind.meta;
        assert_eq!(meta.malware.as_deref(), Some("ClearFake"));
        assert_eq!(meta.confidence, Some(100));
        assert_eq!(meta.tags.as_deref(), Some("ClearFake,js"));
        assert_eq!(meta.ioc_id.as_deref(), Some("1760922"));
        assert_eq!(meta.last_seen, None);
        assert_eq!(feed.ips.len(), 1);
        assert_eq!(feed.skipped.len(), 1);
        assert_eq!(feed.skipped[0].line, 28);
    }

    #[test]
    fn reads_the_export_keyed_by_id() {
        let text = r#"{"1672089": [{"ioc_value": "ws.bad.sbs", "ioc_type": "domain", "threat_type": "botnet_cc",
            "malware_printable": "MaskGramStealer", "confidence_level": "100", "first_seen_utc": "2026-05-24 00:00:00",
            "last_seen_utc": null, "tags": "stealer", "reference": null, "reporter": "x"}]}"#;
        let feed = super::super::parse(text, crate::config::FeedFormat::ThreatfoxJson).unwrap();
        let meta = &feed.indicators[0].meta;
        assert_eq!(meta.ioc_id.as_deref(), Some("1672089"));
        assert_eq!(meta.first_seen.as_deref(), Some("2026-05-24 00:00:00"));
    }

    #[test]
    fn broken_json_is_an_error_with_its_line() {
        let err = super::super::parse(
            "{\n \"query_status\": \"ok\",\n \"data\": [\n",
            crate::config::FeedFormat::ThreatfoxJson,
        )
        .unwrap_err();
        assert!(err.starts_with("line 4"), "{err}");
    }
}
