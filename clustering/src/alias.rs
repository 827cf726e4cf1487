//! Aliases: ids that were merged or renamed away, each pointing at the id that took its place.
//!
//! An id is a content hash (DESIGN decision 1), so when a regrouping changes what an id is a
//! hash of, the old id stops naming anything. Links, bookmarks and dashboards hold old ids;
//! an [`AliasMap`] keeps them working: [`AliasMap::resolve`] follows `old → newer → ...` to
//! the id that is live now.
//!
//! Bounds: at most `max` aliases, the oldest leaving first (an alias is only as useful as the
//! links still holding its old id). A chain is followed for at most [`MAX_HOPS`] links, so a
//! cycle (an id retired, then live again, then retired towards its own successor) ends.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Longest alias chain followed: one link per rename of the same pattern, and a pattern is
/// renamed a handful of times in its life; the bound only stops cycles.
pub const MAX_HOPS: usize = 64;

/// Old id → newer id, bounded, oldest first (see the module documentation).
#[derive(Debug, Clone)]
pub struct AliasMap<Id> {
    to: HashMap<Id, Id>,
    order: VecDeque<Id>,
    max: usize,
}

impl<Id: Copy + Eq + Hash> AliasMap<Id> {
    /// An empty map keeping at most `max` aliases.
    pub fn new(max: usize) -> Self {
        AliasMap {
            to: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Records that `from` is now `to` (an existing alias of `from` is redirected in place).
    /// An alias to itself is ignored. Past the bound the oldest alias leaves.
    pub fn insert(&mut self, from: Id, to: Id) {
        if from == to {
            return;
        }
        if self.to.insert(from, to).is_none() {
            self.order.push_back(from);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.to.remove(&old);
                }
            }
        }
    }

    /// The live id `id` stands for: `id` itself when `is_live` says so, else the end of its
    /// alias chain when that is live; `None` when the id is unknown or its chain ends at an
    /// id that is gone (evicted) or left the bound.
    pub fn resolve(&self, id: Id, is_live: impl Fn(Id) -> bool) -> Option<Id> {
        let mut id = id;
        for _ in 0..=MAX_HOPS {
            if is_live(id) {
                return Some(id);
            }
            id = *self.to.get(&id)?;
        }
        None
    }

    /// The retired ids that stand for the live `id` now (their chains end at it, see
    /// [`resolve`](Self::resolve)), newest alias first, at most `max`. Cost: one chain walk per
    /// alias kept.
    pub fn retired_into(&self, id: Id, is_live: impl Fn(Id) -> bool, max: usize) -> Vec<Id> {
        self.order
            .iter()
            .rev()
            .filter(|&&from| from != id && self.resolve(from, &is_live) == Some(id))
            .take(max)
            .copied()
            .collect()
    }

    /// The aliases, `(old, newer)`, oldest first (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (Id, Id)> + '_ {
        self.order
            .iter()
            .filter_map(|from| self.to.get(from).map(|to| (*from, *to)))
    }

    /// Number of aliases kept.
    pub fn len(&self) -> usize {
        self.to.len()
    }

    /// Whether there is no alias.
    pub fn is_empty(&self) -> bool {
        self.to.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_resolve_to_the_live_id_and_cycles_end() {
        let mut map = AliasMap::new(10);
        map.insert(1u32, 2);
        map.insert(2, 3);
        map.insert(4, 4);
        assert_eq!(map.len(), 2, "an alias to itself is no alias");
        assert_eq!(map.resolve(1, |id| id == 3), Some(3));
        assert_eq!(map.resolve(2, |id| id == 2), Some(2), "a live id is itself");
        assert_eq!(map.resolve(9, |id| id == 3), None, "unknown");
        map.insert(3, 1);
        assert_eq!(map.resolve(1, |_| false), None, "a cycle of dead ids ends");
    }

    #[test]
    fn the_retired_ids_of_a_live_id_are_those_whose_chains_end_there() {
        let mut map = AliasMap::new(10);
        map.insert(1u32, 2);
        map.insert(2, 3);
        map.insert(4, 3);
        map.insert(5, 6);
        map.insert(7, 8);
        map.insert(8, 3);
        let live = |id: u32| id == 3 || id == 6 || id == 8;
        assert_eq!(map.retired_into(3, live, 10), [4, 2, 1], "newest first");
        assert_eq!(map.retired_into(3, live, 2), [4, 2]);
        assert_eq!(map.retired_into(6, live, 10), [5]);
        // 8 is live again: 7 stands for 8, not for 3.
        assert_eq!(map.retired_into(8, live, 10), [7]);
        assert!(map.retired_into(9, live, 10).is_empty());
    }

    #[test]
    fn the_oldest_alias_leaves_first() {
        let mut map = AliasMap::new(2);
        map.insert(1u32, 10);
        map.insert(2, 10);
        map.insert(1, 11);
        map.insert(3, 10);
        let kept: Vec<(u32, u32)> = map.iter().collect();
        assert_eq!(kept, [(2, 10), (3, 10)]);
    }
}
