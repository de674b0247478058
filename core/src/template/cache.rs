//! Compiled templates, cached per backend and bounded, keyed by a hash of their text.
//!
//! Rendering the same template 100,000 times in one statement must not parse it 100,000 times.
//! The key is the 128-bit xxh3 hash of the text (fast: a 3 KB template hashes in well under a
//! microsecond); the text is kept too and compared on a hit, so a collision can never render
//! the wrong template. Eviction is least-recently-used, by count and by total text size.

use super::Compiled;
use std::collections::HashMap;
use std::rc::Rc;
use xxhash_rust::xxh3::xxh3_128;

pub const MAX_ENTRIES: usize = 256;
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

struct Entry {
    source: Box<str>,
    compiled: Rc<Compiled>,
    last_used: u64,
}

pub struct Cache {
    entries: HashMap<u128, Entry>,
    bytes: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl Cache {
    pub fn new() -> Self {
        Cache {
            entries: HashMap::new(),
            bytes: 0,
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub fn get(&mut self, source: &str) -> Option<Rc<Compiled>> {
        self.clock += 1;
        match self.entries.get_mut(&xxh3_128(source.as_bytes())) {
            Some(e) if &*e.source == source => {
                e.last_used = self.clock;
                self.hits += 1;
                Some(e.compiled.clone())
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn insert(&mut self, source: &str, compiled: Rc<Compiled>) {
        if source.len() > MAX_BYTES {
            return;
        }
        let key = xxh3_128(source.as_bytes());
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.source.len();
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= MAX_ENTRIES || self.bytes + source.len() > MAX_BYTES)
        {
            let oldest = *self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k)
                .expect("non-empty");
            let e = self.entries.remove(&oldest).expect("present");
            self.bytes -= e.source.len();
        }
        self.bytes += source.len();
        self.entries.insert(
            key,
            Entry {
                source: source.into(),
                compiled,
                last_used: self.clock,
            },
        );
    }

    /// (entries, hits, misses)
    pub fn stats(&self) -> (usize, u64, u64) {
        (self.entries.len(), self.hits, self.misses)
    }
}
