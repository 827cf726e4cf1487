//! The bounds: evicting the least useful template keys and roots when `max_templates` or
//! `max_clusters` is reached.

use super::State;
use crate::cluster::{IdTable, RootIndex};

impl State {
    /// Evicts the tenth of the template keys with the fewest events (oldest first among
    /// equals) and rebuilds the miner from the others. Template ids are content hashes, so
    /// the kept templates keep their ids; the clusters keep their counts.
    pub(super) fn evict_keys(&mut self) {
        let n = self.keys.len();
        if n == 0 {
            return;
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&k| (self.keys[k].count, self.keys[k].last));
        let mut gone = vec![false; n];
        for &k in &order[..(n / 10).max(1)] {
            gone[k] = true;
            self.counters.templates_evicted += 1;
            self.counters.evicted_events += self.keys[k].count;
        }
        self.drop_keys(&gone);
    }

    /// Rebuilds the miner and the key table without the keys marked in `gone`.
    pub(super) fn drop_keys(&mut self, gone: &[bool]) {
        let keep: Vec<bool> = gone.iter().map(|g| !g).collect();
        self.miner.retain(&keep);
        let mut keys = Vec::with_capacity(self.keys.len());
        for (k, ks) in std::mem::take(&mut self.keys).into_iter().enumerate() {
            if keep[k] {
                keys.push(ks);
            }
        }
        self.keys = keys;
    }

    /// Evicts a tenth of the roots: first those not seen within the emergence window and
    /// baseline (they cannot be emerging, and their history has the least to say about now),
    /// fewest events first, then, if the recent ones fill the bound on their own, the recent
    /// ones with the fewest events. Their templates go with them. The other roots keep their
    /// clusters and ids, except a cluster whose canonical root left: it takes the id of its
    /// new canonical root, and the old id stays an alias of it.
    pub(super) fn evict_roots(&mut self) {
        let n = self.root_stats.len();
        if n == 0 {
            return;
        }
        let latest = self.root_stats.iter().map(|r| r.last).max().unwrap_or(0);
        let horizon = latest.saturating_sub(
            (self.config.window_secs + self.config.baseline_secs).saturating_mul(1_000_000_000)
                as i64,
        );
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&r| {
            let rs = &self.root_stats[r];
            (rs.last >= horizon, rs.count, rs.last)
        });
        let mut keep = vec![true; n];
        for &r in &order[..(n / 10).max(1)] {
            keep[r] = false;
            self.counters.roots_evicted += 1;
            self.counters.root_evicted_events += self.root_stats[r].count;
        }
        let before = self.roots.id_table();
        let map = self.roots.retain(&keep);
        self.root_generation += 1;
        self.alias_retired(&before, Some(&map));
        let mut stats = Vec::with_capacity(n);
        for (r, rs) in std::mem::take(&mut self.root_stats).into_iter().enumerate() {
            if keep[r] {
                stats.push(rs);
            }
        }
        self.root_stats = stats;
        let gone: Vec<bool> = self
            .keys
            .iter()
            .map(|k| map[k.root as usize].is_none())
            .collect();
        for (k, ks) in self.keys.iter_mut().enumerate() {
            if let Some(root) = map[ks.root as usize] {
                ks.root = root;
            } else {
                debug_assert!(gone[k]);
            }
        }
        self.drop_keys(&gone);
    }

    /// Records every cluster id that the regrouping since `before` retired as an alias of its
    /// successor; returns how many. `map` as in [`RootClusters::retired_ids`].
    pub(super) fn alias_retired(
        &mut self,
        before: &IdTable,
        map: Option<&[Option<RootIndex>]>,
    ) -> usize {
        let retired = self.roots.retired_ids(before, map);
        for &(from, to) in &retired {
            self.cluster_aliases.insert(from, to);
        }
        retired.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ClusteringConfig;
    use crate::engine::{Engine, EngineCounts, ErrorEvent};

    #[test]
    fn stale_rare_templates_are_evicted_and_counted_frequent_ones_stay() {
        let config = ClusteringConfig {
            max_templates: 20,
            ..ClusteringConfig::default()
        };
        let engine = Engine::new(config);
        let hot = ErrorEvent {
            text: "read tcp 1.2.3.4:5->6.7.8.9:10: read: connection reset by peer",
            service: None,
            severity: "error",
            trace_id: None,
            span_id: None,
            time_unix_nanos: 0,
            stack: None,
            frame: None,
        };
        let first = engine.observe(&hot);
        for i in 0..10 {
            engine.observe(&ErrorEvent {
                time_unix_nanos: i,
                ..hot
            });
        }
        for i in 0..200 {
            // Same root (connection reset), ever new shapes: `wrapper<i>` words are new.
            let text = format!(
                "wrapper{} layer: read: connection reset by peer",
                "x".repeat(i % 40 + 1)
            );
            let extra = format!("{text} {}", "y".repeat(i / 40 + 1));
            engine.observe(&ErrorEvent {
                text: &extra,
                time_unix_nanos: 100 + i as i64,
                ..hot
            });
        }
        let EngineCounts {
            bounds: counters,
            templates,
            ..
        } = engine.counters();
        assert!(templates <= 20, "{templates}");
        assert!(counters.templates_evicted > 0);
        assert!(counters.evicted_events > 0);
        let again = engine.observe(&ErrorEvent {
            time_unix_nanos: 1_000,
            ..hot
        });
        assert_eq!(again, first, "the frequent template keeps its ids");
    }
}
