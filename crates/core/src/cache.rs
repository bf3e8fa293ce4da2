//! The verified-token cache of one engine: bounded, keyed on the exact
//! token text, oldest first out. It holds only tokens whose signature,
//! issuer and audience were checked; time claims are re-checked on every
//! hit by the engine.

use std::collections::{HashMap, VecDeque};

use greenlight_types::EngineStats;

use crate::token::Verified;

/// How many verified tokens one engine remembers. Gateways see a few hot
/// tokens per client; 256 entries of at most 8 KiB each bound the cache to
/// about 2 MiB, well inside a guest's memory cap.
pub const TOKEN_CACHE_CAPACITY: usize = 256;

/// Verified tokens by their exact text, oldest first out, with the
/// engine's counters.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: HashMap<String, Verified>,
    order: VecDeque<String>,
    pub(crate) stats: EngineStats,
}

impl TokenCache {
    pub(crate) fn get(&self, token: &str) -> Option<Verified> {
        self.entries.get(token).cloned()
    }

    pub(crate) fn insert(&mut self, token: &str, verified: Verified) {
        if self.entries.contains_key(token) {
            return;
        }
        while self.entries.len() >= TOKEN_CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(token.to_owned());
        self.entries.insert(token.to_owned(), verified);
    }

    /// Forgets every token (the counters stay).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}
