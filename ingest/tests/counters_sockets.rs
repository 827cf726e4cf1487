//! The socket census against `ss -tan`, on real loopback sockets in ESTABLISHED, CLOSE_WAIT,
//! FIN_WAIT2, TIME_WAIT and LISTEN (with a full accept queue), over IPv4 and IPv6, through both
//! sources (netlink `sock_diag` and `/proc/net/tcp{,6}`).
//!
//! Other processes on the machine open sockets too, so only the test's own ports are compared,
//! and only at a stable moment: census, `ss`, census again, retried until the two censuses agree.
//! A listener only takes a port no other socket uses: TIME_WAIT sockets of an earlier test's
//! clients towards the same port number outlive it by a minute and would be counted too.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_ingest::counters::sockets::SocketSource;
use faultline_ingest::counters::{
    PortSide, SocketCensus, SocketReader, SocketSourceChoice, SocketState, StateCounts,
};

/// One line of `ss -tan`.
#[derive(Debug, Clone)]
struct SsLine {
    state: SocketState,
    recv_q: u32,
    send_q: u32,
    local_port: u16,
    peer_port: u16,
}

fn ss_tan() -> Vec<SsLine> {
    let out = Command::new("ss")
        .arg("-tan")
        .output()
        .unwrap_or_else(|e| panic!("cannot run ss (install iproute2): {e}"));
    assert!(out.status.success(), "ss -tan failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |s: &str| {
                s.rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .unwrap_or(0)
            };
            Some(SsLine {
                state: SocketState::from_ss_name(f.first()?)?,
                recv_q: f.get(1)?.parse().ok()?,
                send_q: f.get(2)?.parse().ok()?,
                local_port: port(f.get(3)?),
                peer_port: port(f.get(4)?),
            })
        })
        .collect()
}

/// `ss`'s view of one service port: inbound = local port is it, outbound = peer port is it.
fn ss_groups(lines: &[SsLine], port: u16) -> (StateCounts, StateCounts) {
    let (mut inbound, mut outbound) = (StateCounts::default(), StateCounts::default());
    for l in lines {
        if l.local_port == port {
            inbound.add(l.state);
        } else if l.peer_port == port {
            outbound.add(l.state);
        }
    }
    (inbound, outbound)
}

fn show(c: &StateCounts) -> BTreeMap<&'static str, u32> {
    c.non_zero().map(|(s, n)| (s.label(), n)).collect()
}

fn census(reader: &mut SocketReader) -> SocketCensus {
    reader
        .census()
        .census
        .unwrap_or_else(|e| panic!("census failed: {e}"))
}

/// Waits for a moment where census, `ss` and census again agree on `ports`; returns that census
/// and `ss` output, or panics with the last difference after a bounded number of tries.
fn stable_match(reader: &mut SocketReader, ports: &[u16]) -> (SocketCensus, Vec<SsLine>) {
    let mut last = String::new();
    for _ in 0..50 {
        let before = census(reader);
        let ss = ss_tan();
        let after = census(reader);
        let mut ok = true;
        last.clear();
        for &p in ports {
            let (ss_in, ss_out) = ss_groups(&ss, p);
            for (dir, ss_counts) in [(PortSide::Local, ss_in), (PortSide::Remote, ss_out)] {
                let (b, a) = (before.port(p, dir), after.port(p, dir));
                if b != a || a != ss_counts {
                    ok = false;
                    last += &format!(
                        "port {p} {dir:?}: faultline {:?} (then {:?}), ss {:?}\n",
                        show(&b),
                        show(&a),
                        show(&ss_counts)
                    );
                }
            }
        }
        if ok {
            return (after, ss);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("faultline never matched ss -tan:\n{last}");
}

/// Polls until `cond` holds on the census of `port` (sockets move between states
/// asynchronously after close), at most 5 s.
fn wait_for(reader: &mut SocketReader, what: &str, cond: impl Fn(&SocketCensus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond(&census(reader)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the census saw instead: its raw sockets on the test's listening ports, and how it
    // grouped each of them.
    let last = census(reader);
    let listening: Vec<u16> = last.listeners.iter().map(|l| l.local.port()).collect();
    let mut seen: Vec<String> = reader
        .entries()
        .iter()
        .filter(|e| e.state != SocketState::Listen)
        .filter(|e| listening.contains(&e.remote.port()) || listening.contains(&e.local.port()))
        .map(|e| format!("{:?} {} -> {}", e.state, e.local, e.remote))
        .collect();
    seen.sort();
    let mut groups: Vec<String> = last
        .by_port
        .iter()
        .filter(|(k, _)| listening.contains(&k.port))
        .map(|(k, c)| format!("{}/{:?}: {:?}", k.port, k.side, show(c)))
        .collect();
    groups.sort();
    panic!(
        "timed out waiting for {what}; groups of listening ports:\n{}\nsockets:\n{}",
        groups.join("\n"),
        seen.join("\n")
    );
}

struct Scenario {
    _listener: TcpListener,
    _held: Vec<TcpStream>,
    port: u16,
}

/// On `ip`: 5 established pairs, 3 connections the client closed and the server never did
/// (server CLOSE_WAIT, client FIN_WAIT2), and `short` short client connections closed by the
/// client first (client TIME_WAIT).
fn scenario(ip: &str, short: usize) -> Scenario {
    let listener = fresh_listener(|| TcpListener::bind((ip, 0)).ok(), |l| l.local_addr().ok());
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}")));
        held.push(listener.accept().unwrap_or_else(|e| panic!("{e}")).0);
    }
    for _ in 0..3 {
        let client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        held.push(listener.accept().unwrap_or_else(|e| panic!("{e}")).0);
        drop(client);
    }
    for _ in 0..short {
        let client = connect_from_a_fresh_port(addr);
        let (mut server, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        drop(client);
        // The server sees EOF, then closes: the client, which closed first, ends in TIME_WAIT.
        let mut buf = [0u8; 16];
        let _ = server.read(&mut buf);
        drop(server);
    }
    Scenario {
        _listener: listener,
        _held: held,
        port: addr.port(),
    }
}

/// A client connection whose local port is bound before connecting. Left to `connect()`, the
/// kernel may pick a port that is in TIME_WAIT towards the same listener (loopback TIME_WAIT
/// reuse, `tcp_tw_reuse = 2`, once the TIME_WAIT is a second old: a loaded machine makes the
/// loop that long), which ends that TIME_WAIT early and leaves one fewer than the scenario
/// made. `bind()` never picks a port any socket holds.
fn connect_from_a_fresh_port(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).unwrap_or_else(|e| panic!("{e}"));
    let any_port = SocketAddr::new(addr.ip(), 0);
    socket
        .bind(&any_port.into())
        .unwrap_or_else(|e| panic!("bind {any_port}: {e}"));
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    socket.into()
}

/// A listener from `bind` on a port that no other socket on the node uses (as local or remote
/// port), tried a bounded number of times.
fn fresh_listener<L>(bind: impl Fn() -> Option<L>, addr: impl Fn(&L) -> Option<SocketAddr>) -> L {
    let mut reader = SocketReader::new(SocketSourceChoice::Auto, "/proc");
    for _ in 0..20 {
        let listener = bind().unwrap_or_else(|| panic!("cannot bind a test listener"));
        let port = addr(&listener).map_or(0, |a| a.port());
        let _ = reader.census();
        let users = reader
            .entries()
            .iter()
            .filter(|e| e.local.port() == port || e.remote.port() == port)
            .count();
        if users == 1 {
            return listener;
        }
    }
    panic!("no free port for a test listener in 20 tries");
}

fn ipv6_available() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

fn expect_scenario(census: &SocketCensus, port: u16, short: u32) {
    let inbound = census.port(port, PortSide::Local);
    let outbound = census.port(port, PortSide::Remote);
    assert_eq!(inbound.get(SocketState::Listen), 1, "{:?}", show(&inbound));
    assert_eq!(
        inbound.get(SocketState::Established),
        5,
        "{:?}",
        show(&inbound)
    );
    assert_eq!(
        inbound.get(SocketState::CloseWait),
        3,
        "{:?}",
        show(&inbound)
    );
    assert_eq!(
        outbound.get(SocketState::Established),
        5,
        "{:?}",
        show(&outbound)
    );
    assert_eq!(
        outbound.get(SocketState::FinWait2),
        3,
        "{:?}",
        show(&outbound)
    );
    assert_eq!(
        outbound.get(SocketState::TimeWait),
        short,
        "{:?}",
        show(&outbound)
    );
}

#[test]
fn states_by_port_match_ss_through_both_sources() {
    let v4 = scenario("127.0.0.1", 200);
    let v6 = ipv6_available().then(|| scenario("::1", 20));
    let mut ports = vec![v4.port];
    ports.extend(v6.as_ref().map(|s| s.port));

    for choice in [SocketSourceChoice::Netlink, SocketSourceChoice::Proc] {
        let mut reader = SocketReader::new(choice, "/proc");
        wait_for(&mut reader, "TIME_WAIT and CLOSE_WAIT to settle", |c| {
            c.port(v4.port, PortSide::Remote).get(SocketState::TimeWait) == 200
                && c.port(v4.port, PortSide::Local).get(SocketState::CloseWait) == 3
        });
        let (census, _) = stable_match(&mut reader, &ports);
        let expected_source = match choice {
            SocketSourceChoice::Proc => SocketSource::ProcNet,
            _ => SocketSource::Netlink,
        };
        assert_eq!(census.source, expected_source);
        expect_scenario(&census, v4.port, 200);
        if let Some(v6) = &v6 {
            expect_scenario(&census, v6.port, 20);
            assert!(census.ipv6.get(SocketState::Established) >= 10);
        }
        assert!(census.ipv4.get(SocketState::TimeWait) >= 200);
    }
}

#[test]
fn netlink_and_proc_report_the_same_sockets() {
    let s = scenario("127.0.0.1", 30);
    let mut netlink = SocketReader::new(SocketSourceChoice::Netlink, "/proc");
    let mut proc = SocketReader::new(SocketSourceChoice::Proc, "/proc");
    wait_for(&mut netlink, "TIME_WAIT to settle", |c| {
        c.port(s.port, PortSide::Remote).get(SocketState::TimeWait) == 30
    });
    let ours = |r: &SocketReader| {
        let mut v: Vec<(SocketState, SocketAddr, SocketAddr, u64)> = r
            .entries()
            .iter()
            .filter(|e| e.local.port() == s.port || e.remote.port() == s.port)
            .map(|e| (e.state, e.local, e.remote, e.inode))
            .collect();
        v.sort_by_key(|x| (x.0, x.1, x.2));
        v
    };
    let mut last = None;
    for _ in 0..20 {
        let _ = netlink.census();
        let _ = proc.census();
        let (a, b) = (ours(&netlink), ours(&proc));
        if a == b {
            assert_eq!(a.len(), 1 + 10 + 6 + 30);
            // Both give the socket inode of open sockets (used to find a port's process).
            assert!(a.iter().any(|x| x.0 == SocketState::Listen && x.3 != 0));
            return;
        }
        last = Some((a, b));
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("netlink and /proc differ: {last:?}");
}

#[test]
fn full_accept_queue_matches_ss_recv_and_send_queue() {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let listener = fresh_listener(
        || {
            let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
            l.bind(&bind.into()).ok()?;
            l.listen(2).ok()?;
            Some(l)
        },
        |l| l.local_addr().ok().and_then(|a| a.as_socket()),
    );
    let addr = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or_else(|| panic!("no local addr"));
    // Nobody accepts. More clients than the queue holds; non-blocking so the ones the kernel
    // drops do not hang the test.
    let mut clients = Vec::new();
    for _ in 0..6 {
        let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .unwrap_or_else(|e| panic!("{e}"));
        c.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let _ = c.connect(&addr.into());
        clients.push(c);
    }
    let mut reader = SocketReader::new(SocketSourceChoice::Netlink, "/proc");
    wait_for(&mut reader, "the accept queue to fill", |c| {
        c.listeners
            .iter()
            .any(|l| l.local.port() == addr.port() && l.queue >= 3)
    });
    // The queue and backlog of a listener are stable while nobody accepts.
    let census = census(&mut reader);
    let ss = ss_tan();
    let ours = census
        .listeners
        .iter()
        .find(|l| l.local.port() == addr.port())
        .unwrap_or_else(|| panic!("listener missing"));
    let theirs = ss
        .iter()
        .find(|l| l.state == SocketState::Listen && l.local_port == addr.port())
        .unwrap_or_else(|| panic!("listener missing from ss"));
    assert_eq!(ours.backlog, Some(2));
    assert_eq!(
        (ours.queue, ours.backlog),
        (theirs.recv_q, Some(theirs.send_q))
    );
    // Linux queues one more than the backlog before it drops.
    assert_eq!(ours.queue, 3);
    // From /proc the queue is there too, the backlog is not.
    let mut proc = SocketReader::new(SocketSourceChoice::Proc, "/proc");
    let c = census_of(&mut proc);
    let l = c
        .listeners
        .iter()
        .find(|l| l.local.port() == addr.port())
        .unwrap_or_else(|| panic!("listener missing from /proc"));
    assert_eq!((l.queue, l.backlog), (3, None));
    // Client sockets whose handshake the full queue refused sit in SYN_SENT or believe they
    // are established; whatever the mix, it matches ss at a stable moment.
    let (census, _) = stable_match(&mut reader, &[addr.port()]);
    let outbound = census.port(addr.port(), PortSide::Remote);
    assert_eq!(outbound.total(), 6);
}

fn census_of(reader: &mut SocketReader) -> SocketCensus {
    census(reader)
}

#[test]
fn single_walk_and_per_family_dumps_agree() {
    use faultline_ingest::counters::netlink::NetlinkSockets;
    use faultline_ingest::counters::sockets::Family;
    let v4 = scenario("127.0.0.1", 10);
    let v6 = ipv6_available().then(|| scenario("::1", 10));
    let ports: Vec<u16> = std::iter::once(v4.port)
        .chain(v6.as_ref().map(|s| s.port))
        .collect();
    let mut nl = NetlinkSockets::open().unwrap_or_else(|e| panic!("{e}"));
    let ours = |entries: &[faultline_ingest::counters::SocketEntry]| {
        let mut v: Vec<_> = entries
            .iter()
            .filter(|e| ports.contains(&e.local.port()) || ports.contains(&e.remote.port()))
            .map(|e| (e.state, e.local, e.remote))
            .collect();
        v.sort();
        v
    };
    let mut last = None;
    for _ in 0..20 {
        let mut single = Vec::new();
        nl.read_all(&mut single).unwrap_or_else(|e| panic!("{e}"));
        let mut split = Vec::new();
        nl.read_family(Family::Ipv4, &mut split)
            .unwrap_or_else(|e| panic!("{e}"));
        nl.read_family(Family::Ipv6, &mut split)
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (ours(&single), ours(&split));
        let expected = (1 + 10 + 6 + 10) * ports.len();
        if a == b && a.len() == expected {
            assert_eq!(nl.single_walk(), Some(true));
            return;
        }
        last = Some((a.len(), b.len(), expected));
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("single walk and per-family dumps differ (single, split, expected): {last:?}");
}
