//! The trace store's index: trace id → the slot that holds the trace.
//!
//! Why not the standard map: every new trace (a tailed line with a trace id of its own, a new
//! trace of spans) looks its id up and evicts the least recently touched trace, whose id is
//! then removed. In the standard map a probe reads the table's control bytes and then its
//! bucket — two cache misses on a table of megabytes — and those misses were most of
//! `Inner::touch`'s and the removal's cost (2.5–3.5 % of the agent's CPU at 1,000 lines/s +
//! 1,000 spans/s, perf). Here a bucket is 8 bytes, the low 32 bits of the id's hash and the
//! slot, probed linearly: a lookup reads one cache line of the table (and the slot, which the
//! caller reads anyway); a full default store's table is 262,144 buckets, 2 MB instead of
//! 5.5 MB.
//!
//! The hash stays keyed (std's `RandomState`, SipHash with a per-process random key): trace
//! ids are chosen by senders, and an unkeyed hash would let one send ids that collide. A
//! bucket's stored hash bits give its home position (capacity ≤ 2³²), so a removal shifts
//! the following buckets back without reading their slots (backward-shift deletion; no
//! tombstones). The table stays at most half full: it doubles when an insertion would pass
//! that, and never shrinks.

use std::hash::{BuildHasher, RandomState};

use crate::record::TraceId;

/// Trace id → slot; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SlotIndex {
    hasher: RandomState,
    /// `hash bits << 32 | (slot + 1)`; 0 is an empty bucket.
    buckets: Vec<u64>,
    len: usize,
}

/// Buckets of a table that holds its first trace.
const FIRST_CAPACITY: usize = 16;

/// The most slots an index can name (`slot + 1` must fit in 32 bits).
pub(crate) const MAX_SLOTS: usize = u32::MAX as usize - 1;

impl SlotIndex {
    /// Traces indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Buckets of the table (twice the traces it may hold at most).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    fn hash(&self, trace_id: &TraceId) -> u32 {
        self.hasher.hash_one(trace_id) as u32
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The bucket holding `trace_id`; `id_of` gives the id a slot holds.
    fn find(&self, trace_id: &TraceId, id_of: impl Fn(u32) -> Option<TraceId>) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(trace_id);
        let mask = self.mask();
        let mut at = hash as usize & mask;
        loop {
            let bucket = self.buckets[at];
            if bucket == 0 {
                return None;
            }
            if (bucket >> 32) as u32 == hash && id_of(slot_of(bucket)) == Some(*trace_id) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The slot of `trace_id`, if indexed.
    pub fn get(&self, trace_id: &TraceId, id_of: impl Fn(u32) -> Option<TraceId>) -> Option<u32> {
        self.find(trace_id, id_of)
            .map(|at| slot_of(self.buckets[at]))
    }

    /// Indexes `trace_id` (not indexed yet) at `slot` (at most [`MAX_SLOTS`]).
    pub fn insert(&mut self, trace_id: &TraceId, slot: u32) {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        let hash = self.hash(trace_id);
        self.place(u64::from(hash) << 32 | (u64::from(slot) + 1));
        self.len += 1;
    }

    /// Puts a bucket in the first empty place from its home.
    fn place(&mut self, bucket: u64) {
        let mask = self.mask();
        let mut at = (bucket >> 32) as usize & mask;
        while self.buckets[at] != 0 {
            at = (at + 1) & mask;
        }
        self.buckets[at] = bucket;
    }

    /// Doubles the table and places every bucket again (from the hash bits it holds).
    fn grow(&mut self) {
        let capacity = (self.buckets.len() * 2).max(FIRST_CAPACITY);
        let old = std::mem::replace(&mut self.buckets, vec![0; capacity]);
        for bucket in old.into_iter().filter(|&b| b != 0) {
            self.place(bucket);
        }
    }

    /// Removes `trace_id`; `id_of` as for [`get`](Self::get). Returns whether it was there.
    pub fn remove(&mut self, trace_id: &TraceId, id_of: impl Fn(u32) -> Option<TraceId>) -> bool {
        let Some(mut hole) = self.find(trace_id, id_of) else {
            return false;
        };
        let mask = self.mask();
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let bucket = self.buckets[at];
            if bucket == 0 {
                break;
            }
            // A bucket moves back into the hole unless its home lies after the hole (in probe
            // order, up to the bucket itself): then a lookup starting at home would not pass
            // the hole.
            let home = (bucket >> 32) as usize & mask;
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                self.buckets[hole] = bucket;
                hole = at;
            }
        }
        self.buckets[hole] = 0;
        self.len -= 1;
        true
    }
}

fn slot_of(bucket: u64) -> u32 {
    (bucket as u32).wrapping_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn id(n: u64) -> TraceId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8] = 1;
        TraceId(bytes)
    }

    /// Random insertions and removals (with ids that collide in the low bits, so buckets
    /// wrap and shift) agree with a standard map at every step, and the table stays at most
    /// half full.
    #[test]
    fn inserts_and_removals_agree_with_a_map() {
        let mut index = SlotIndex::default();
        let mut slots: Vec<Option<TraceId>> = Vec::new();
        let mut model: HashMap<TraceId, u32> = HashMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..20_000 {
            let n = next() % 3_000;
            let trace = id(n);
            let id_of = |s: u32| slots.get(s as usize).copied().flatten();
            let held = index.get(&trace, id_of);
            assert_eq!(held, model.get(&trace).copied(), "step {step}");
            if held.is_some() && next() % 2 == 0 {
                let slot = model.remove(&trace).unwrap();
                assert!(index.remove(&trace, |s| slots.get(s as usize).copied().flatten()));
                slots[slot as usize] = None;
            } else if held.is_none() {
                let slot = slots.len() as u32;
                slots.push(Some(trace));
                index.insert(&trace, slot);
                model.insert(trace, slot);
            }
            assert_eq!(index.len(), model.len());
            assert!(index.len() * 2 <= index.capacity());
        }
        for (trace, slot) in &model {
            assert_eq!(
                index.get(trace, |s| slots.get(s as usize).copied().flatten()),
                Some(*slot)
            );
        }
        assert!(!index.remove(&id(1_000_000), |_| None));
    }
}
