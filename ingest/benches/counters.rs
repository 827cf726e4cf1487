//! Benchmark: counting the node's TCP sockets against `ss -tan`, on the same sockets in the same
//! run, at 10,000 and 100,000 sockets, plus the agent's CPU cost per sample at 1 s sampling.
//!
//! Run with `cargo bench -p faultline-ingest --bench counters` (add `-- --quick` for 10k only,
//! `-- --census-only` for the first table alone).
//!
//! First, the census's cost by the node's sockets, split into kernel and user time (the
//! netlink dump is kernel time: the walk of the established hash and a message per socket),
//! on the sockets the node has (whatever other programs hold), then with 10,000 more sockets in
//! TIME-WAIT (loopback connections opened and closed by this process; they expire after 60 s),
//! and what that means for the census interval under `socket_cpu_budget_percent`.
//! The sockets are established loopback pairs (client + accepted server socket) held by child
//! processes (this binary run with `--hold PAIRS`), 9,000 pairs each so no process needs more
//! than a usual fd limit; they are reset with SO_LINGER 0 at the end so the run leaves no
//! TIME_WAIT behind on a shared machine. Every figure is the median of several runs; `ss` is
//! timed as a user runs it (spawn, dump, print to /dev/null), faultline as the sampler runs it
//! (in-process census).

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_ingest::counters::netlink::NetlinkSockets;
use faultline_ingest::counters::owners::PortOwners;
use faultline_ingest::counters::sampler::{thread_cpu, NodeSampler};
use faultline_ingest::counters::sockets::{Family, SocketEntry};
use faultline_ingest::counters::{CounterStore, CountersConfig, SocketReader, SocketSourceChoice};

const RUNS: usize = 9;

/// Socket pairs one holder process keeps open (two fds each, under the usual 20k fd limit).
const PAIRS_PER_HOLDER: usize = 9_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--hold") {
        let pairs = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(0);
        hold(pairs);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    println!("faultline counters benchmark (median of {RUNS} runs each)");
    bench_census_by_sockets();
    if args.iter().any(|a| a == "--census-only") {
        return;
    }
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    for &n in sizes {
        let holders = match spawn_holders(n) {
            Ok(h) => h,
            Err(e) => {
                println!("\nN = {n}: skipped, cannot open the sockets: {e}");
                continue;
            }
        };
        bench_census(n);
        if n == 10_000 {
            bench_cpu_per_sample(n);
        }
        for mut h in holders {
            drop(h.stdin.take());
            let _ = h.wait();
        }
    }
}

/// Starts holder processes (this binary with `--hold`) until `n` sockets exist. The sockets
/// live outside the measuring process, as on a real node where the agent does not own them,
/// and no process needs more than the usual fd limit.
fn spawn_holders(n: usize) -> std::io::Result<Vec<std::process::Child>> {
    let exe = std::env::current_exe()?;
    let mut pairs_left = n / 2;
    let mut holders = Vec::new();
    let start = Instant::now();
    while pairs_left > 0 {
        let pairs = pairs_left.min(PAIRS_PER_HOLDER);
        pairs_left -= pairs;
        let mut child = Command::new(&exe)
            .args(["--hold", &pairs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(std::io::Error::other(format!("holder failed: {line:?}")));
        }
        holders.push(child);
    }
    println!(
        "\nN = {n}: {} established loopback pairs in {} holder processes, opened in {:.1} s",
        n / 2,
        holders.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(holders)
}

/// Holder process: opens `pairs` established loopback pairs, says "ready", waits for stdin to
/// close, then resets them (SO_LINGER 0) so no TIME_WAIT is left behind.
fn hold(pairs: usize) {
    let opened = (|| -> std::io::Result<Vec<TcpStream>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut sockets = Vec::with_capacity(pairs * 2);
        for _ in 0..pairs {
            sockets.push(TcpStream::connect(addr)?);
            sockets.push(listener.accept()?.0);
        }
        Ok(sockets)
    })();
    match opened {
        Ok(sockets) => {
            println!("ready");
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
            for s in sockets {
                let _ = socket2::Socket::from(s).set_linger(Some(Duration::ZERO));
            }
        }
        Err(e) => println!("error {e}"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_census(n: usize) {
    let mut results = Vec::new();
    let mut ss_cpu = Vec::new();
    let ss = median(
        (0..RUNS)
            .map(|_| {
                let cpu = children_cpu();
                let start = Instant::now();
                let status = Command::new("ss")
                    .arg("-tan")
                    .stdout(Stdio::null())
                    .status();
                let wall = start.elapsed().as_secs_f64() * 1e3;
                assert!(
                    status.map(|s| s.success()).unwrap_or(false),
                    "ss -tan failed"
                );
                ss_cpu.push((children_cpu() - cpu).as_secs_f64() * 1e3);
                wall
            })
            .collect(),
    );
    let ss_cpu = median(ss_cpu);
    for (name, choice) in [
        ("faultline netlink census", SocketSourceChoice::Netlink),
        ("faultline /proc census", SocketSourceChoice::Proc),
    ] {
        let mut reader = SocketReader::new(choice, "/proc");
        let mut counted = 0;
        let mut cpu_ms = Vec::new();
        let ms = median(
            (0..RUNS)
                .map(|_| {
                    let cpu = thread_cpu();
                    let start = Instant::now();
                    let census = reader.census().census;
                    let elapsed = start.elapsed().as_secs_f64() * 1e3;
                    cpu_ms.push((thread_cpu() - cpu).as_secs_f64() * 1e3);
                    counted = census.map(|c| c.by_state.total()).unwrap_or(0);
                    elapsed
                })
                .collect(),
        );
        assert!(counted as usize >= n, "{name} counted {counted} < {n}");
        results.push((name, ms, median(cpu_ms), counted));
    }
    let mut netlink = NetlinkSockets::open().unwrap_or_else(|e| panic!("{e}"));
    let mut entries = Vec::new();
    let dump = median(
        (0..RUNS)
            .map(|_| {
                entries.clear();
                let start = Instant::now();
                let _ = netlink.read_all(&mut entries);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!(
        "  {:<28} {:>9.2} ms wall {:>8.2} ms CPU  (baseline)",
        "ss -tan > /dev/null", ss, ss_cpu
    );
    println!(
        "  {:<28} {:>9.2} ms  (single kernel walk for both families: {:?})",
        "netlink dump alone",
        dump,
        netlink.single_walk()
    );
    for family in [Family::Ipv4, Family::Ipv6] {
        let cpu_ms = median(
            (0..RUNS)
                .map(|_| {
                    entries.clear();
                    let cpu = thread_cpu();
                    let _ = netlink.read_family(family, &mut entries);
                    (thread_cpu() - cpu).as_secs_f64() * 1e3
                })
                .collect(),
        );
        println!(
            "  netlink dump {family:?} alone: {cpu_ms:.2} ms CPU ({} sockets)",
            entries.len()
        );
    }
    for (name, ms, cpu, counted) in results {
        println!(
            "  {name:<28} {ms:>9.2} ms wall {cpu:>8.2} ms CPU  = {:.2}x ss wall, {:.2}x ss CPU  ({counted} sockets)",
            ms / ss,
            cpu / ss_cpu
        );
    }
}

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: all-zero is a valid rusage, and the call fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One full sampler tick (census, sockstat, netstat/snmp, the agent's process, store update
/// with history) measured in thread CPU time; at a 1 s interval the agent's CPU share is that
/// time per second.
fn bench_cpu_per_sample(n: usize) {
    let config = CountersConfig::default();
    let store = CounterStore::new(&config);
    let mut sampler = NodeSampler::new(&config);
    let mut per_tick = Vec::new();
    for i in 0..RUNS * 2 {
        let cpu = thread_cpu();
        let sample = sampler.sample(i as i64 * 1000, None);
        store.record_sample(sample);
        per_tick.push((thread_cpu() - cpu).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(50));
    }
    let ms = median(per_tick);
    let mut reader = SocketReader::new(SocketSourceChoice::Netlink, "/proc");
    let census_cpu = median(
        (0..RUNS)
            .map(|_| {
                let cpu = thread_cpu();
                let _ = reader.census();
                (thread_cpu() - cpu).as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!("  of which the netlink census: {census_cpu:.2} ms CPU");
    println!(
        "  full sampler tick at N = {n}: {ms:.2} ms CPU -> {:.2}% of one core at 1 s sampling (target < 1%)",
        ms / 10.0
    );
}

/// User and system CPU time of the calling thread.
fn thread_user_sys() -> (Duration, Duration) {
    // SAFETY: all-zero is a valid rusage, and the call fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Opens and closes `n` loopback connections, the client closing first: each leaves a socket in
/// TIME-WAIT on this node for 60 s (what a caller opening a connection per request leaves).
fn make_time_wait(n: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    for _ in 0..n {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        drop(client);
        // Let the client's FIN reach the server before it closes, so the client ends in
        // TIME-WAIT and the server's socket goes away.
        let _ = std::io::Read::read(&mut &server, &mut [0u8; 1]);
        drop(server);
    }
    Ok(())
}

/// The census's kernel and user time by the node's sockets, and the interval the budget
/// gives it (see the module docs).
fn bench_census_by_sockets() {
    println!(
        "\nsocket census by the node's sockets (netlink, thread CPU per census: kernel + user)"
    );
    println!(
        "  {:<34} {:>8} {:>9} {:>9} {:>9} {:>10} {:>28}",
        "sockets",
        "counted",
        "kernel ms",
        "user ms",
        "total ms",
        "% at 1/s",
        "interval at budget 0.5/1/2 %"
    );
    let row = |label: &str| {
        let mut reader = SocketReader::new(SocketSourceChoice::Netlink, "/proc");
        let _ = reader.census();
        let mut kernel = Vec::new();
        let mut user = Vec::new();
        let mut counted = 0;
        let mut time_wait = 0;
        for _ in 0..RUNS * 2 {
            let (u0, s0) = thread_user_sys();
            let census = reader.census().census;
            let (u1, s1) = thread_user_sys();
            user.push((u1 - u0).as_secs_f64() * 1e3);
            kernel.push((s1 - s0).as_secs_f64() * 1e3);
            if let Ok(c) = census {
                counted = c.by_state.total();
                time_wait = c
                    .by_state
                    .get(faultline_ingest::counters::SocketState::TimeWait);
            }
        }
        let (k, u) = (median(kernel), median(user));
        let total = k + u;
        // The budget's rule (sampler.rs): every sample while cost / budget <= 1.5 s.
        let interval = |budget: f64| {
            let period = total / 1e3 / budget;
            if period <= 1.5 {
                1.0
            } else {
                period
            }
        };
        println!(
            "  {:<34} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}% {:>10.1} / {:.1} / {:.1} s",
            format!("{label} ({time_wait} TIME-WAIT)"),
            counted,
            k,
            u,
            total,
            total / 10.0,
            interval(0.005),
            interval(0.01),
            interval(0.02)
        );
    };
    row("as found on this node");
    match make_time_wait(10_000) {
        Ok(()) => row("+ 10,000 TIME-WAIT"),
        Err(e) => println!("  + 10,000 TIME-WAIT: skipped, cannot open the connections: {e}"),
    }
    bench_owner_scan();
}

/// The process-table scan that names a new listener's process (`counters::owners`), which the
/// sampler runs after a census when a listening socket's owner is not known yet: a full scan
/// (a socket no process holds: every descriptor link is read) and the usual case (a listener
/// of this process, a new one).
fn bench_owner_scan() {
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            println!("  port owners: skipped, cannot listen: {e}");
            return;
        }
    };
    let inode = {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))
            .ok()
            .and_then(|t| {
                let t = t.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let entry = |inode: u64| SocketEntry {
        family: Family::Ipv4,
        state: faultline_ingest::counters::SocketState::Listen,
        local: listener
            .local_addr()
            .unwrap_or_else(|_| SocketEntry::unspecified(Family::Ipv4)),
        remote: SocketEntry::unspecified(Family::Ipv4),
        recv_queue: 0,
        send_queue: Some(128),
        inode,
    };
    for (label, inode) in [
        ("a socket no process holds (full scan)", u64::MAX),
        ("a new listener of this process", inode),
    ] {
        let mut found = 0;
        let ms = median(
            (0..RUNS)
                .map(|_| {
                    let (u0, s0) = thread_user_sys();
                    found = PortOwners::new()
                        .resolve(std::path::Path::new("/proc"), &[entry(inode)])
                        .len();
                    let (u1, s1) = thread_user_sys();
                    ((u1 - u0) + (s1 - s0)).as_secs_f64() * 1e3
                })
                .collect(),
        );
        println!(
            "  port owners, {label}: {ms:.2} ms CPU per scan ({processes} processes, {found} found)"
        );
    }
}
