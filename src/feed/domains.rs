//! Plain domain lists: one name per line, `#` comments, `*.d` wildcards, and adblock-style
//! `||name^` lines (as published by many blocklists).

use super::{Out, strip_comment};

pub fn parse<'t>(text: &'t str, out: &mut Out<'t, '_>) {
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() || line.starts_with('!') {
            continue;
        }
        let name = match line.strip_prefix("||") {
            Some(rest) => match rest.strip_suffix('^') {
                Some(name) => name,
                None => {
                    out.skip(line_no, "adblock rule other than ||name^");
                    continue;
                }
            },
            None => line,
        };
        if name.split_whitespace().nth(1).is_some() {
            out.skip(line_no, "more than one word on a line");
            continue;
        }
        out.name(line_no, name);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_names_wildcards_and_adblock_lines() {
        let feed = super::super::parse(
            "# header\nBad.SBS.\n*.wild.test # note\n||ad.test^\n\nnot a name\n-x_.te st\n",
            crate::config::FeedFormat::Domains,
        )
        .unwrap();
        let names: Vec<_> = feed
            .indicators
            .iter()
            .map(|i| i.pattern.name.as_str())
            .collect();
        assert_eq!(names, vec!["bad.sbs", "wild.test", "ad.test"]);
        assert!(feed.indicators[1].pattern.below_only);
        assert_eq!(feed.skipped.len(), 2);
        assert_eq!(feed.skipped[0].line, 6);
    }
}
