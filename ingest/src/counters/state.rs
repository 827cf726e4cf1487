//! TCP socket states as the kernel numbers them, named the way `ss` prints them.
//!
//! The kernel's `TCP_*` enum (include/net/tcp_states.h) is what both netlink `sock_diag` and
//! `/proc/net/tcp` report, so one table serves both sources. `ss` shows request sockets
//! (`TCP_NEW_SYN_RECV`, 12) as `SYN-RECV`; we fold them into [`SocketState::SynRecv`] the same way.

use serde::Serialize;

/// The state of one TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SocketState {
    /// Data flows both ways.
    Established,
    /// Client side: SYN sent, waiting for SYN-ACK (slow or unreachable peer).
    SynSent,
    /// Server side: SYN received, handshake not finished (SYN flood, full accept queue).
    SynRecv,
    /// We closed first, FIN sent, waiting for its ACK.
    FinWait1,
    /// We closed first, our FIN is acknowledged, waiting for the peer's FIN.
    FinWait2,
    /// We closed first and the connection is done; kept 60 s (TIME_WAIT storm).
    TimeWait,
    /// Closed.
    Close,
    /// The peer closed and we have not (CLOSE_WAIT leak: a missing `Close()`).
    CloseWait,
    /// The peer closed, then we did; waiting for the last ACK.
    LastAck,
    /// A listening socket.
    Listen,
    /// Both sides closed at the same time.
    Closing,
}

impl SocketState {
    /// Every state, in the kernel's order; the index of a state in this array is
    /// [`SocketState::index`].
    pub const ALL: [SocketState; 11] = [
        SocketState::Established,
        SocketState::SynSent,
        SocketState::SynRecv,
        SocketState::FinWait1,
        SocketState::FinWait2,
        SocketState::TimeWait,
        SocketState::Close,
        SocketState::CloseWait,
        SocketState::LastAck,
        SocketState::Listen,
        SocketState::Closing,
    ];

    /// The state for a kernel `TCP_*` number (1..=12), `None` for anything else.
    pub fn from_kernel(code: u8) -> Option<SocketState> {
        match code {
            1..=11 => Some(Self::ALL[usize::from(code) - 1]),
            // TCP_NEW_SYN_RECV: a request socket, shown by `ss` as SYN-RECV.
            12 => Some(SocketState::SynRecv),
            _ => None,
        }
    }

    /// The kernel `TCP_*` number of this state (1..=11).
    pub fn kernel_code(self) -> u8 {
        // `index` is at most 10, so the sum always fits.
        self.index() as u8 + 1
    }

    /// The position of this state in [`SocketState::ALL`] (0..=10).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name `ss -tan` prints (`ESTAB`, `TIME-WAIT`, ...).
    pub fn ss_name(self) -> &'static str {
        match self {
            SocketState::Established => "ESTAB",
            SocketState::SynSent => "SYN-SENT",
            SocketState::SynRecv => "SYN-RECV",
            SocketState::FinWait1 => "FIN-WAIT-1",
            SocketState::FinWait2 => "FIN-WAIT-2",
            SocketState::TimeWait => "TIME-WAIT",
            SocketState::Close => "UNCONN",
            SocketState::CloseWait => "CLOSE-WAIT",
            SocketState::LastAck => "LAST-ACK",
            SocketState::Listen => "LISTEN",
            SocketState::Closing => "CLOSING",
        }
    }

    /// The state for a name printed by `ss -tan`, `None` if unknown.
    pub fn from_ss_name(name: &str) -> Option<SocketState> {
        Self::ALL.into_iter().find(|s| s.ss_name() == name)
    }

    /// The conventional upper-case name (`ESTABLISHED`, `TIME_WAIT`, ...), used in the API and
    /// as a Prometheus label.
    pub fn name(self) -> &'static str {
        match self {
            SocketState::Established => "ESTABLISHED",
            SocketState::SynSent => "SYN_SENT",
            SocketState::SynRecv => "SYN_RECV",
            SocketState::FinWait1 => "FIN_WAIT1",
            SocketState::FinWait2 => "FIN_WAIT2",
            SocketState::TimeWait => "TIME_WAIT",
            SocketState::Close => "CLOSE",
            SocketState::CloseWait => "CLOSE_WAIT",
            SocketState::LastAck => "LAST_ACK",
            SocketState::Listen => "LISTEN",
            SocketState::Closing => "CLOSING",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_codes_round_trip() {
        for state in SocketState::ALL {
            assert_eq!(SocketState::from_kernel(state.kernel_code()), Some(state));
            assert_eq!(SocketState::from_ss_name(state.ss_name()), Some(state));
        }
        assert_eq!(SocketState::from_kernel(12), Some(SocketState::SynRecv));
        assert_eq!(SocketState::from_kernel(0), None);
        assert_eq!(SocketState::from_kernel(13), None);
    }
}
