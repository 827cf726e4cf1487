//! The command line and configuration, as a person meets them: help, the default config,
//! `config --check`, and refusals that name the bad key.

use std::fs;

use crate::support::faultline;

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = faultline(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_explains_itself_in_one_screen() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["config", "--help"],
        vec!["version", "--help"],
    ] {
        let out = faultline(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(
            text.lines().count() < 80,
            "{args:?} help is longer than a screen"
        );
    }
    let out = faultline(&["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("faultline "));
}

#[test]
fn the_default_config_is_printed_commented_and_passes_its_own_check() {
    let out = faultline(&["config", "--default"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for key in [
        "data_dir",
        "[web]",
        "listen",
        "[otlp]",
        "grpc_listen",
        "http_listen",
        "[[logs]]",
        "[[tasks]]",
    ] {
        assert!(text.contains(key), "default config lacks {key}");
    }
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 10,
        "not commented"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    fs::write(&path, &text).unwrap();
    let out = faultline(&["config", "--check", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn bad_configs_are_refused_with_one_line_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            "[web]\nlisen = \"127.0.0.1:7070\"\n",
            "lisen",
        ),
        (
            "port.toml",
            "[web]\nlisten = \"127.0.0.1:70000\"\n",
            "web.listen",
        ),
        (
            "exposed.toml",
            "[web]\nlisten = \"0.0.0.0:7070\"\n",
            "web.token",
        ),
        ("type.toml", "[otlp]\ngrpc_listen = 4317\n", "grpc_listen"),
        (
            "task.toml",
            "[[tasks]]\nname = \"api\"\nurl = \"localhost:6060\"\n",
            "tasks[0].url",
        ),
        ("syntax.toml", "[web\nlisten = 1\n", "line 1"),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        for args in [
            vec!["config", "--check", path],
            vec!["run", "--config", path],
        ] {
            let (code, stderr) = stderr_of(&args);
            assert_eq!(code, 2, "{args:?}: {stderr}");
            assert_eq!(
                stderr.trim().lines().count(),
                1,
                "{args:?}: not one line: {stderr}"
            );
            assert!(
                stderr.contains(needle),
                "{args:?}: {stderr} does not name {needle}"
            );
            assert!(
                stderr.contains(name),
                "{args:?}: {stderr} does not name the file"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn a_missing_config_file_and_an_unusable_data_dir_are_clear_errors() {
    let (code, stderr) = stderr_of(&["run", "--config", "/nonexistent/faultline.toml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/faultline.toml"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let data_dir = file.join("data");
    let (code, stderr) = stderr_of(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("data_dir"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_busy_port_is_a_one_line_error_naming_the_address() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = faultline(&[
        "run",
        "--listen",
        &addr,
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-http",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log",
        &format!("{}/*.log", dir.path().display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("faultline: error:") && last.contains(&addr),
        "{stderr}"
    );
}
