//! Domain names as iocsink compares them: lower-case ASCII (IDNA A-labels), no trailing dot.
//!
//! Feeds, allowlists and queries all pass through here so that one rule decides equality.

use hickory_proto::rr::Name;

/// Longest presentation name we keep (RFC 1035: 255 octets on the wire, 253 in text).
pub const MAX_NAME: usize = 253;

/// A pattern from a feed or allowlist: `d` (d and below) or `*.d` (strictly below d).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub name: String,
    pub below_only: bool,
}

/// Normalizes `d` or `*.d` into a [`Pattern`], or says why it is not a domain.
pub fn normalize_pattern(raw: &str) -> Result<Pattern, String> {
    let raw = raw.trim();
    let (below_only, rest) = match raw.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    Ok(Pattern {
        name: normalize(rest)?,
        below_only,
    })
}

/// Normalizes one domain name: trims, drops the trailing dot, lower-cases, IDNA-encodes,
/// and checks label and name lengths and characters.
pub fn normalize(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("empty name".into());
    }
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed).map_err(|_| format!("not a valid IDNA name: {trimmed:?}"))?
    };
    if ascii.len() > MAX_NAME {
        return Err(format!("name longer than {MAX_NAME} characters"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters".into());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a domain name"));
        }
    }
    Ok(ascii)
}

/// Writes a wire name as lower-case dotted text without the trailing dot into `out`
/// (cleared first). Returns false for names that cannot match any pattern (non-ASCII or
/// labels containing dots), so the caller treats them as unlisted.
pub fn query_key(name: &Name, out: &mut String) -> bool {
    out.clear();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            if !b.is_ascii() || b == b'.' {
                return false;
            }
            out.push(b.to_ascii_lowercase() as char);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_dot_and_idna() {
        assert_eq!(normalize("WS.Example.COM.").unwrap(), "ws.example.com");
        assert_eq!(normalize("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert!(normalize("a..b").is_err());
        assert!(normalize(&"a".repeat(64)).is_err());
        assert!(normalize("exa mple.com").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn wildcard_patterns_are_below_only() {
        let p = normalize_pattern("*.Bad.sbs").unwrap();
        assert_eq!(p.name, "bad.sbs");
        assert!(p.below_only);
        assert!(!normalize_pattern("bad.sbs").unwrap().below_only);
    }

    #[test]
    fn query_keys_are_lowercase_without_root() {
        let mut key = String::new();
        assert!(query_key(
            &Name::from_ascii("WS.Bad.SBS.").unwrap(),
            &mut key
        ));
        assert_eq!(key, "ws.bad.sbs");
        assert!(query_key(&Name::root(), &mut key));
        assert_eq!(key, "");
    }
}
