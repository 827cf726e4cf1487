//! The faults the lab can inject, what each one really does, and where it lives.

use std::fmt;

/// One of the lab's three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    /// Takes the users' requests (`/api/...`) and calls orders; logs like Gin.
    Gateway,
    /// Serves orders (`/v1/orders/...`) and calls inventory for the stock; logs like zap.
    Orders,
    /// Serves stock levels (`/v1/stock/...`); logs only its start with Go's `log` package.
    Inventory,
}

impl ServiceName {
    /// Every service, callers first.
    pub const ALL: [ServiceName; 3] = [Self::Gateway, Self::Orders, Self::Inventory];

    /// The name the service reports (`service.name`, log source).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Orders => "orders",
            Self::Inventory => "inventory",
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault injected for real into the running lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// inventory reads each request and closes the connection without answering: an EOF storm
    /// in its callers.
    Eof,
    /// inventory reads each request and resets the connection (SO_LINGER 0).
    Reset,
    /// inventory stops reading and closing the connections it accepts: its callers time out
    /// and close, and CLOSE_WAIT climbs on its port.
    CloseWait,
    /// orders opens a new connection for every call to inventory and closes it first: TIME_WAIT
    /// climbs towards inventory's port, and nothing fails.
    TimeWait,
    /// inventory starts a task per request that waits forever on a confirmation nobody sends:
    /// its task count climbs, and nothing fails.
    GoroutineLeak,
    /// orders panics in its request handler (an index out of bounds), recovers, logs the panic
    /// and its stack, and answers 500.
    Panic,
    /// orders calls inventory by a name under `.invalid`, which no resolver answers.
    Dns,
}

impl Scenario {
    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eof => "eof",
            Self::Reset => "reset",
            Self::CloseWait => "close-wait",
            Self::TimeWait => "time-wait",
            Self::GoroutineLeak => "goroutine-leak",
            Self::Panic => "panic",
            Self::Dns => "dns",
        }
    }

    /// The service where the fault lives: the one to fix.
    pub fn culprit(self) -> ServiceName {
        match self {
            Self::Eof | Self::Reset | Self::CloseWait | Self::GoroutineLeak => {
                ServiceName::Inventory
            }
            Self::TimeWait | Self::Panic | Self::Dns => ServiceName::Orders,
        }
    }

    /// What is injected, in one sentence for the person running the demo.
    pub fn injected(self) -> &'static str {
        match self {
            Self::Eof => "inventory now closes every connection without answering",
            Self::Reset => "inventory now resets every connection (SO_LINGER 0)",
            Self::CloseWait => "inventory no longer reads or closes the connections it accepts",
            Self::TimeWait => "orders now opens (and closes) a new connection for every call",
            Self::GoroutineLeak => {
                "inventory now leaves a task waiting forever behind every request"
            }
            Self::Panic => "orders now panics in its order handler (recovered, answers 500)",
            Self::Dns => "orders now calls inventory by a name no resolver knows",
        }
    }

    /// What the dashboard should show, so the person knows what to look for.
    pub fn look_at(self) -> &'static str {
        match self {
            Self::Eof => {
                "a new error pattern (\"connection closed before message completed\") in \
                 orders' calls, and the gateway's 502s behind it; the fault lives in inventory"
            }
            Self::Reset => {
                "a new error pattern (\"connection reset by peer\") in orders' calls to \
                 inventory, and the gateway's 502s behind it"
            }
            Self::CloseWait => {
                "timeouts in orders' calls to inventory, and CLOSE-WAIT sockets climbing on \
                 inventory's port in the counters"
            }
            Self::TimeWait => {
                "TIME-WAIT sockets towards inventory's port climbing in the counters, with no \
                 error at all"
            }
            Self::GoroutineLeak => {
                "inventory's task count climbing in the counters, with no error at all"
            }
            Self::Panic => {
                "a new error pattern (\"index out of bounds\") logged by orders with its stack, \
                 and the gateway's 500s"
            }
            Self::Dns => {
                "a new error pattern (\"dns error: failed to lookup address information\") in \
                 orders, the service that fails its own lookups"
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn command_line_names_are_the_scenario_names() {
        for scenario in Scenario::value_variants() {
            let possible = scenario.to_possible_value().expect("not skipped");
            assert_eq!(possible.get_name(), scenario.name());
        }
    }
}
