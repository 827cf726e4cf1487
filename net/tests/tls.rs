//! TLS on a listener served by `faultline_net::serve`, with real clients on loopback: a client
//! that trusts the (self-signed, made here) certificate is served; a plain-text client and a
//! client that does not trust the certificate are refused and counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_net::{serve, ConnectionLimits, ConnectionStats, Tls};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Waits (bounded) until `check` holds; the machine may be loaded.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_clients_that_trust_it_and_counts_the_others() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, made.cert.pem()).unwrap();
    std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
    let tls = Tls::from_pem_files(&cert_path, &key_path).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "over tls" }));
    let stats = Arc::new(ConnectionStats::default());
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let (stats, stop) = (stats.clone(), stop.clone());
        async move {
            serve(
                listener,
                app,
                Some(tls),
                &ConnectionLimits::default(),
                stats,
                stop,
            )
            .await
        }
    });

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/", addr.port());
    let answer = trusting.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "over tls");
    assert_eq!(stats.counts().tls_failed, 0);

    // Plain HTTP to the TLS port: no answer, and the failed handshake is counted.
    let plain = reqwest::Client::new();
    assert!(plain
        .get(format!("http://127.0.0.1:{}/", addr.port()))
        .send()
        .await
        .is_err());
    eventually("the plain-text client's failure to be counted", || {
        stats.counts().tls_failed == 1
    })
    .await;

    // A client that does not trust the certificate refuses it; the server counts the
    // handshake the client broke off.
    let distrusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let err = distrusting.get(&url).send().await.unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    eventually("the distrusting client's failure to be counted", || {
        stats.counts().tls_failed == 2
    })
    .await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops when asked")
        .unwrap();
}
