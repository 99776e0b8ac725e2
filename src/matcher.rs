//! Suffix matching on label boundaries: `d` covers `d` and every name below it, `*.d` only
//! the names strictly below. One hash probe per label suffix, no allocation per lookup.
//!
//! Built for millions of names in little memory: every name lives in one byte arena, the hash
//! table holds 4-byte entry indices, and the values listed under a name form a chain in one
//! flat vector (appending a value never moves anything).

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A value listed under a name, and whether it covers only the names below it (`*.d`).
#[derive(Debug, Clone, Copy)]
struct Link {
    value: u32,
    below_only: bool,
    /// Next link of the same name, or `NONE`.
    next: u32,
}

const NONE: u32 = u32::MAX;

/// One listed name. Most names carry one value, kept inline; more go to a chain of links.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u32,
    len: u8,
    /// Some value covers the name itself (not only `*.name`).
    has_apex: bool,
    /// `value` is the head of a link chain rather than the only value.
    chained: bool,
    /// For an inline value: it covers only the names below.
    below_only: bool,
    value: u32,
}

/// Entries live in the hash table itself: a hit costs one probe of the table and one read
/// of the arena, not a further jump through an index.
#[derive(Debug, Default, Clone)]
pub struct NameTable {
    arena: Vec<u8>,
    links: Vec<Link>,
    table: HashTable<Entry>,
}

/// A match: the listed name that covered the query and the values that apply to it.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub listed: &'a str,
    /// True when the query is the listed name itself, not a name below it.
    pub apex: bool,
    table: &'a NameTable,
    entry: Entry,
}

impl<'a> Hit<'a> {
    /// Values that apply: every one below the listed name; at the name itself only those
    /// not marked below-only. Newest first.
    pub fn values(&self) -> impl Iterator<Item = u32> + use<'a> {
        self.table.values_of(self.entry).filter_map({
            let apex = self.apex;
            move |(value, below_only)| (!(apex && below_only)).then_some(value)
        })
    }

    /// Whether the listing that matched is a `*.d` wildcard only.
    pub fn wildcard_only(&self) -> bool {
        !self.entry.has_apex
    }
}

fn hash(name: &[u8]) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    h.write(name);
    h.finish()
}

impl NameTable {
    /// An empty table with room for a table like `like` (a reload sized from the policy it
    /// replaces grows no hash table by doubling, which would briefly hold both sizes).
    pub fn sized_like(like: &NameTable) -> NameTable {
        NameTable {
            arena: Vec::with_capacity(like.arena.len()),
            links: Vec::with_capacity(like.links.len()),
            table: HashTable::with_capacity(like.table.len()),
        }
    }

    fn name(&self, entry: &Entry) -> &[u8] {
        &self.arena[entry.offset as usize..entry.offset as usize + entry.len as usize]
    }

    fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.table.find(hash(name), |e| self.name(e) == name)
    }

    /// (value, below_only) pairs of an entry, newest first.
    fn values_of(&self, entry: Entry) -> impl Iterator<Item = (u32, bool)> + use<'_> {
        let links = &self.links;
        let mut inline = (!entry.chained).then_some((entry.value, entry.below_only));
        let mut at = if entry.chained { entry.value } else { NONE };
        std::iter::from_fn(move || {
            if let Some(v) = inline.take() {
                return Some(v);
            }
            if at == NONE {
                return None;
            }
            let link = links[at as usize];
            at = link.next;
            Some((link.value, link.below_only))
        })
    }

    /// The values listed exactly under `name` (not its parents), with their below-only flag.
    pub fn exact(&self, name: &str) -> impl Iterator<Item = (u32, bool)> + use<'_> {
        let entry = self.find(name.as_bytes()).copied();
        entry.into_iter().flat_map(|e| self.values_of(e))
    }

    /// Lists `value` under `name` (normalized, at most 255 bytes); `below_only` for `*.name`.
    pub fn insert(&mut self, name: &str, below_only: bool, value: u32) {
        let bytes = &name.as_bytes()[..name.len().min(255)];
        let h = hash(bytes);
        let arena = &self.arena;
        let found = self.table.find_mut(h, |e| {
            &arena[e.offset as usize..e.offset as usize + e.len as usize] == bytes
        });
        match found {
            Some(entry) => {
                // Turn an inline value into a chain, then prepend (constant time).
                let mut head = entry.value;
                if !entry.chained {
                    head = self.links.len() as u32;
                    self.links.push(Link {
                        value: entry.value,
                        below_only: entry.below_only,
                        next: NONE,
                    });
                }
                let link = self.links.len() as u32;
                self.links.push(Link {
                    value,
                    below_only,
                    next: head,
                });
                entry.chained = true;
                entry.value = link;
                entry.has_apex |= !below_only;
            }
            None => {
                let entry = Entry {
                    offset: self.arena.len() as u32,
                    len: bytes.len() as u8,
                    has_apex: !below_only,
                    chained: false,
                    below_only,
                    value,
                };
                self.arena.extend_from_slice(bytes);
                let arena = &self.arena;
                self.table.insert_unique(h, entry, |e| {
                    hash(&arena[e.offset as usize..e.offset as usize + e.len as usize])
                });
            }
        }
    }

    /// Gives back the slack of growth once building is done.
    pub fn shrink_to_fit(&mut self) {
        self.arena.shrink_to_fit();
        self.links.shrink_to_fit();
        let arena = &self.arena;
        self.table
            .shrink_to_fit(|e| hash(&arena[e.offset as usize..e.offset as usize + e.len as usize]));
    }

    /// Number of distinct listed names.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The most specific listed name covering `name` (a normalized query key), if any.
    pub fn lookup(&self, name: &str) -> Option<Hit<'_>> {
        if self.table.is_empty() {
            return None;
        }
        let mut suffix = name;
        let mut apex = true;
        loop {
            if let Some(&entry) = self.find(suffix.as_bytes()) {
                // A `*.d`-only listing does not cover `d` itself; keep looking at parents.
                if entry.has_apex || !apex {
                    return Some(Hit {
                        listed: std::str::from_utf8(self.name(&entry)).unwrap_or_default(),
                        apex,
                        table: self,
                        entry,
                    });
                }
            }
            let dot = suffix.find('.')?;
            suffix = &suffix[dot + 1..];
            apex = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameTable {
        let mut m = NameTable::default();
        m.insert("bad.sbs", false, 1);
        m.insert("wild.test", true, 2);
        m
    }

    #[test]
    fn matches_on_label_boundaries_only() {
        let m = table();
        assert_eq!(m.lookup("bad.sbs").unwrap().listed, "bad.sbs");
        assert!(m.lookup("ws.bad.sbs").is_some());
        assert!(m.lookup("a.b.bad.sbs").is_some());
        assert!(m.lookup("xbad.sbs").is_none());
        assert!(m.lookup("bad.sbs.example").is_none());
        assert!(m.lookup("sbs").is_none());
    }

    #[test]
    fn wildcard_covers_only_names_below() {
        let m = table();
        assert!(m.lookup("wild.test").is_none());
        let hit = m.lookup("a.wild.test").unwrap();
        assert!(hit.wildcard_only());
        assert_eq!(hit.values().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn most_specific_listing_wins_and_values_accumulate() {
        let mut m = table();
        m.insert("ws.bad.sbs", false, 3);
        m.insert("ws.bad.sbs", true, 4);
        m.insert("ws.bad.sbs", false, 5);
        let hit = m.lookup("x.ws.bad.sbs").unwrap();
        assert_eq!(hit.listed, "ws.bad.sbs");
        assert_eq!(
            hit.values().collect::<Vec<_>>(),
            vec![5, 4, 3],
            "newest first"
        );
        let apex = m.lookup("ws.bad.sbs").unwrap();
        assert_eq!(apex.values().collect::<Vec<_>>(), vec![5, 3]);
        assert_eq!(m.exact("ws.bad.sbs").count(), 3);
    }

    #[test]
    fn holds_many_names() {
        let mut m = NameTable::default();
        for i in 0..10_000u32 {
            m.insert(&format!("host{i}.example{}.test", i % 7), false, i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(
            m.lookup("a.host42.example0.test").unwrap().values().next(),
            Some(42)
        );
        assert!(m.lookup("host42.example1.test").is_none());
    }
}
