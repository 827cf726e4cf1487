//! One cluster's list row ([`ClusterSummary`]), summed over its roots at query time, and
//! its display name.

use std::collections::{BTreeMap, HashMap};

use super::{ClusterQuery, ClusterSummary, State, NANOS_PER_MIN, NANOS_PER_SEC, RATE_WINDOW_SECS};
use crate::batch::cut;
use crate::cluster::{ClusterId, RootIndex};
use crate::emergence::{judge, Thresholds};
use crate::template::{KeyIndex, TemplateId};

impl State {
    pub(super) fn summary(
        &self,
        roots: &[RootIndex],
        keys_by_root: &[Vec<KeyIndex>],
        q: &ClusterQuery,
    ) -> Option<ClusterSummary> {
        let first_root = *roots.first()?;
        let id = self.roots.cluster_of(first_root);
        let now_min = q.now_unix_nanos.div_euclid(NANOS_PER_MIN);
        let window_min = (self.config.window_secs / 60).max(1) as i64;
        let baseline_min = (self.config.baseline_secs / 60).max(1) as i64;
        let (mut count, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        let (mut reports, mut last_minute, mut untraced) = (0u64, 0u64, 0u64);
        let now_sec = q.now_unix_nanos.div_euclid(NANOS_PER_SEC);
        let (mut in_query, mut current, mut baseline) = (0u64, 0u64, 0u64);
        let mut services: Vec<String> = Vec::new();
        let mut failed_before: BTreeMap<ClusterId, u64> = BTreeMap::new();
        let mut severity = "";
        let query_from = q.window_secs.map(|w| {
            q.now_unix_nanos
                .saturating_sub((w as i64).saturating_mul(1_000_000_000))
        });
        for &r in roots {
            let rs = &self.root_stats[r as usize];
            count += rs.count;
            untraced += rs.untraced;
            reports += rs.reports.max(rs.count);
            last_minute += rs
                .seconds
                .iter()
                .rev()
                .skip_while(|(sec, _)| *sec > now_sec)
                .take_while(|(sec, _)| *sec > now_sec - RATE_WINDOW_SECS)
                .map(|&(_, c)| u64::from(c))
                .sum::<u64>();
            first = first.min(rs.first);
            last = last.max(rs.last);
            for &(m, c) in &rs.minutes {
                if m > now_min - window_min && m <= now_min {
                    current += c;
                } else if m > now_min - window_min - baseline_min && m <= now_min - window_min {
                    baseline += c;
                }
                if let Some(from) = query_from {
                    if m >= from.div_euclid(NANOS_PER_MIN) && m <= now_min {
                        in_query += c;
                    }
                }
            }
            for s in rs.services.keys() {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
            for s in rs.severities.keys() {
                if severity_rank(s) > severity_rank(severity) {
                    severity = s;
                }
            }
            for (&other, &n) in &rs.failed_before {
                // A pattern merged or renamed since is counted under its current id (its
                // own id when it merged into this one); one that left is dropped.
                let groups_live = |c: ClusterId| self.roots.is_live(c);
                if let Some(other) = self.cluster_aliases.resolve(other, groups_live) {
                    *failed_before.entry(other).or_insert(0) += n;
                }
            }
        }
        let mut failed_before: Vec<(ClusterId, u64)> = failed_before.into_iter().collect();
        failed_before.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if query_from.is_none() {
            in_query = count;
        }
        if let Some(service) = &q.service {
            if !services.iter().any(|s| s == service) {
                return None;
            }
        }
        if q.window_secs.is_some() && in_query == 0 {
            return None;
        }
        let canonical = self.roots.canonical_of(first_root).to_string();
        // Per template: events, and its most frequent key (whose kinds name the placeholders).
        let mut per_template: HashMap<TemplateId, (u64, KeyIndex, u64)> = HashMap::new();
        for &r in roots {
            for &k in keys_by_root.get(r as usize).map_or(&[][..], Vec::as_slice) {
                let (tid, _) = self.miner.template_of(k);
                let n = self.keys[k as usize].count;
                let e = per_template.entry(tid).or_insert((0, k, 0));
                e.0 += n;
                if n > e.2 || (n == e.2 && k < e.1) {
                    (e.1, e.2) = (k, n);
                }
            }
        }
        let mut ranked: Vec<(TemplateId, u64, KeyIndex)> = per_template
            .iter()
            .map(|(t, &(n, k, _))| (*t, n, k))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let example = ranked
            .first()
            .map(|&(_, _, k)| self.display(k))
            .unwrap_or_default();
        let top = ranked.first().map_or(0, |r| r.1);
        let name = ranked
            .iter()
            .filter(|r| r.1 * 2 >= top)
            .map(|&(_, _, k)| headline(&self.display(k)))
            .filter(|n| !n.is_empty())
            .max_by(|a, b| constant_len(a).cmp(&constant_len(b)).then(b.cmp(a)))
            .unwrap_or_else(|| canonical.clone());
        if let Some(text) = &q.text {
            let needle = text.to_lowercase();
            let hit = canonical.to_lowercase().contains(&needle)
                || name.to_lowercase().contains(&needle)
                || ranked
                    .iter()
                    .any(|&(_, _, k)| self.miner.template_of(k).1.to_lowercase().contains(&needle));
            if !hit {
                return None;
            }
        }
        let thresholds = Thresholds {
            window_min: window_min as f64,
            new_min_events: self.config.new_min_events,
            surge_min_ratio: self.config.surge_min_ratio,
            surge_max_p: self.config.surge_max_p,
        };
        let first_min = first.div_euclid(NANOS_PER_MIN);
        let is_new = first_min > now_min - window_min;
        let observed_baseline = (now_min - window_min - first_min).clamp(0, baseline_min) as f64;
        let emergence = judge(&thresholds, current, baseline, observed_baseline, is_new);
        if q.emerging_only && emergence.is_none() {
            return None;
        }
        Some(ClusterSummary {
            id,
            canonical,
            name,
            example_template: example,
            count,
            failed_before,
            reports,
            untraced,
            window_count: in_query,
            last_minute_count: last_minute,
            first_seen_unix_nanos: first,
            last_seen_unix_nanos: last,
            services,
            severity: severity.to_string(),
            templates: per_template.len(),
            emergence,
        })
    }
}

/// Longest display name, in bytes: a name is read in a list row and a metric label.
pub(super) const MAX_NAME_BYTES: usize = 240;

/// The first line of a template (up to a real or escaped `\n`: a stack trace follows a
/// panic message), cut to [`MAX_NAME_BYTES`] with an ellipsis.
pub(super) fn headline(text: &str) -> String {
    let end = [text.find('\n'), text.find("\\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    let line = text[..end].trim_end();
    if line.len() <= MAX_NAME_BYTES {
        return line.to_string();
    }
    format!("{}…", cut(line, MAX_NAME_BYTES))
}

/// Characters of a display name that are not placeholders: how much it says.
pub(super) fn constant_len(name: &str) -> usize {
    let mut n = name.len();
    let mut rest = name;
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(close) if rest[open + 1..open + close].bytes().all(|b| b != b' ') => {
                n -= close + 1;
                rest = &rest[open + close + 1..];
            }
            _ => rest = &rest[open + 1..],
        }
    }
    n
}

pub(super) fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "" => 0,
        "trace" | "debug" => 1,
        "info" => 2,
        "warn" | "warning" => 3,
        "error" => 4,
        "fatal" | "critical" => 5,
        "panic" => 6,
        _ => 1,
    }
}
