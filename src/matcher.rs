//! Suffix matching on label boundaries: `d` covers `d` and every name below it, `*.d` only
//! the names strictly below. One hash probe per label suffix, no allocation per lookup.

use rustc_hash::FxHashMap;

/// What one listed name carries: values that cover the name itself and everything below,
/// and values that cover only the names below (from `*.d` entries).
#[derive(Debug, Clone)]
pub struct Slot<T> {
    pub apex_and_below: Vec<T>,
    pub below_only: Vec<T>,
}

/// A match: the listed name that covered the query, and the values that apply.
#[derive(Debug)]
pub struct Hit<'a, T> {
    pub listed: &'a str,
    /// True when the query is the listed name itself (not a name below it).
    pub apex: bool,
    pub slot: &'a Slot<T>,
}

impl<'a, T> Hit<'a, T> {
    /// The values that apply to this query: all of them below the listed name, only the
    /// apex-and-below ones at the name itself.
    pub fn values(&self) -> impl Iterator<Item = &'a T> + use<'a, T> {
        let below: &'a [T] = if self.apex {
            &[]
        } else {
            &self.slot.below_only
        };
        self.slot.apex_and_below.iter().chain(below)
    }

    /// Whether the listed entry was a `*.d` wildcard only.
    pub fn wildcard_only(&self) -> bool {
        self.slot.apex_and_below.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct SuffixMap<T> {
    map: FxHashMap<Box<str>, Slot<T>>,
}

impl<T> Default for SuffixMap<T> {
    fn default() -> Self {
        SuffixMap {
            map: FxHashMap::default(),
        }
    }
}

impl<T> SuffixMap<T> {
    /// Adds `value` under `name` (already normalized); `below_only` for `*.name` entries.
    pub fn insert(&mut self, name: &str, below_only: bool, value: T) {
        let slot = match self.map.get_mut(name) {
            Some(slot) => slot,
            None => self.map.entry(name.into()).or_insert_with(|| Slot {
                apex_and_below: Vec::new(),
                below_only: Vec::new(),
            }),
        };
        if below_only {
            slot.below_only.push(value);
        } else {
            slot.apex_and_below.push(value);
        }
    }

    /// Number of distinct listed names.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The most specific listed name covering `name` (a normalized query key), if any.
    pub fn lookup(&self, name: &str) -> Option<Hit<'_, T>> {
        let mut suffix = name;
        let mut apex = true;
        loop {
            if let Some((listed, slot)) = self.map.get_key_value(suffix)
                && (!slot.apex_and_below.is_empty() || (!apex && !slot.below_only.is_empty()))
            {
                return Some(Hit { listed, apex, slot });
            }
            let dot = suffix.find('.')?;
            suffix = &suffix[dot + 1..];
            apex = false;
        }
    }

    /// The exact entry for a listed name (for `check`).
    pub fn get(&self, name: &str) -> Option<&Slot<T>> {
        self.map.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> SuffixMap<u32> {
        let mut m = SuffixMap::default();
        m.insert("bad.sbs", false, 1);
        m.insert("wild.test", true, 2);
        m
    }

    #[test]
    fn matches_on_label_boundaries_only() {
        let m = map();
        assert_eq!(m.lookup("bad.sbs").unwrap().listed, "bad.sbs");
        assert!(m.lookup("ws.bad.sbs").is_some());
        assert!(m.lookup("a.b.bad.sbs").is_some());
        assert!(m.lookup("xbad.sbs").is_none());
        assert!(m.lookup("bad.sbs.example").is_none());
        assert!(m.lookup("sbs").is_none());
    }

    #[test]
    fn wildcard_covers_only_names_below() {
        let m = map();
        assert!(m.lookup("wild.test").is_none());
        let hit = m.lookup("a.wild.test").unwrap();
        assert!(hit.wildcard_only());
        assert_eq!(hit.values().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn most_specific_listing_wins() {
        let mut m = map();
        m.insert("ws.bad.sbs", false, 3);
        let hit = m.lookup("x.ws.bad.sbs").unwrap();
        assert_eq!(hit.listed, "ws.bad.sbs");
    }
}
