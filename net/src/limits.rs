//! The connection bounds of one listener, and how they are kept below the process's
//! file-descriptor limit.

use serde::Deserialize;

/// Connection bounds of one listener (`[web.connections]`, `[otlp.connections]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most connections open at once; one more is accepted and closed at once, and counted.
    pub max_connections: usize,
    /// Milliseconds an HTTP/1 request head may take to arrive, counted from when the
    /// connection starts waiting for it (so also the keep-alive wait between requests).
    pub header_read_timeout_ms: u64,
    /// Milliseconds without a byte read or written after which a connection is closed.
    pub idle_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            // A node's services, a browser and a Prometheus scraper need a few dozen. At the
            // issue's 44 KB per idle connection (19,950 of them cost 880 MB of RSS), 512 cost
            // about 22 MB.
            max_connections: 512,
            header_read_timeout_ms: 10_000,
            // Above the dashboard's live-update keep-alive (15 s) and OTLP exporters' batch
            // interval (5 s), so connections in use are never closed for idleness.
            idle_timeout_ms: 60_000,
        }
    }
}

/// Raises the soft limit of open files to the hard limit (as the Go runtime does at start)
/// and returns the soft limit in force, or `None` when it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; failure leaves the limit unchanged.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Some(limit.rlim_cur)
}

/// Shrinks the listeners' `max_connections` (proportionally, at least 1 each) so that
/// together they use at most half of `fd_limit`: the other half is for tailed files, state
/// files, the socket census and task scrapes. Returns whether anything was shrunk.
pub fn fit_to_fd_limit(limits: &mut [&mut ConnectionLimits], fd_limit: u64) -> bool {
    let budget = usize::try_from(fd_limit / 2).unwrap_or(usize::MAX);
    let total: usize = limits.iter().map(|l| l.max_connections).sum();
    if total <= budget {
        return false;
    }
    for limit in limits.iter_mut() {
        let share = (limit.max_connections as u128 * budget as u128 / total as u128) as usize;
        limit.max_connections = share.max(1);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_shrunk_to_half_the_fd_limit_in_proportion() {
        let mut web = ConnectionLimits {
            max_connections: 256,
            ..ConnectionLimits::default()
        };
        let mut grpc = ConnectionLimits {
            max_connections: 1024,
            ..ConnectionLimits::default()
        };
        let mut http = grpc.clone();
        assert!(fit_to_fd_limit(&mut [&mut web, &mut grpc, &mut http], 1152));
        assert_eq!(
            (
                web.max_connections,
                grpc.max_connections,
                http.max_connections
            ),
            (64, 256, 256)
        );
        assert!(!fit_to_fd_limit(
            &mut [&mut web, &mut grpc, &mut http],
            1 << 20
        ));
        assert!(fit_to_fd_limit(&mut [&mut web, &mut grpc, &mut http], 2));
        assert_eq!(web.max_connections, 1);
    }
}
