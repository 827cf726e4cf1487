//! Error patterns: roots grouped by TF-IDF similarity with DBSCAN.
//!
//! The points are *roots* (the masked innermost errors of the templates, see [`crate::root`]),
//! not raw messages, so the cost of a re-run depends on how many kinds of error exist, not on
//! how many messages arrived. Each root is a TF-IDF vector over its words: the inverse
//! document frequency is counted over roots, and words weigh less the later they come
//! (`1 / (1 + decay·i)`), because a Go error names its kind first (`invalid character ...`,
//! `cannot unmarshal ...`, `unexpected EOF`). Vectors are hashed into a fixed number of
//! dimensions and L2-normalised, so the Euclidean distance DBSCAN uses orders pairs like the
//! cosine distance. DBSCAN (`min_points = 2`, computed as connected components, see
//! [`RootClusters::rerun`]) finds the dense groups; a root it calls noise is a cluster of its
//! own, never dropped.
//!
//! Ids do not depend on arrival order. A re-run is a function of the *set* of roots: the
//! vectors depend on the set only, the neighbour search walks the roots in text order (so
//! even its bound cuts the same searches on every node), and a cluster's id is the content
//! hash of its *canonical* root, chosen by a rule over its members, the shortest (then the
//! first in byte order): the most general wording of the kind (`connection reset by peer`
//! before `write: connection reset by peer (after 3 retries)`). Two nodes that saw the same
//! roots in any order give every root the same cluster id after a re-run.
//!
//! Between re-runs a new root joins the cluster of its nearest root when it is within the
//! same tolerance (keeping that cluster's id), else it starts a singleton cluster; the next
//! re-run makes the grouping the set's again. A re-run or an eviction can retire an id (two
//! clusters merged, a shorter root joined, the canonical root left): [`RootClusters::retired_ids`]
//! says which id took its place, for the owner's alias map ([`crate::alias`]).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// Stable id of a cluster (error pattern): a hash of its canonical root (its shortest
/// member, see the module documentation), 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// The id of the cluster whose canonical root is `root`.
    pub fn of(root: &str) -> Self {
        ClusterId(xxh3_64(root.as_bytes()) ^ 0x00c1_0575_e5ed_0000)
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<ClusterId> for String {
    fn from(id: ClusterId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for ClusterId {
    type Error = std::num::ParseIntError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        u64::from_str_radix(&text, 16).map(ClusterId)
    }
}

/// Index of a root inside one [`RootClusters`].
pub type RootIndex = u32;

const DIMS: usize = 512;

/// Parameters of the TF-IDF vectors and of DBSCAN.
#[derive(Debug, Clone, Copy)]
pub struct VectorParams {
    /// DBSCAN tolerance: largest Euclidean distance between normalised vectors of neighbours.
    pub eps: f32,
    /// Weight decay by word position.
    pub decay: f32,
}

impl Default for VectorParams {
    fn default() -> Self {
        VectorParams {
            eps: 0.8,
            decay: 0.6,
        }
    }
}

#[derive(Debug, Clone)]
struct Root {
    text: Box<str>,
    words: Vec<Box<str>>,
    cluster: u32,
    /// Its TF-IDF vector as of its insertion or the last re-run, for placing new roots.
    /// The document frequencies drift a little as roots arrive; every re-run recomputes it.
    vector: Vec<(u32, f32)>,
}

/// Roots and the clusters they form.
#[derive(Debug, Clone)]
pub struct RootClusters {
    roots: Vec<Root>,
    by_text: HashMap<Box<str>, RootIndex>,
    df: HashMap<Box<str>, u32>,
    /// Canonical root of each cluster label (labels are dense indices, rebuilt by re-runs).
    canonical: Vec<RootIndex>,
    params: VectorParams,
    since_rerun: usize,
    /// Bumped by [`retain`](Self::retain): a re-run on a copy taken before an eviction
    /// numbers its roots differently and must not be adopted.
    generation: u64,
}

impl RootClusters {
    /// No roots yet.
    pub fn new(params: VectorParams) -> Self {
        RootClusters {
            roots: Vec::new(),
            by_text: HashMap::new(),
            df: HashMap::new(),
            canonical: Vec::new(),
            params,
            since_rerun: 0,
            generation: 0,
        }
    }

    /// Number of roots.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether there is no root.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Roots added since the last re-run.
    pub fn since_rerun(&self) -> usize {
        self.since_rerun
    }

    /// The index of a root text, if known.
    pub fn find(&self, root: &str) -> Option<RootIndex> {
        self.by_text.get(root).copied()
    }

    /// The text of a root.
    pub fn root_text(&self, root: RootIndex) -> &str {
        &self.roots[root as usize].text
    }

    /// Adds a root (or finds it) and places it in the nearest cluster within tolerance, else
    /// in a new one.
    pub fn insert(&mut self, root: &str) -> RootIndex {
        self.insert_placed(root, true)
    }

    /// Adds a root (or finds it) in a singleton cluster, for callers that re-run DBSCAN
    /// right after adding many roots (batch mode): it skips the nearest-root search.
    pub fn insert_for_rerun(&mut self, root: &str) -> RootIndex {
        self.insert_placed(root, false)
    }

    fn insert_placed(&mut self, root: &str, place: bool) -> RootIndex {
        if let Some(&r) = self.by_text.get(root) {
            return r;
        }
        let words = words(root);
        let mut seen: Vec<&Box<str>> = words.iter().collect();
        seen.sort();
        seen.dedup();
        for w in seen {
            *self.df.entry(w.clone()).or_insert(0) += 1;
        }
        let index = self.roots.len() as RootIndex;
        let vector = self.vector(&words);
        let nearest = if place {
            self.nearest_cluster(&vector)
        } else {
            None
        };
        let cluster = nearest.unwrap_or_else(|| {
            self.canonical.push(index);
            (self.canonical.len() - 1) as u32
        });
        self.roots.push(Root {
            text: root.into(),
            words,
            cluster,
            vector,
        });
        self.by_text.insert(root.into(), index);
        self.since_rerun += 1;
        index
    }

    fn nearest_cluster(&self, v: &[(u32, f32)]) -> Option<u32> {
        let mut best: Option<(f32, u32)> = None;
        for r in &self.roots {
            let d = distance(v, &r.vector);
            if d < self.params.eps && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, r.cluster));
            }
        }
        best.map(|(_, c)| c)
    }

    /// The cluster of a root.
    pub fn cluster_of(&self, root: RootIndex) -> ClusterId {
        let label = self.roots[root as usize].cluster as usize;
        ClusterId::of(&self.roots[self.canonical[label] as usize].text)
    }

    /// The canonical root text of a root's cluster.
    pub fn canonical_of(&self, root: RootIndex) -> &str {
        let label = self.roots[root as usize].cluster as usize;
        &self.roots[self.canonical[label] as usize].text
    }

    /// The cluster id of every root now, to tell afterwards which ids a re-run or an
    /// eviction retired ([`retired_ids`](Self::retired_ids)). Cost: one hash per cluster.
    pub fn id_table(&self) -> IdTable {
        let label_ids: Vec<ClusterId> = self
            .canonical
            .iter()
            .map(|&c| ClusterId::of(&self.roots[c as usize].text))
            .collect();
        IdTable {
            ids: self
                .roots
                .iter()
                .map(|r| label_ids[r.cluster as usize])
                .collect(),
            canonical: self
                .roots
                .iter()
                .map(|r| self.canonical[r.cluster as usize])
                .collect(),
        }
    }

    /// The ids of `before` that name no cluster any more, each with the id that took its
    /// place: the id of the cluster its canonical root is in now, or, when that root left,
    /// of the cluster its first remaining member is in. `map` gives each old root's index
    /// now (what [`retain`](Self::retain) returned; `None` when indices did not change). An
    /// id whose every root left has no successor and is not listed. Oldest root first.
    pub fn retired_ids(
        &self,
        before: &IdTable,
        map: Option<&[Option<RootIndex>]>,
    ) -> Vec<(ClusterId, ClusterId)> {
        let live: HashSet<ClusterId> = self
            .canonical
            .iter()
            .map(|&c| ClusterId::of(&self.roots[c as usize].text))
            .collect();
        let now = |old: RootIndex| -> Option<RootIndex> {
            match map {
                Some(map) => map.get(old as usize).copied().flatten(),
                None => ((old as usize) < self.roots.len()).then_some(old),
            }
        };
        let mut decided: HashSet<ClusterId> = HashSet::new();
        let mut retired = Vec::new();
        for (old, &id) in before.ids.iter().enumerate() {
            if live.contains(&id) || decided.contains(&id) {
                continue;
            }
            let heir = now(before.canonical[old]).or_else(|| now(old as RootIndex));
            if let Some(root) = heir {
                decided.insert(id);
                retired.push((id, self.cluster_of(root)));
            }
        }
        retired
    }

    /// Whether `id` names a cluster now.
    pub fn is_live(&self, id: ClusterId) -> bool {
        self.canonical
            .iter()
            .any(|&c| ClusterId::of(&self.roots[c as usize].text) == id)
    }

    fn vector(&self, words: &[Box<str>]) -> Vec<(u32, f32)> {
        let n = self.roots.len().max(1) as f32;
        let mut v: Vec<(u32, f32)> = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let df = self.df.get(w).copied().unwrap_or(0) as f32;
            let idf = ((1.0 + n) / (1.0 + df)).ln() + 1.0;
            let weight = idf / (1.0 + self.params.decay * i as f32);
            let h = xxh3_64(w.as_bytes());
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            v.push(((h % DIMS as u64) as u32, sign * weight));
        }
        v.sort_unstable_by_key(|e| e.0);
        let mut merged: Vec<(u32, f32)> = Vec::with_capacity(v.len());
        for (d, x) in v {
            match merged.last_mut() {
                Some(last) if last.0 == d => last.1 += x,
                _ => merged.push((d, x)),
            }
        }
        let norm = merged.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
        if norm > 0.0 {
            for e in &mut merged {
                e.1 /= norm;
            }
        }
        merged
    }

    /// The cluster label of every root and the canonical root of every label (for snapshots).
    pub fn labels(&self) -> (Vec<u32>, Vec<RootIndex>) {
        (
            self.roots.iter().map(|r| r.cluster).collect(),
            self.canonical.clone(),
        )
    }

    /// Restores labels saved by [`labels`](Self::labels); refused (false) when they do not
    /// fit the roots.
    pub fn restore_labels(&mut self, labels: &[u32], canonical: &[RootIndex]) -> bool {
        let fits = labels.len() == self.roots.len()
            && labels.iter().all(|&l| (l as usize) < canonical.len())
            && canonical.iter().all(|&c| (c as usize) < self.roots.len());
        if fits {
            for (r, &l) in self.roots.iter_mut().zip(labels) {
                r.cluster = l;
            }
            self.canonical = canonical.to_vec();
        }
        fits
    }

    /// Keeps the roots whose `keep` entry is true, in order, with their clusters; returns
    /// each old index's new one (`None`: gone). Each cluster's canonical root is chosen again
    /// by the rule (see the module documentation) among its remaining members, so only a
    /// cluster that lost its canonical root (or that had taken a shorter root since the last
    /// re-run) changes id: [`retired_ids`](Self::retired_ids) tells which.
    pub fn retain(&mut self, keep: &[bool]) -> Vec<Option<RootIndex>> {
        let mut map = vec![None; self.roots.len()];
        let mut kept: Vec<Root> = Vec::with_capacity(self.roots.len());
        let mut new_label: HashMap<u32, u32> = HashMap::new();
        let mut canonical: Vec<RootIndex> = Vec::new();
        for (old, root) in std::mem::take(&mut self.roots).into_iter().enumerate() {
            if !keep.get(old).copied().unwrap_or(false) {
                continue;
            }
            let index = kept.len() as RootIndex;
            map[old] = Some(index);
            let label = *new_label.entry(root.cluster).or_insert_with(|| {
                canonical.push(index);
                (canonical.len() - 1) as u32
            });
            kept.push(Root {
                cluster: label,
                ..root
            });
            let current = canonical[label as usize] as usize;
            if canonical_first(&kept[index as usize].text, &kept[current].text) {
                canonical[label as usize] = index;
            }
        }
        self.df.clear();
        self.by_text.clear();
        for (i, root) in kept.iter().enumerate() {
            let mut seen: Vec<&Box<str>> = root.words.iter().collect();
            seen.sort();
            seen.dedup();
            for w in seen {
                *self.df.entry(w.clone()).or_insert(0) += 1;
            }
            self.by_text.insert(root.text.clone(), i as RootIndex);
        }
        self.roots = kept;
        self.canonical = canonical;
        self.generation += 1;
        map
    }

    /// Takes the labels of `rerun`, a copy of `self` taken earlier and re-clustered since;
    /// roots added to `self` after the copy are placed again by nearest neighbour. A copy
    /// taken before an eviction is dropped (the next maintenance re-runs again).
    pub fn adopt(&mut self, mut rerun: RootClusters) {
        if rerun.generation != self.generation {
            self.since_rerun = self.since_rerun.max(1);
            return;
        }
        let extra: Vec<Box<str>> = self.roots[rerun.roots.len().min(self.roots.len())..]
            .iter()
            .map(|r| r.text.clone())
            .collect();
        for text in extra {
            rerun.insert(&text);
        }
        rerun.since_rerun = self.since_rerun.saturating_sub(rerun.since_rerun);
        *self = rerun;
    }

    /// Re-runs DBSCAN over all roots and relabels them; returns the number of clusters.
    ///
    /// With `min_points = 2` every root that has a neighbour within `eps` is a core point,
    /// so DBSCAN's clusters are the connected components of the neighbour graph and its
    /// noise the roots without a neighbour. They are found here with an inverted index of the
    /// sparse vectors (only roots sharing a dimension can be neighbours) and a union-find, in
    /// memory linear in the roots' words, instead of a dense matrix of 512 floats per root:
    /// the same labels as linfa-clustering's DBSCAN (a test checks it), for any number of
    /// roots. Bounded work: at most [`MAX_CANDIDATES`] candidates are compared per root; a
    /// root whose search was cut counts in [`RerunReport::searches_cut`].
    pub fn rerun(&mut self) -> usize {
        self.rerun_reporting().clusters
    }

    /// [`rerun`](Self::rerun), with what its bounds did.
    pub fn rerun_reporting(&mut self) -> RerunReport {
        self.since_rerun = 0;
        let n = self.roots.len();
        let mut report = RerunReport::default();
        if n == 0 {
            self.canonical.clear();
            return report;
        }
        let vectors: Vec<Vec<(u32, f32)>> = self
            .roots
            .iter()
            .map(|r| {
                let v = self.vector(&r.words);
                if v.is_empty() {
                    // A root without words: a unit vector of its own text keeps it apart.
                    vec![((xxh3_64(r.text.as_bytes()) % DIMS as u64) as u32, 1.0)]
                } else {
                    v
                }
            })
            .collect();
        for (root, v) in self.roots.iter_mut().zip(&vectors) {
            root.vector.clone_from(v);
        }
        // The search walks the roots in text order, not arrival order: a root's candidates,
        // and so which searches the bound cuts, are the same on every node that saw the set.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            self.roots[a as usize]
                .text
                .cmp(&self.roots[b as usize].text)
        });
        let mut postings: Vec<Vec<u32>> = vec![Vec::new(); DIMS];
        for (rank, &i) in order.iter().enumerate() {
            for &(d, _) in &vectors[i as usize] {
                postings[d as usize].push(rank as u32);
            }
        }
        // Union-find over ranks.
        let mut parent: Vec<u32> = (0..n as u32).collect();
        let mut checked: Vec<u32> = vec![u32::MAX; n];
        for (rank, &i) in order.iter().enumerate() {
            let v = &vectors[i as usize];
            let mut budget = MAX_CANDIDATES;
            'search: for &(d, _) in v {
                let list = &postings[d as usize];
                // Each pair once: only later ranks (postings are in rank order).
                let from = list.partition_point(|&j| j as usize <= rank);
                for &j in &list[from..] {
                    let j = j as usize;
                    if checked[j] == rank as u32 {
                        continue;
                    }
                    checked[j] = rank as u32;
                    if budget == 0 {
                        report.searches_cut += 1;
                        break 'search;
                    }
                    budget -= 1;
                    let (a, b) = (find(&mut parent, rank), find(&mut parent, j));
                    if a != b && distance(v, &vectors[order[j] as usize]) < self.params.eps {
                        parent[a.max(b)] = a.min(b) as u32;
                    }
                }
            }
        }
        let mut rank_of = vec![0u32; n];
        for (rank, &i) in order.iter().enumerate() {
            rank_of[i as usize] = rank as u32;
        }
        // Labels in root order (internal only); each label's canonical root by the rule.
        let mut label_of_rep: HashMap<usize, u32> = HashMap::new();
        self.canonical.clear();
        for (i, &rank) in rank_of.iter().enumerate() {
            let rep = find(&mut parent, rank as usize);
            let c = *label_of_rep.entry(rep).or_insert_with(|| {
                self.canonical.push(i as RootIndex);
                (self.canonical.len() - 1) as u32
            });
            self.roots[i].cluster = c;
            let current = self.canonical[c as usize];
            if canonical_first(&self.roots[i].text, &self.roots[current as usize].text) {
                self.canonical[c as usize] = i as RootIndex;
            }
        }
        report.clusters = self.canonical.len();
        report
    }
}

/// The cluster ids of the roots at one moment ([`RootClusters::id_table`]).
#[derive(Debug, Clone, Default)]
pub struct IdTable {
    /// Per root, its cluster's id.
    ids: Vec<ClusterId>,
    /// Per root, its cluster's canonical root.
    canonical: Vec<RootIndex>,
}

/// Whether `a` comes before `b` as a cluster's canonical root: shorter first, then byte
/// order. The shortest member is the kind's most general wording (wrappers and details only
/// add words), and the rule depends on the members alone, never on their arrival.
fn canonical_first(a: &str, b: &str) -> bool {
    (a.len(), a).cmp(&(b.len(), b)) == Ordering::Less
}

/// Most candidate roots compared with one root in a re-run. Roots share dimensions mostly
/// through common words; 20,000 comparisons (~2 ms) per root find the neighbours of every
/// root in the sets measured (at most a few hundred candidates each) while keeping a re-run
/// over pathological input (every root sharing every word) linear in the roots.
pub const MAX_CANDIDATES: usize = 20_000;

/// What a re-run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RerunReport {
    /// Clusters found.
    pub clusters: usize,
    /// Roots whose neighbour search stopped at [`MAX_CANDIDATES`] (they may miss a neighbour).
    pub searches_cut: usize,
}

/// The representative of `i`'s component (with path halving).
fn find(parent: &mut [u32], mut i: usize) -> usize {
    while parent[i] as usize != i {
        let grand = parent[parent[i] as usize];
        parent[i] = grand;
        i = grand as usize;
    }
    i
}

fn distance(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut dot) = (0, 0, 0.0f32);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                dot += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    (2.0 - 2.0 * dot).max(0.0).sqrt()
}

/// The lower-case ASCII words of a root, without the `<*>` placeholders.
fn words(root: &str) -> Vec<Box<str>> {
    root.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase().into_boxed_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn clusters(roots: &[&str]) -> Vec<ClusterId> {
        let mut rc = RootClusters::new(VectorParams::default());
        let idx: Vec<RootIndex> = roots.iter().map(|r| rc.insert(r)).collect();
        rc.rerun();
        idx.iter().map(|&i| rc.cluster_of(i)).collect()
    }

    #[test]
    fn near_kinds_stay_apart() {
        let c = clusters(&[
            "EOF",
            "unexpected EOF",
            "i/o timeout",
            "context deadline exceeded",
            "TLS handshake timeout",
            "context canceled",
        ]);
        let mut unique = c.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), c.len(), "{c:?}");
    }

    #[test]
    fn the_union_find_rerun_gives_linfa_dbscan_labels() {
        use linfa::prelude::ParamGuard;
        use linfa::traits::Transformer;
        use linfa_clustering::Dbscan;
        use linfa_nn::{distance::L2Dist, CommonNearestNeighbour};
        let words = [
            "connection",
            "refused",
            "reset",
            "by",
            "peer",
            "timeout",
            "i/o",
            "read",
            "write",
            "broken",
            "pipe",
            "EOF",
            "unexpected",
            "context",
            "deadline",
            "exceeded",
            "no",
            "such",
            "host",
            "tls",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut rc = RootClusters::new(VectorParams::default());
        for _ in 0..250 {
            let len = 1 + next(5);
            let root: Vec<&str> = (0..len).map(|_| words[next(words.len())]).collect();
            rc.insert_for_rerun(&root.join(" "));
        }
        rc.rerun();
        let n = rc.len();
        let mut data = Array2::<f32>::zeros((n, DIMS));
        for (i, r) in rc.roots.iter().enumerate() {
            for &(d, v) in &r.vector {
                data[(i, d as usize)] = v;
            }
        }
        let eps = VectorParams::default().eps;
        let labels = Dbscan::params_with(2, L2Dist, CommonNearestNeighbour::LinearSearch)
            .tolerance(eps)
            .check()
            .expect("valid parameters")
            .transform(&data);
        // Same partition: two roots share a cluster here exactly when linfa puts them in one
        // cluster (linfa's noise points are singletons).
        for i in 0..n {
            for j in i + 1..n {
                let ours = rc.roots[i].cluster == rc.roots[j].cluster;
                let theirs = labels[i].is_some() && labels[i] == labels[j];
                assert_eq!(
                    ours,
                    theirs,
                    "{} / {}",
                    rc.root_text(i as RootIndex),
                    rc.root_text(j as RootIndex)
                );
            }
        }
    }

    #[test]
    fn more_roots_than_the_old_dense_bound_are_all_clustered() {
        let mut rc = RootClusters::new(VectorParams::default());
        for i in 0..6_000 {
            rc.insert_for_rerun(&format!("kind{i} module{i}"));
        }
        let a = rc.insert_for_rerun("disk quota exceeded for volume");
        let b = rc.insert_for_rerun("disk quota exceeded for volume now");
        let report = rc.rerun_reporting();
        assert_eq!(report.searches_cut, 0);
        assert_eq!(
            rc.cluster_of(a),
            rc.cluster_of(b),
            "roots past 5,000 find their neighbours"
        );
    }

    #[test]
    fn the_same_roots_in_any_order_give_the_same_ids() {
        let roots = [
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            "context deadline exceeded",
            "too many open files; retrying in <*>",
            "too many open files",
            "connection reset by peer",
            "EOF",
            "unexpected EOF",
            "no such host",
        ];
        let ids = |order: &[usize]| -> Vec<(String, ClusterId)> {
            let mut rc = RootClusters::new(VectorParams::default());
            for &i in order {
                rc.insert(roots[i]);
            }
            rc.rerun();
            let mut ids: Vec<(String, ClusterId)> = roots
                .iter()
                .map(|r| (r.to_string(), rc.cluster_of(rc.find(r).expect("inserted"))))
                .collect();
            ids.sort();
            ids
        };
        let forward: Vec<usize> = (0..roots.len()).collect();
        let backward: Vec<usize> = (0..roots.len()).rev().collect();
        let shuffled = [5, 0, 7, 2, 4, 1, 6, 3];
        let expected = ids(&forward);
        assert_eq!(ids(&backward), expected);
        assert_eq!(ids(&shuffled), expected);
        // Named after the shortest member, whatever came first.
        let deadline = expected
            .iter()
            .find(|(r, _)| r.starts_with("context"))
            .expect("listed");
        assert_eq!(deadline.1, ClusterId::of("context deadline exceeded"));
    }

    #[test]
    fn a_rerun_that_renames_a_cluster_says_which_id_took_its_place() {
        let mut rc = RootClusters::new(VectorParams::default());
        let long = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        let a = rc.insert(long);
        let other = rc.insert("no such host");
        rc.rerun();
        let old = rc.cluster_of(a);
        assert_eq!(old, ClusterId::of(long));
        // The shorter wording joins by nearest neighbour and keeps the id until the re-run.
        let b = rc.insert("context deadline exceeded");
        assert_eq!(rc.cluster_of(b), old);
        let before = rc.id_table();
        rc.rerun();
        let new = ClusterId::of("context deadline exceeded");
        assert_eq!(rc.cluster_of(a), new);
        assert_eq!(rc.retired_ids(&before, None), [(old, new)]);
        assert!(!rc.is_live(old) && rc.is_live(new));

        // An eviction of the canonical root hands the id to the remaining member.
        let before = rc.id_table();
        let map = rc.retain(&[true, true, false]);
        assert_eq!(rc.cluster_of(map[0].expect("kept")), old);
        assert_eq!(rc.retired_ids(&before, Some(&map)), [(new, old)]);
        // An evicted singleton has no successor.
        let before = rc.id_table();
        let map = rc.retain(&[true, false]);
        assert_eq!(map[other as usize], None);
        assert_eq!(rc.retired_ids(&before, Some(&map)), []);
    }

    #[test]
    fn variants_of_one_kind_join() {
        let c = clusters(&[
            "context deadline exceeded",
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            "too many open files",
            "too many open files; retrying in <*>",
        ]);
        assert_eq!(c[0], c[1]);
        assert_eq!(c[2], c[3]);
        assert_ne!(c[0], c[2]);
    }
}
