//! Who may read the agent's dashboard and API, through the real binary (#12's exposure):
//! DNS rebinding is refused by the `Host` check, short tokens are refused at start, the
//! login cookie is a random session and not the token, and wrong tokens are rate-limited.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::redirect::Policy;

use crate::support::{faultline, Agent};

const TOKEN: &str = "0123456789abcdef-correct";

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[test]
fn without_a_token_only_hosts_naming_the_agent_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    std::fs::write(&config, "[web]\nallowed_hosts = [\"agent.internal\"]\n").expect("config");
    let config = config.display().to_string();
    let agent = Agent::start_in(dir, &["--config", &config]);
    let port = agent.base.rsplit(':').next().expect("port");
    let status = |host: &str| {
        client()
            .get(format!("{}/api/v1/clusters", agent.base))
            .header("host", host)
            .send()
            .expect("answer")
            .status()
            .as_u16()
    };
    // A page of evil.example whose name now resolves to 127.0.0.1.
    assert_eq!(status(&format!("evil.example:{port}")), 403);
    assert_eq!(status("evil.example"), 403);
    assert_eq!(status(&format!("localhost:{port}")), 200);
    assert_eq!(status(&format!("127.0.0.1:{port}")), 200);
    assert_eq!(status(&format!("agent.internal:{port}")), 200);
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains("faultline_store_web_foreign_hosts_total 2"),
        "{metrics}"
    );
}

#[test]
fn a_short_token_is_refused_at_start_naming_the_key() {
    let output = faultline(&["run", "--token", "abc", "--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("web.token"), "{stderr}");
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
    assert!(
        !stderr.contains("abc\""),
        "the token is not echoed: {stderr}"
    );
}

#[test]
fn the_login_cookie_is_a_session_and_wrong_tokens_are_rate_limited() {
    let agent = Agent::start(&["--token", TOKEN]);
    let client = client();
    let login = |token: &str| {
        client
            .post(format!("{}/login", agent.base))
            .form(&[("token", token)])
            .send()
            .expect("login answers")
    };
    let first = login(TOKEN);
    assert_eq!(first.status().as_u16(), 303);
    let cookie = |r: &reqwest::blocking::Response| {
        r.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned()
    };
    let session = cookie(&first);
    let hex_token: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!session.contains(&hex_token) && !session.contains(TOKEN));
    assert_ne!(
        session,
        cookie(&login(TOKEN)),
        "each login opens its own session"
    );
    let with = |cookie: &str| {
        client
            .get(format!("{}/api/v1/clusters", agent.base))
            .header("cookie", cookie)
            .send()
            .expect("answer")
            .status()
            .as_u16()
    };
    assert_eq!(with(&session), 200);
    // A forged cookie made of the token, as the old cookie was, opens nothing.
    assert_eq!(with(&format!("faultline_session={hex_token}")), 401);

    // Guessing: past a short burst, every attempt is refused until the bucket refills.
    let statuses: Vec<u16> = (0..40)
        .map(|i| login(&format!("guess-number-{i:04}")).status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(throttled >= 20, "only {throttled} of 40 guesses throttled");
    // The bucket refills: the right token is served again, and the refusals were counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        match crate::support::http_get_with(&format!("{}/metrics", agent.base), Some(TOKEN)) {
            Ok((200, metrics)) => break metrics,
            _ => {
                assert!(std::time::Instant::now() < deadline, "never served again");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let throttled_total = metrics
        .lines()
        .find_map(|l| l.strip_prefix("faultline_store_web_credentials_throttled_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no throttled count in:\n{metrics}"));
    assert!(throttled_total >= throttled as f64);
}

#[test]
fn a_guesser_locks_out_only_itself() {
    let agent = Agent::start(&["--token", TOKEN]);
    let from = |address: [u8; 4]| {
        Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    };
    let guesser = from([127, 0, 0, 2]);
    let reader = from([127, 0, 0, 1]);
    let status = |client: &Client, token: &str| {
        client
            .get(format!("{}/api/v1/clusters", agent.base))
            .bearer_auth(token)
            .send()
            .expect("answer")
            .status()
            .as_u16()
    };
    // Guess until the guesser's bucket is empty (bounded: the burst is 10).
    let mut throttled = false;
    for i in 0..200 {
        if status(&guesser, &format!("wrong-guess-{i:08}")) == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "200 wrong tokens in a row were never throttled");
    // Right after, another client with the right token is served: with one bucket for
    // everyone, it was refused until the guesser's bucket refilled.
    assert_eq!(status(&reader, TOKEN), 200);
}
