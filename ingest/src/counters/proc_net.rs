//! Node-wide socket totals and TCP protocol counters from `/proc/net/sockstat{,6}`,
//! `/proc/net/netstat` and `/proc/net/snmp`.
//!
//! `sockstat` lines read `TCP: inuse 5 orphan 0 tw 12 alloc 7 mem 1` (name/value pairs after a
//! protocol prefix); `netstat` and `snmp` come as pairs of lines, a header line of names and a
//! value line with the same prefix (`TcpExt: SyncookiesSent ...` then `TcpExt: 0 ...`). Both are
//! flattened to `Prefix Name` keys (space-separated, as the series keys and the dashboard
//! name them). The agent keeps the handful of keys an SRE looks at in an
//! outage ([`SOCKSTAT_KEYS`], [`PROTOCOL_COUNTERS`]); protocol counters are monotonic and are
//! shown as rates.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use super::error::CounterError;

/// The `sockstat` values kept (gauges). `TCP mem` is in pages.
pub const SOCKSTAT_KEYS: &[&str] = &[
    "sockets used",
    "TCP inuse",
    "TCP orphan",
    "TCP tw",
    "TCP alloc",
    "TCP mem",
    "TCP6 inuse",
    "UDP inuse",
    "UDP6 inuse",
];

/// The monotonic protocol counters kept, shown as rates per second.
pub const PROTOCOL_COUNTERS: &[&str] = &[
    "Tcp ActiveOpens",
    "Tcp PassiveOpens",
    "Tcp AttemptFails",
    "Tcp EstabResets",
    "Tcp InSegs",
    "Tcp OutSegs",
    "Tcp RetransSegs",
    "Tcp InErrs",
    "Tcp OutRsts",
    "TcpExt ListenOverflows",
    "TcpExt ListenDrops",
    "TcpExt TCPTimeWaitOverflow",
    "TcpExt TW",
    "TcpExt TCPAbortOnData",
    "TcpExt TCPAbortOnClose",
    "TcpExt TCPAbortOnTimeout",
    "TcpExt TCPAbortOnMemory",
    "TcpExt TCPSynRetrans",
    "TcpExt SyncookiesSent",
    "TcpExt TCPBacklogDrop",
    "TcpExt TCPReqQFullDrop",
];

/// Reads `sockstat` and `sockstat6` (the latter may be missing when IPv6 is off).
pub fn read_sockstat(proc_root: &Path) -> Result<BTreeMap<String, i64>, CounterError> {
    let mut values = BTreeMap::new();
    for (name, required) in [("sockstat", true), ("sockstat6", false)] {
        let path = proc_root.join("net").join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => values.extend(parse_sockstat(&text)),
            Err(e) if !required && e.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(CounterError::Read { path, source }),
        }
    }
    Ok(values)
}

/// Reads `netstat` and `snmp`; either may be missing, both missing is an error.
pub fn read_protocol_counters(proc_root: &Path) -> Result<BTreeMap<String, i64>, CounterError> {
    let mut values = BTreeMap::new();
    let mut last_error = None;
    let mut read_any = false;
    for name in ["snmp", "netstat"] {
        let path = proc_root.join("net").join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                read_any = true;
                values.extend(parse_header_value_pairs(&text));
            }
            Err(source) => last_error = Some(CounterError::Read { path, source }),
        }
    }
    match (read_any, last_error) {
        (false, Some(e)) => Err(e),
        _ => Ok(values),
    }
}

/// Parses `sockstat` text into `Prefix name` keys (`TCP tw`, `sockets used`).
pub fn parse_sockstat(text: &str) -> BTreeMap<String, i64> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let Some((prefix, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        while let (Some(name), Some(value)) = (words.next(), words.next()) {
            if let Ok(v) = value.parse::<i64>() {
                values.insert(format!("{} {}", prefix.trim(), name), v);
            }
        }
    }
    values
}

/// Parses `netstat`/`snmp` text (header line, value line) into `Prefix Name` keys. A value
/// line whose prefix or length does not match its header is ignored.
pub fn parse_header_value_pairs(text: &str) -> BTreeMap<String, i64> {
    let mut values = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(header), Some(data)) = (lines.next(), lines.next()) {
        let (Some((hp, names)), Some((dp, nums))) = (header.split_once(':'), data.split_once(':'))
        else {
            continue;
        };
        if hp != dp {
            continue;
        }
        let names: Vec<&str> = names.split_ascii_whitespace().collect();
        let nums: Vec<&str> = nums.split_ascii_whitespace().collect();
        if names.len() != nums.len() {
            continue;
        }
        for (name, num) in names.into_iter().zip(nums) {
            if let Ok(v) = num.parse::<i64>() {
                values.insert(format!("{hp} {name}"), v);
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sockstat() {
        let v = parse_sockstat(
            "sockets: used 290\nTCP: inuse 5 orphan 0 tw 12 alloc 7 mem 1\nUDP: inuse 3 mem 2\n",
        );
        assert_eq!(v.get("TCP tw"), Some(&12));
        assert_eq!(v.get("sockets used"), Some(&290));
        assert_eq!(v.get("UDP mem"), Some(&2));
    }

    #[test]
    fn parses_netstat_pairs_and_skips_mismatches() {
        let v = parse_header_value_pairs(
            "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: A B\nIpExt: 1\nTcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n",
        );
        assert_eq!(v.get("TcpExt ListenOverflows"), Some(&7));
        assert_eq!(v.get("Tcp MaxConn"), Some(&-1));
        assert!(!v.contains_key("IpExt A"));
    }

    #[test]
    fn reads_this_machine() {
        let sockstat = read_sockstat(Path::new("/proc"));
        assert!(sockstat
            .map(|v| v.contains_key("TCP inuse"))
            .unwrap_or(false));
        let proto = read_protocol_counters(Path::new("/proc"));
        assert!(proto
            .map(|v| v.contains_key("Tcp ActiveOpens") && v.contains_key("TcpExt ListenOverflows"))
            .unwrap_or(false));
        assert!(read_sockstat(Path::new("/nonexistent")).is_err());
    }
}
