//! Leak detection: which checkout site holds a connection for too long.
//!
//! Only built when `leak_detection_threshold` is set, so it costs nothing otherwise. Each
//! checkout registers its site and time in a slab; the return removes it; the reaper scans
//! the slab and warns once per checkout that is held past the threshold.

use std::panic::Location;
use std::time::Duration;

use crate::clock::Instant;

use crate::error::HeldCheckout;
use crate::sync::{Mutex, lock};

#[derive(Debug)]
struct Entry {
    since: Instant,
    site: &'static Location<'static>,
    reported: bool,
}

/// Outstanding checkouts, by slab key.
#[derive(Debug, Default)]
pub(crate) struct LeakRegistry {
    inner: Mutex<Slab>,
}

#[derive(Debug, Default)]
struct Slab {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

/// A checkout still held past the threshold, as reported by a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leak {
    pub(crate) site: &'static Location<'static>,
    pub(crate) held: Duration,
}

impl LeakRegistry {
    pub(crate) fn register(&self, since: Instant, site: &'static Location<'static>) -> usize {
        let mut slab = lock(&self.inner);
        let entry = Some(Entry {
            since,
            site,
            reported: false,
        });
        match slab.free.pop() {
            Some(key) => {
                slab.entries[key] = entry;
                key
            }
            None => {
                slab.entries.push(entry);
                slab.entries.len() - 1
            }
        }
    }

    pub(crate) fn unregister(&self, key: usize) {
        let mut slab = lock(&self.inner);
        if slab.entries[key].take().is_some() {
            slab.free.push(key);
        }
    }

    /// The `n` checkouts held longest, longest first.
    pub(crate) fn longest(&self, now: Instant, n: usize) -> Vec<HeldCheckout> {
        let slab = lock(&self.inner);
        let mut held: Vec<HeldCheckout> = slab
            .entries
            .iter()
            .flatten()
            .map(|entry| HeldCheckout {
                site: entry.site,
                held: now.saturating_duration_since(entry.since),
            })
            .collect();
        held.sort_by_key(|h| std::cmp::Reverse(h.held));
        held.truncate(n);
        held
    }

    /// Returns the checkouts newly found held longer than `threshold`.
    pub(crate) fn scan(&self, now: Instant, threshold: Duration) -> Vec<Leak> {
        let mut slab = lock(&self.inner);
        let mut found = Vec::new();
        for entry in slab.entries.iter_mut().flatten() {
            let held = now.saturating_duration_since(entry.since);
            if !entry.reported && held >= threshold {
                entry.reported = true;
                found.push(Leak {
                    site: entry.site,
                    held,
                });
            }
        }
        found
    }
}
