//! Reliability, short form (the long form is `scripts/reliability/crash.py`): `kill -9` of
//! the real binary under load while the logs rotate every 1–3 s (also to names outside the
//! glob), a full data-dir disk (a small tmpfs, and ENOSPC injected without mounting), a
//! state file that contradicts itself, and a log directory or file that becomes unreadable
//! and readable again. Lines are accounted by the agent's own record counter
//! (`faultline_store_log_records_total`) and by the per-file offsets in its state: exactly
//! none lost, none counted twice.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{as_nobody, eventually, Agent};

/// A small deterministic generator: the test's "random" moments are the same on every run
/// of one seed, and the seed is printed so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(low_ms + self.next() % (high_ms - low_ms + 1))
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log")
}

/// Writes `lines_per_sec` lines to `logs/app.log` for `run`, rotating every 1–3 s: renamed
/// to `app.log.<n>` (outside the `*.log` glob) or to `app-<n>.log` (inside it), then a new
/// `app.log`. Returns how many lines were written.
fn write_with_rotations(logs: &Path, run: Duration, lines_per_sec: u64, seed: u64) -> u64 {
    let mut rng = Lcg(seed);
    let live = logs.join("app.log");
    let mut file = open_append(&live);
    let started = Instant::now();
    let mut next_rotation = started + rng.between(1000, 3000);
    let mut written = 0u64;
    let mut generation = 0;
    let burst = (lines_per_sec / 50).max(1);
    while started.elapsed() < run {
        let mut text = String::new();
        for _ in 0..burst {
            text.push_str(&format!("level=info msg=\"tick\" n={written}\n"));
            written += 1;
        }
        file.write_all(text.as_bytes()).expect("write log");
        if Instant::now() >= next_rotation {
            generation += 1;
            let to = if rng.next().is_multiple_of(2) {
                logs.join(format!("app.log.{generation}"))
            } else {
                logs.join(format!("app-{generation}.log"))
            };
            fs::rename(&live, &to).expect("rotate");
            // A line written to the renamed file before the writer reopens, as services do.
            file.write_all(format!("level=info msg=\"late\" n={written}\n").as_bytes())
                .expect("write rotated");
            written += 1;
            file = open_append(&live);
            next_rotation = Instant::now() + rng.between(1000, 3000);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    written
}

fn wait_exact_records(agent: &Agent, expected: u64, limit: Duration) {
    let started = Instant::now();
    loop {
        let seen = agent.store_metric("log_records_total").unwrap_or(0.0) as u64;
        let lag = agent.store_metric("tail_lag_bytes").unwrap_or(1.0);
        assert!(
            seen <= expected,
            "{} lines counted twice ({seen} counted, {expected} written)",
            seen - expected
        );
        if seen == expected && lag == 0.0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{} lines lost ({seen} counted, {expected} written, lag {lag}); stderr:\n{}",
            expected - seen,
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every log file's bytes are accounted in the state: some entry (tailed or remembered) for
/// its inode has its offset at the file's end.
fn assert_offsets_at_the_end(data_dir: &Path, logs: &Path) {
    let state: Value =
        serde_json::from_slice(&fs::read(data_dir.join("state.json")).expect("state.json"))
            .expect("state.json is JSON");
    let files = state["tail"]["files"].as_array().expect("tail files");
    for entry in fs::read_dir(logs).expect("logs") {
        let path = entry.expect("entry").path();
        let meta = fs::metadata(&path).expect("stat");
        let offsets: Vec<u64> = files
            .iter()
            .filter(|f| f["id"]["ino"].as_u64() == Some(meta.ino()))
            .filter_map(|f| f["offset"].as_u64())
            .collect();
        assert!(
            offsets.contains(&meta.len()),
            "{} ({} bytes) is not read to its end in the state: {offsets:?}",
            path.display(),
            meta.len()
        );
    }
}

#[test]
fn kill_dash_nine_five_times_under_fast_rotation_loses_and_repeats_no_line() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    eprintln!("seed {seed}");
    // The writer's files appear after the first start: read from their beginning.
    let mut agent = Agent::start(&[]);
    let logs = agent.path().join("logs");
    let writer = {
        let logs = logs.clone();
        std::thread::spawn(move || write_with_rotations(&logs, Duration::from_secs(14), 1000, seed))
    };
    let mut rng = Lcg(seed ^ 0x9e37_79b9);
    for kill in 0..5 {
        std::thread::sleep(rng.between(500, 2500));
        eprintln!(
            "kill {kill}: {:?} records counted",
            agent.store_metric("log_records_total")
        );
        let dir = agent.kill9();
        agent = Agent::start_in(dir, &[]);
    }
    let written = writer.join().expect("writer");
    wait_exact_records(&agent, written, Duration::from_secs(60));
    let data_dir = agent.data_dir.clone();
    let dir = agent.stop();
    assert_offsets_at_the_end(&data_dir, &dir.path().join("logs"));
}

/// A file system mounted over `at`, unmounted (lazily) with the guard; the constructors give
/// `None` when mounting is not allowed (not root, no mount namespaces).
struct Mounted(PathBuf);

impl Mounted {
    /// A small tmpfs.
    fn tmpfs(at: &Path, size: &str) -> Option<Mounted> {
        Self::run(
            at,
            &[],
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
        )
    }

    /// A small tmpfs mounted by a process in a mount namespace of its own that shares `at`'s
    /// mount with this one (a container's runtime mounting a volume): it reaches this
    /// namespace only by propagation, and stays when that namespace ends with its process.
    fn tmpfs_from_another_namespace(at: &Path, size: &str) -> Option<Mounted> {
        let size = format!("size={size}");
        let unshare = ["unshare", "--mount", "--propagation", "unchanged", "mount"];
        Self::run(at, &unshare, &["-t", "tmpfs", "-o", &size, "tmpfs"])
    }

    /// `at` bound over itself as a shared mount: what is mounted over it (or under it) in
    /// one mount namespace propagates to the others that hold a copy of it, as on a host
    /// whose mounts are shared (systemd's default) and its containers' `rslave` copies.
    fn shared(at: &Path) -> Option<Mounted> {
        let bound = Self::run(at, &[], &["--bind"]);
        let made_shared = bound.is_some()
            && Command::new("mount")
                .arg("--make-shared")
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        made_shared.then_some(bound).flatten()
    }

    /// `PROGRAM... mount ARGS... [at] at` (`at` twice for a bind).
    fn run(at: &Path, wrapper: &[&str], args: &[&str]) -> Option<Mounted> {
        fs::create_dir_all(at).expect("mount point");
        let (program, rest) = wrapper.split_first().unwrap_or((&"mount", &[]));
        let mut command = Command::new(program);
        command.args(rest).args(args);
        if args.contains(&"--bind") {
            command.arg(at);
        }
        let status = command.arg(at).status().ok()?;
        status.success().then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until it refuses (ENOSPC).
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).expect("filler");
    let block = vec![b'x'; 64 * 1024];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    path
}

fn health_component(agent: &Agent, name: &str) -> Value {
    agent.get_json("/api/v1/health")["components"][name].clone()
}

fn temp_state_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// How a test makes the data directory's disk full and frees it again.
enum FullDisk {
    /// A small tmpfs mounted over the data directory, filled with a file (removed to free it).
    Tmpfs { _mount: Mounted, filler: PathBuf },
    /// ENOSPC injected into the agent's writes to the data directory by a preloaded library
    /// (`fault/enospc.c`) while the flag file exists (removed to free it): for machines that
    /// refuse to mount, and so that the test command exercises a second kind of full disk.
    Injected { flag: PathBuf },
}

impl FullDisk {
    /// Mounts and fills a tmpfs over `<dir>/data`, or `None` where mounting is refused.
    fn tmpfs(dir: &Path) -> Option<FullDisk> {
        let data = dir.join("data");
        let mount = Mounted::tmpfs(&data, "1m")?;
        // A crashed run's temporary state file (empty: removing it must not free the space
        // the test takes away), then a full disk.
        fs::write(data.join(".state.json.tmp-4242-0"), b"").expect("leftover");
        let filler = fill(&data);
        Some(FullDisk::Tmpfs {
            _mount: mount,
            filler,
        })
    }

    /// Builds the preload library with the C compiler that links Rust (`cc`) and makes the
    /// data directory "full" for the agent started with [`FullDisk::environment`].
    fn injected(dir: &Path) -> FullDisk {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/fault/enospc.c");
        let library = dir.join("libenospc.so");
        let output = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl")
            .output()
            .expect("run cc (the C compiler Rust links with) to build the ENOSPC preload");
        assert!(
            output.status.success(),
            "building {}: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let data = dir.join("data");
        fs::create_dir_all(&data).expect("data dir");
        fs::write(data.join(".state.json.tmp-4242-0"), b"").expect("leftover");
        let flag = dir.join("disk-full");
        fs::write(&flag, b"").expect("flag");
        FullDisk::Injected { flag }
    }

    /// The agent's environment for this kind of full disk.
    fn environment(&self, dir: &Path) -> Vec<(String, String)> {
        match self {
            FullDisk::Tmpfs { .. } => Vec::new(),
            FullDisk::Injected { flag } => vec![
                (
                    "LD_PRELOAD".into(),
                    dir.join("libenospc.so").display().to_string(),
                ),
                (
                    "FAULTLINE_TEST_FULL_DIR".into(),
                    dir.join("data").display().to_string(),
                ),
                (
                    "FAULTLINE_TEST_FULL_WHILE".into(),
                    flag.display().to_string(),
                ),
            ],
        }
    }

    fn free(&self) {
        match self {
            FullDisk::Tmpfs { filler, .. } => fs::remove_file(filler).expect("free space"),
            FullDisk::Injected { flag } => fs::remove_file(flag).expect("free space"),
        }
    }
}

/// The data directory's disk is full before the agent starts: it starts anyway and serves,
/// health and `/metrics` say the state is not persisted, commits are retried on a timer
/// without new data, and once space frees up the state is written; leftover temporary state
/// files are removed.
fn a_full_disk_is_shown_retried_and_does_not_stop_the_start(
    dir: tempfile::TempDir,
    disk: FullDisk,
) {
    let environment = disk.environment(dir.path());
    let agent = Agent::start_with(dir, &[], |command| {
        command.envs(environment);
    });
    let failing = eventually(Duration::from_secs(20), "data_dir failing", || {
        let c = health_component(&agent, "data_dir");
        (c["state"] == "failing").then_some(c)
    });
    assert!(
        failing["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not persisted"),
        "{failing}"
    );
    assert!(
        agent.stderr().contains("No space left on device"),
        "the full disk is not named: {}",
        agent.stderr()
    );
    assert_eq!(agent.store_metric("state_persisting"), Some(0.0));
    // Retried on a timer, with no new data arriving.
    let first = agent
        .store_metric("state_commit_failures_total")
        .unwrap_or(0.0);
    eventually(Duration::from_secs(20), "commits retried", || {
        (agent
            .store_metric("state_commit_failures_total")
            .unwrap_or(0.0)
            > first)
            .then_some(())
    });
    // Serving from memory meanwhile.
    let log = agent.log_path("svc.log");
    fs::write(&log, "level=error msg=\"boom\" err=\"EOF\"\n").expect("log");
    eventually(Duration::from_secs(20), "the line counted", || {
        (agent.store_metric("log_records_total") == Some(1.0)).then_some(())
    });
    assert_eq!(
        temp_state_files(&agent.data_dir),
        Vec::<String>::new(),
        "temporary state files left behind"
    );
    disk.free();
    eventually(Duration::from_secs(20), "persisting again", || {
        (agent.store_metric("state_persisting") == Some(1.0)).then_some(())
    });
    assert_eq!(health_component(&agent, "data_dir")["state"], "running");
    let state: Value = serde_json::from_slice(
        &fs::read(agent.data_dir.join("state.json")).expect("state.json written"),
    )
    .expect("JSON");
    assert_eq!(state["totals"]["file_records"], 1);
}

/// A full disk as the kernel makes it: a 1 MiB tmpfs, filled. The test command runs as
/// root, which may mount; where mounting is refused this test says so and injects ENOSPC
/// instead (as the next test always does), rather than passing untested.
#[test]
fn a_full_data_dir_disk_is_shown_retried_and_does_not_stop_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FullDisk::tmpfs(dir.path()).unwrap_or_else(|| {
        eprintln!("mounting a tmpfs was refused: ENOSPC is injected instead");
        FullDisk::injected(dir.path())
    });
    a_full_disk_is_shown_retried_and_does_not_stop_the_start(dir, disk);
}

/// The same full disk without mounting anything: the agent's writes to its data directory
/// fail with ENOSPC (a preloaded library answers them) until the test frees the "space".
#[test]
fn an_injected_enospc_is_shown_retried_and_does_not_stop_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FullDisk::injected(dir.path());
    a_full_disk_is_shown_retried_and_does_not_stop_the_start(dir, disk);
}

/// A state file that is valid JSON but contradicts itself (a template naming a root that is
/// not there) made the agent exit 1 on every start. It is set aside, the previous generation
/// is used, and every line is still counted exactly once.
#[test]
fn a_state_that_contradicts_itself_is_set_aside_and_the_previous_generation_used() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("orders.log");
    let mut written = 0u64;
    for _ in 0..3 {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        for _ in 0..50 {
            writeln!(
                file,
                "level=error msg=\"payment failed\" err=\"i/o timeout\" n={written}"
            )
            .expect("write");
            written += 1;
        }
        // Committed: the state on disk counts this round, so the next round lands in a
        // later commit (the commit interval is configuration; only a change is committed).
        eventually(Duration::from_secs(20), "counted and committed", || {
            let state: Value =
                serde_json::from_slice(&fs::read(agent.data_dir.join("state.json")).ok()?).ok()?;
            (state["totals"]["file_records"].as_u64() == Some(written)).then_some(())
        });
    }
    let data_dir = agent.data_dir.clone();
    let dir = agent.kill9();
    assert!(
        data_dir.join("state.prev.json").exists(),
        "no previous generation kept"
    );
    let path = data_dir.join("state.json");
    let mut state: Value = serde_json::from_slice(&fs::read(&path).expect("state")).expect("JSON");
    state["clustering"]["keys"][0]["stats"]["root"] = Value::from(999);
    fs::write(&path, serde_json::to_vec(&state).expect("JSON")).expect("write");

    let agent = Agent::start_in(dir, &[]);
    eventually(Duration::from_secs(20), "every line counted once", || {
        let seen = agent.store_metric("log_records_total").unwrap_or(0.0) as u64;
        assert!(seen <= written, "{} lines counted twice", seen - written);
        let lag = agent.store_metric("tail_lag_bytes").unwrap_or(1.0);
        (seen == written && lag == 0.0).then_some(())
    });
    assert_eq!(
        agent.store_metric("error_records_total"),
        Some(written as f64)
    );
    let aside: Vec<String> = fs::read_dir(&data_dir)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "the broken file is kept aside: {aside:?}");
    assert!(
        agent.stderr().contains("unknown root"),
        "{}",
        agent.stderr()
    );
}

/// Appends `count` numbered lines to `path`, numbered from `*written` on.
fn append_lines(path: &Path, count: u64, written: &mut u64) {
    let mut file = open_append(path);
    let mut text = String::new();
    for _ in 0..count {
        text.push_str(&format!("level=info msg=\"tick\" n={written}\n"));
        *written += 1;
    }
    file.write_all(text.as_bytes()).expect("append");
}

fn set_mode(path: &Path, mode: u32) {
    let mut perms = fs::metadata(path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, mode);
    fs::set_permissions(path, perms).expect("chmod");
}

/// A log directory, then a log file, that the agent can no longer read is named per source
/// in health (and so on the dashboard's sources panel) and in `/metrics`; readable again,
/// the file goes on at its offset: every line written meanwhile is counted, none twice.
/// Root reads any file, so under root the agent runs as `nobody` (setpriv) for this test.
#[test]
fn an_unreadable_log_directory_or_file_is_named_and_resumed_at_its_offset_once_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).expect("logs");
    let log = logs.join("svc.log");
    let wrapper = as_nobody(dir.path());
    let agent = Agent::start_wrapped(dir, &wrapper, &[]);
    let glob = format!("{}/*.log", logs.display());
    let source = format!("logs {glob}");
    // Written after the first start: read from its beginning.
    let mut written = 0;
    append_lines(&log, 100, &mut written);
    eventually(Duration::from_secs(20), "source running", || {
        (health_component(&agent, &source)["state"] == "running").then_some(())
    });
    wait_exact_records(&agent, written, Duration::from_secs(20));

    // The directory: the open file is read to its end, then let go once idle for the
    // rotation grace period (5 s); what is written after that waits for the directory.
    set_mode(&logs, 0o000);
    let failing = eventually(Duration::from_secs(20), "source failing", || {
        let c = health_component(&agent, &source);
        (c["state"] == "failing").then_some(c)
    });
    assert!(
        failing["detail"]
            .as_str()
            .unwrap_or("")
            .contains("ermission denied"),
        "{failing}"
    );
    assert_eq!(health_component(&agent, "logs")["state"], "failing");
    assert_eq!(agent.store_metric("tail_unreadable_sources"), Some(1.0));
    append_lines(&log, 50, &mut written);
    wait_exact_records(&agent, written, Duration::from_secs(20));
    eventually(Duration::from_secs(30), "the file let go", || {
        (agent.store_metric("tail_files") == Some(0.0)).then_some(())
    });
    append_lines(&log, 50, &mut written);
    set_mode(&logs, 0o755);
    eventually(Duration::from_secs(20), "source running again", || {
        (health_component(&agent, &source)["state"] == "running").then_some(())
    });
    wait_exact_records(&agent, written, Duration::from_secs(20));
    assert_eq!(agent.store_metric("tail_resumed_files_total"), Some(1.0));
    let dir = agent.stop();

    // The file: unreadable when the agent starts again, with lines it has not read yet.
    append_lines(&log, 50, &mut written);
    set_mode(&log, 0o000);
    let agent = Agent::start_wrapped(dir, &wrapper, &[]);
    let failing = eventually(Duration::from_secs(20), "source failing", || {
        let c = health_component(&agent, &source);
        (c["state"] == "failing").then_some(c)
    });
    let detail = failing["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("ermission denied") && detail.contains("svc.log"),
        "{failing}"
    );
    assert_eq!(agent.store_metric("tail_unreadable_sources"), Some(1.0));
    set_mode(&log, 0o644);
    eventually(Duration::from_secs(20), "source running again", || {
        (health_component(&agent, &source)["state"] == "running").then_some(())
    });
    // The counter starts from the stored total: every line once across both runs.
    wait_exact_records(&agent, written, Duration::from_secs(20));
    let data_dir = agent.data_dir.clone();
    let dir = agent.stop();
    assert_offsets_at_the_end(&data_dir, &dir.path().join("logs"));
}

/// A source that cannot be read is looked at again on a timer of the tailer's own, not only
/// when a file-system event says that something changed, because becoming readable often
/// raises no event in the directories the agent watches. Two such sources, with the globs
/// expanded only every 10 minutes (`glob_interval_ms`, so that nothing else finds them):
/// a glob's directory that was unreadable when the agent started (it could not be watched,
/// so its chmod back is not seen), and a log reached through a symbolic link (the
/// Kubernetes layout: `/var/log/containers/*.log` are links into `/var/log/pods/`) whose
/// target's directory the agent may not search until a chmod there, outside every watched
/// directory. Each is named in health while unreadable and read within seconds once
/// readable; every line once. Root reads anything, so the agent runs as `nobody` (setpriv).
#[test]
fn sources_that_become_readable_without_an_event_are_read_on_a_retry_timer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    let late = dir.path().join("late");
    let pods = dir.path().join("pods").join("svc");
    for d in [&logs, &late, &pods] {
        fs::create_dir_all(d).expect("directory");
    }
    let config = dir.path().join("faultline.toml");
    fs::write(&config, "[tail]\nglob_interval_ms = 600000\n").expect("config");
    let mut written = 0;
    append_lines(&late.join("app.log"), 10, &mut written);
    let wrapper = as_nobody(dir.path());
    set_mode(&late, 0o000);
    let logs_glob = format!("{}/*.log", logs.display());
    let late_glob = format!("{}/*.log", late.display());
    let agent = Agent::start_wrapped(
        dir,
        &wrapper,
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "--log",
            &logs_glob,
            "--log",
            &late_glob,
        ],
    );
    let failing = |source: &str, naming: &str| {
        let c = eventually(Duration::from_secs(20), "source failing", || {
            let c = health_component(&agent, source);
            (c["state"] == "failing").then_some(c)
        });
        let detail = c["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("ermission denied") && detail.contains(naming),
            "{c}"
        );
    };
    let running = |source: &str| {
        eventually(Duration::from_secs(40), "source running again", || {
            (health_component(&agent, source)["state"] == "running").then_some(())
        });
    };

    // The directory unreadable since the start.
    let late_source = format!("logs {late_glob}");
    failing(&late_source, "late");
    set_mode(&late, 0o755);
    running(&late_source);
    wait_exact_records(&agent, written, Duration::from_secs(20));

    // The link's target behind a directory the agent may not search.
    let target = pods.join("0.log");
    append_lines(&target, 20, &mut written);
    set_mode(&pods, 0o000);
    std::os::unix::fs::symlink(&target, logs.join("svc.log")).expect("symlink");
    let logs_source = format!("logs {logs_glob}");
    failing(&logs_source, "svc.log");
    assert_eq!(agent.store_metric("tail_unreadable_sources"), Some(1.0));
    set_mode(&pods, 0o755);
    running(&logs_source);
    wait_exact_records(&agent, written, Duration::from_secs(20));
    // Written after: read although no watched directory sees the writes.
    append_lines(&target, 5, &mut written);
    wait_exact_records(&agent, written, Duration::from_secs(20));
    assert_eq!(agent.store_metric("tail_unreadable_sources"), Some(0.0));
    drop(agent.stop());
}

/// A file system mounted over a watched log directory after its watch was set (a volume
/// attached late, a tmpfs for a service's logs): the watch stays on the directory it covers
/// and sees nothing of the new file system. The glob interval is 10 minutes, so only the
/// mount itself can make the tailer look again: a file created on the new file system is
/// found (before the fix: not within 10 minutes), a second one created later is found too
/// (only a watch on the new file system sees it), and writes to both are read; after the
/// unmount, the old directory's file goes on at its offset. Every line once. Needs root to
/// mount (the test command runs as root): fails, saying so, when mounting is refused.
#[test]
fn a_file_system_mounted_over_a_watched_directory_is_read_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    let agent = start_watching(dir, &[]);
    read_at_once_across_a_mount(&agent, &logs, |logs| Mounted::tmpfs(logs, "4m"));
    drop(agent.stop());
}

/// The same across mount namespaces, where a mount made in one reaches the other: the agent
/// follows its own namespace's mount table, and a mount propagated into it changes that
/// table like one made there. (1) The agent on the host, the file system mounted over its
/// log directory by a process in another mount namespace (a container's runtime) sharing the
/// directory's mount. (2) The agent in a mount namespace of its own whose copy of the log
/// directory receives the host's mounts (a container with `mountPropagation:
/// HostToContainer`, as deploy/kubernetes/faultline.yaml asks), the file system mounted on
/// the host. A mount that does not propagate into the agent's namespace changes nothing the
/// agent can read at its path, and there is nothing to follow (see docs/fleet.md).
#[test]
fn a_file_system_mounted_from_another_mount_namespace_is_read_at_once() {
    for agent_in_own_namespace in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("logs");
        let shared = Mounted::shared(&logs).unwrap_or_else(|| {
            panic!(
                "binding {} over itself as a shared mount was refused: this test needs root \
                 (the test command runs as root)",
                logs.display()
            )
        });
        let agent = if agent_in_own_namespace {
            // Its copy of every mount receives this namespace's mounts (`rslave`).
            start_watching(dir, &["unshare", "--mount", "--propagation", "slave", "--"])
        } else {
            start_watching(dir, &[])
        };
        read_at_once_across_a_mount(&agent, &logs, |logs| {
            if agent_in_own_namespace {
                Mounted::tmpfs(logs, "4m")
            } else {
                Mounted::tmpfs_from_another_namespace(logs, "4m")
            }
        });
        let stopped = agent.stop();
        drop(shared);
        drop(stopped);
    }
}

/// The agent (through `wrapper`, if any) tailing `<dir>/logs/*.log` with a glob interval
/// of 10 minutes: only events (and mounts) make it look at the directory again.
fn start_watching(dir: tempfile::TempDir, wrapper: &[&str]) -> Agent {
    let config = dir.path().join("faultline.toml");
    fs::write(&config, "[tail]\nglob_interval_ms = 600000\n").expect("config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    Agent::start_wrapped(dir, wrapper, &["--config", &config])
}

/// Lines written to `logs` before, on and after a file system that `mount` puts over it
/// once the agent watches it: each read within 20 s, none twice.
fn read_at_once_across_a_mount(
    agent: &Agent,
    logs: &Path,
    mount: impl FnOnce(&Path) -> Option<Mounted>,
) {
    // Written after the first start: read from its beginning.
    let mut written = 0;
    append_lines(&logs.join("before.log"), 10, &mut written);
    wait_exact_records(agent, written, Duration::from_secs(20));
    let mounted = mount(logs).unwrap_or_else(|| {
        panic!(
            "mounting a tmpfs over {} was refused: this test needs root (the test command \
             runs as root)",
            logs.display()
        )
    });
    append_lines(&logs.join("mounted.log"), 20, &mut written);
    wait_exact_records(agent, written, Duration::from_secs(20));
    // Created once the first is read: the agent looks only because its new watch sees it.
    append_lines(&logs.join("created.log"), 30, &mut written);
    wait_exact_records(agent, written, Duration::from_secs(20));
    append_lines(&logs.join("mounted.log"), 5, &mut written);
    append_lines(&logs.join("created.log"), 5, &mut written);
    wait_exact_records(agent, written, Duration::from_secs(20));
    drop(mounted);
    assert!(
        logs.join("before.log").exists(),
        "the old directory is back after the unmount"
    );
    append_lines(&logs.join("before.log"), 7, &mut written);
    wait_exact_records(agent, written, Duration::from_secs(20));
}
