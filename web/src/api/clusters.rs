//! `GET /api/v1/clusters` and `GET /api/v1/clusters/{id}`: the error patterns.

use std::cmp::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{Cursor, Flag, Limit, Query, Text, Window};
use crate::model::{ClusterDetail, ClusterSummary};
use crate::{ApiError, ErrorBody, Shared};

/// Rows per page when `limit` is not given.
const DEFAULT_LIMIT: u64 = 100;

/// Filters and paging of the cluster list: the query string of `GET /api/v1/clusters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClusterListParams {
    /// Only clusters seen within this time before now, e.g. `15m`, `6h`, `7d`.
    #[param(inline)]
    window: Option<Window>,
    /// Only clusters seen in this service (exact name).
    #[param(inline)]
    service: Option<Text>,
    /// Only emerging (new or surging) clusters.
    #[param(inline)]
    emerging: Option<Flag>,
    /// Case-insensitive text that the canonical template or the id must contain.
    #[param(inline)]
    q: Option<Text>,
    /// Order: `emerging` (emerging first by score, then by rate; the default), `rate`,
    /// `count`, `first_seen` or `last_seen` (newest first).
    sort: Option<ClusterSort>,
    /// Rows per page.
    #[param(inline)]
    limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    #[param(inline)]
    cursor: Option<Cursor>,
}

/// Order of the cluster list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClusterSort {
    #[default]
    Emerging,
    Rate,
    Count,
    FirstSeen,
    LastSeen,
}

impl ClusterSort {
    fn compare(self, a: &ClusterSummary, b: &ClusterSummary) -> Ordering {
        let by_rate = |a: &ClusterSummary, b: &ClusterSummary| {
            b.rate_per_minute.total_cmp(&a.rate_per_minute)
        };
        let primary = match self {
            Self::Emerging => {
                let score = |c: &ClusterSummary| c.emergence.as_ref().map(|e| e.score);
                match (score(a), score(b)) {
                    (Some(x), Some(y)) => y.total_cmp(&x),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
                .then_with(|| by_rate(a, b))
            }
            Self::Rate => by_rate(a, b),
            Self::Count => b.total_count.cmp(&a.total_count),
            Self::FirstSeen => b.first_seen_unix_ms.cmp(&a.first_seen_unix_ms),
            Self::LastSeen => b.last_seen_unix_ms.cmp(&a.last_seen_unix_ms),
        };
        // Ties end on the stable id so that pages do not shuffle between requests.
        primary.then_with(|| a.id.cmp(&b.id))
    }
}

/// One page of the cluster list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterPage {
    /// Clusters matching the filters, over all pages.
    pub total: u64,
    /// This page's rows, in the requested order.
    pub clusters: Vec<ClusterSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// When the page was computed (Unix ms); the time `window` counts back from.
    pub generated_at_unix_ms: i64,
}

/// The cluster list's filters once validated.
struct ClusterFilter {
    since_unix_ms: Option<i64>,
    service: Option<String>,
    emerging_only: bool,
    text: Option<String>,
}

impl ClusterFilter {
    fn matches(&self, c: &ClusterSummary) -> bool {
        if self.emerging_only && c.emergence.is_none() {
            return false;
        }
        if self
            .since_unix_ms
            .is_some_and(|since| c.last_seen_unix_ms < since)
        {
            return false;
        }
        if let Some(service) = &self.service {
            if !c.services.iter().any(|s| s == service) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            if !contains_ignore_case(&c.canonical_template, text) && !c.id.contains(text.as_str()) {
                return false;
            }
        }
        true
    }
}

/// Whether `haystack` contains `needle_lower` (already lowercased), ignoring case. ASCII
/// needles, the common case, are matched without allocating: this runs over every cluster on
/// every search request.
fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if !needle_lower.is_ascii() {
        return haystack.to_lowercase().contains(needle_lower);
    }
    let needle = needle_lower.as_bytes();
    if needle.is_empty() {
        return true;
    }
    let hay = haystack.as_bytes();
    let first = needle[0];
    // Jump between occurrences of the first byte (either case) instead of testing every
    // position: SIMD-fast on long templates.
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), hay).any(|at| {
        hay.get(at..at + needle.len())
            .is_some_and(|window| window.eq_ignore_ascii_case(needle))
    })
}

pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn window_start(now: i64, window: Duration) -> i64 {
    now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

/// Lists the error patterns, emerging first.
#[utoipa::path(
    get,
    path = "/api/v1/clusters",
    tag = "clusters",
    params(ClusterListParams),
    responses(
        (status = 200, description = "One page of clusters", body = ClusterPage),
        (status = 400, description = "A parameter cannot be used; the message names it", body = ErrorBody),
        (status = 503, description = "The cluster store is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(shared): State<Shared>,
    Query(params): Query<ClusterListParams>,
) -> Result<Json<ClusterPage>, ApiError> {
    let now = now_unix_ms();
    let filter = ClusterFilter {
        since_unix_ms: params.window.map(|Window(w)| window_start(now, w)),
        service: Text::given(params.service),
        emerging_only: Flag::given(params.emerging),
        text: Text::given(params.q).map(|t| t.to_lowercase()),
    };
    let sort = params.sort.unwrap_or_default();
    let limit = Limit::or(params.limit, DEFAULT_LIMIT);
    let offset = Cursor::offset(params.cursor);

    let views = shared.views()?;
    let all = views.clusters.summaries();
    let mut rows: Vec<&ClusterSummary> = all.iter().filter(|c| filter.matches(c)).collect();
    let total = rows.len();
    let end = offset.saturating_add(limit).min(total);
    if offset < total {
        // Only the rows up to the end of this page need to be in order.
        if end < total {
            rows.select_nth_unstable_by(end, |a, b| sort.compare(a, b));
            rows.truncate(end);
        }
        rows.sort_unstable_by(|a, b| sort.compare(a, b));
    }
    let clusters: Vec<ClusterSummary> =
        rows.into_iter().skip(offset).take(limit).cloned().collect();
    Ok(Json(ClusterPage {
        total: total as u64,
        clusters,
        next_cursor: (end < total).then(|| end.to_string()),
        generated_at_unix_ms: now,
    }))
}

/// Everything about one error pattern.
#[utoipa::path(
    get,
    path = "/api/v1/clusters/{id}",
    tag = "clusters",
    params(("id" = String, Path, description = "Stable cluster id, or the id of one of its \
templates; a merged or renamed (retired) id answers with the pattern that holds it now, under \
its current id", max_length = 256)),
    responses(
        (status = 200, description = "The cluster", body = ClusterDetail),
        (status = 400, description = "`id` is not valid UTF-8 text", body = ErrorBody),
        (status = 404, description = "No cluster or template has this id", body = ErrorBody),
        (status = 503, description = "The cluster store is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn detail(
    State(shared): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ClusterDetail>, ApiError> {
    let Path(id) = path.map_err(|err| ApiError::bad_parameter("id", err.body_text()))?;
    let views = shared.views()?;
    if id.len() > 256 {
        return Err(ApiError::not_found("no cluster has this id"));
    }
    views
        .clusters
        .detail(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no cluster has the id {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::contains_ignore_case;

    #[test]
    fn search_ignores_case_in_ascii_and_unicode() {
        assert!(contains_ignore_case(
            "read: Connection RESET by peer",
            "connection reset"
        ));
        assert!(!contains_ignore_case(
            "read: connection refused",
            "connection reset"
        ));
        assert!(contains_ignore_case("Ünïcode ÉRROR", "érror"));
        assert!(contains_ignore_case("anything", ""));
        assert!(!contains_ignore_case("ab", "abc"));
    }
}
