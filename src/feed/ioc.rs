//! One threat-intel IOC record, whatever format it came in (CSV row, JSON object, report
//! table row), and the rule for what it contributes: `domain` IOCs become name indicators,
//! `url` IOCs their host, `ip:port` IOCs are kept for answer inspection, hashes are counted.

use std::net::IpAddr;

use std::borrow::Cow;

use super::{Indicator, IpIndicator, Meta, Out};
use crate::domain::normalize_pattern;

pub struct Ioc<'t> {
    pub value: Option<Cow<'t, str>>,
    /// `domain` when absent.
    pub ioc_type: Option<Cow<'t, str>>,
    /// As written: "100", "100%", or absent.
    pub confidence: Option<Cow<'t, str>>,
    /// Everything else the record says (its confidence and type are filled in here).
    pub meta: Meta<'t>,
}

impl<'t> Ioc<'t> {
    pub fn push_to(self, feed: &mut Out<'t, '_>, line: usize) {
        let Some(value) = self.value else {
            feed.skip(line, "no IOC value");
            return;
        };
        let value = match value {
            Cow::Borrowed(v) => refang(v.trim()),
            Cow::Owned(v) => Cow::Owned(refang(v.trim()).into_owned()),
        };
        let ioc_type = self
            .ioc_type
            .as_deref()
            .unwrap_or("domain")
            .trim()
            .to_ascii_lowercase();
        let confidence = match self
            .confidence
            .as_deref()
            .map(|c| c.trim().trim_end_matches('%').parse::<u8>())
        {
            Some(Ok(c)) if c <= 100 => Some(c),
            Some(_) => {
                feed.skip(line, "confidence is not a number 0-100");
                return;
            }
            None => None,
        };
        let mut meta = self.meta;
        meta.confidence = confidence;
        meta.ioc_type = Some(match ioc_type.as_str() {
            // The common types borrow a static string instead of allocating one per row.
            "domain" => Cow::Borrowed("domain"),
            "url" => Cow::Borrowed("url"),
            other => Cow::Owned(other.to_string()),
        });
        let host = match ioc_type.as_str() {
            "domain" | "hostname" => &*value,
            "url" => match url_host(&value) {
                Some(host) => host,
                None => {
                    feed.skip(line, "url IOC without a host");
                    return;
                }
            },
            "ip:port" | "ip" => {
                match parse_ip_port(&value) {
                    Some((ip, port)) => feed.ip(IpIndicator {
                        ip,
                        port,
                        line,
                        meta: meta.to_owned_meta(),
                    }),
                    None => feed.skip(line, "ip:port IOC that is not an address"),
                }
                return;
            }
            t if t.contains("hash") => {
                feed.ignore("hash IOC");
                return;
            }
            other => {
                feed.skip(line, format!("unknown ioc_type {other:?}"));
                return;
            }
        };
        if host.parse::<IpAddr>().is_ok() {
            feed.ignore("url IOC with an IP host");
            return;
        }
        match normalize_pattern(host) {
            Ok(pattern) => feed.indicator(Indicator {
                pattern,
                line,
                meta,
                action: None,
            }),
            Err(why) => feed.skip(line, why),
        }
    }
}

/// Undoes the usual defanging in reports: `hxxp`, `[.]`, `(.)`, `[:]`.
pub fn refang(value: &str) -> Cow<'_, str> {
    if !value.contains(['[', '(']) && !value.contains("hxxp") {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .replace("[.]", ".")
            .replace("(.)", ".")
            .replace("[:]", ":")
            .replace("hxxp", "http"),
    )
}

/// The host of `scheme://[user@]host[:port]/...`; None for IPv6 literals and empty hosts.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.starts_with('[') {
        return None;
    }
    let host = authority.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// `1.2.3.4:443`, `[2001:db8::1]:443` or a bare address.
fn parse_ip_port(value: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(sa) = value.parse::<std::net::SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    value.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_host() {
        assert_eq!(url_host("http://evil.test:8080/a?b"), Some("evil.test"));
        assert_eq!(url_host("https://u:p@evil.test/"), Some("evil.test"));
        assert_eq!(url_host("http://[2001:db8::1]/"), None);
    }

    #[test]
    fn refangs_reports() {
        assert_eq!(refang("hxxps://bad[.]sbs/x"), "https://bad.sbs/x");
    }
}
