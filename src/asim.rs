//! The block log in ASIM DNS field names (`[log] format = "asim"`), for Sentinel's
//! `ASimDnsActivityLogs` table and the `_Im_Dns` parsers. One-to-one with [`Event`].

use serde::Serialize;

use crate::blocklog::Event;

/// One ASIM DNS activity record (schema 0.1.7 field names).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsimEvent {
    pub time_generated: String,
    pub event_count: u32,
    pub event_type: &'static str,
    pub event_sub_type: &'static str,
    pub event_result: &'static str,
    pub event_result_details: &'static str,
    pub event_product: &'static str,
    pub event_vendor: &'static str,
    pub event_schema: &'static str,
    pub event_schema_version: &'static str,
    pub event_severity: &'static str,
    pub dvc_action: &'static str,
    pub src_ip_addr: String,
    pub src_hostname: String,
    pub dns_query: String,
    pub dns_query_type_name: String,
    pub dns_response_code: u16,
    pub dns_response_code_name: &'static str,
    pub dns_response_name: String,
    pub network_protocol: String,
    pub threat_field: &'static str,
    pub threat_name: Option<String>,
    pub threat_category: Option<String>,
    pub threat_confidence: Option<u8>,
    pub threat_original_confidence: Option<String>,
    pub threat_id: Option<String>,
    pub threat_first_reported_time: Option<String>,
    pub threat_last_reported_time: Option<String>,
    pub rule_name: String,
    pub additional_fields: serde_json::Value,
}

fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "OTHER",
    }
}

impl From<&Event> for AsimEvent {
    fn from(e: &Event) -> AsimEvent {
        let blocked = !matches!(e.action.as_str(), "allowed" | "logged");
        AsimEvent {
            time_generated: e.time_generated.clone(),
            event_count: 1,
            event_type: "Query",
            event_sub_type: "response",
            event_result: if e.result_code == 0 {
                "Success"
            } else {
                "Failure"
            },
            event_result_details: rcode_name(e.result_code),
            event_product: "iocsink",
            event_vendor: "iocsink",
            event_schema: "Dns",
            event_schema_version: "0.1.7",
            event_severity: if blocked { "Medium" } else { "Low" },
            dvc_action: if blocked { "Block" } else { "Allow" },
            src_ip_addr: e.client_ip.clone(),
            src_hostname: e.computer.clone(),
            dns_query: e.name.clone(),
            dns_query_type_name: e.query_type.clone(),
            dns_response_code: e.result_code,
            dns_response_code_name: rcode_name(e.result_code),
            dns_response_name: e.ip_addresses.clone(),
            network_protocol: e.protocol.to_ascii_uppercase(),
            threat_field: if e.via.as_deref().is_some_and(|v| v.contains(" > "))
                && e.indicator.contains(':')
            {
                "DnsResponseName"
            } else {
                "DnsQuery"
            },
            threat_name: e.malware_family.clone(),
            threat_category: e.threat_type.clone(),
            threat_confidence: e.confidence,
            threat_original_confidence: e.confidence.map(|c| c.to_string()),
            threat_id: e.ioc_id.clone(),
            threat_first_reported_time: e.first_seen.clone(),
            threat_last_reported_time: e.last_seen.clone(),
            rule_name: e.feed.clone(),
            additional_fields: serde_json::json!({
                "Action": e.action,
                "Indicator": e.indicator,
                "Feed": e.feed,
                "Tags": e.tags,
                "Reference": e.reference,
                "AllowRule": e.allow_rule,
                "Via": e.via,
            }),
        }
    }
}
