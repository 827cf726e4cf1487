//! Process targets found by name and by listening port, the way an SRE names a service:
//! "the `user-svc` binary" or "whatever listens on :8080".

use std::net::TcpListener;
use std::process::Command;

use faultline_ingest::counters::process::ProcessWatcher;
use faultline_ingest::counters::{ProcessTarget, SocketReader, SocketSourceChoice};

fn target(name: &str) -> ProcessTarget {
    ProcessTarget {
        name: name.into(),
        pid_file: None,
        process_name: None,
        listen_port: None,
    }
}

#[test]
fn finds_processes_by_name_and_by_listening_port() {
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sleep: {e}"));
    let mut watcher = ProcessWatcher::new("/proc");

    let by_name = ProcessTarget {
        process_name: Some("sleep".into()),
        ..target("sleeper")
    };
    let counters = watcher.read(&by_name, &[]);
    let _ = child.kill();
    let _ = child.wait();
    let counters = counters.unwrap_or_else(|e| panic!("{e}"));
    assert!(counters.pids.contains(&child.id()), "{:?}", counters.pids);
    assert!(counters.threads >= 1 && counters.open_fds >= 1);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let mut reader = SocketReader::new(SocketSourceChoice::Netlink, "/proc");
    let _ = reader.census();
    let by_port = ProcessTarget {
        listen_port: Some(port),
        ..target("listener")
    };
    let counters = watcher
        .read(&by_port, reader.entries())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counters.pids, vec![std::process::id()]);
    assert!(counters.fd_limit.is_some_and(|l| l >= counters.open_fds));

    // Nobody listens there any more: an error that says what was looked for.
    drop(listener);
    let _ = reader.census();
    let mut fresh = ProcessWatcher::new("/proc");
    let err = fresh
        .read(&by_port, reader.entries())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err,
        Some(format!("no process matches listening port {port}"))
    );
}
