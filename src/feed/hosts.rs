//! Hosts files: `0.0.0.0 name [name...]` or `127.0.0.1 name` lines (ThreatFox's hostfile
//! export uses 127.0.0.1). The address column is a placeholder and is ignored.

use super::{Out, strip_comment};

/// Names every hosts file carries for the machine itself; never indicators.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "0.0.0.0",
];

pub fn parse<'t>(text: &'t str, out: &mut Out<'t, '_>) {
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default();
        if addr.parse::<std::net::IpAddr>().is_err() {
            out.skip(line_no, "hosts line does not start with an IP address");
            continue;
        }
        let mut any = false;
        for name in words {
            any = true;
            if LOCAL_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            out.name(line_no, name);
        }
        if !any {
            out.skip(line_no, "hosts line has no name");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_threatfox_style_hostfile() {
        let text = "# ThreatFox hostfile\n127.0.0.1 localhost\n127.0.0.1 Bad.sbs\n0.0.0.0 a.test b.test # two\nbad.sbs\n0.0.0.0\n";
        let feed = super::super::parse(text, crate::config::FeedFormat::Hosts).unwrap();
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(names, vec!["bad.sbs", "a.test", "b.test"]);
        assert_eq!(
            feed.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![5, 6]
        );
    }
}
