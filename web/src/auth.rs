//! Access control: which requests the web listener serves.
//!
//! Without a token (a loopback listener), the only check is the `Host` header: a web page of
//! another site that the user's browser opens can make its own name resolve to 127.0.0.1
//! (DNS rebinding) and read every answer as same-origin. Such a request carries the other
//! site's name as `Host`; only IP literals (which cannot be rebound), `localhost` and the
//! names listed in `web.allowed_hosts` are served.
//!
//! With a token, every request must carry it — `Authorization: Bearer <token>` (scripts,
//! Prometheus) or the session cookie set by the `/login` form (browsers) — and any `Host` is
//! served. The cookie holds a random session id, never the token. Tokens are compared in
//! constant time, and wrong ones are rate-limited per client (IPv4 address or IPv6 /64, as
//! `faultline_net::serve` reports the peer): past a small burst, any credential from that
//! client is answered 429 until its bucket refills, so guessing runs at a few attempts per
//! second (it ran at 15,692/s). A guesser locks out only itself: with one bucket for everyone,
//! a local process sending wrong tokens also kept the right one out. At most [`MAX_CLIENTS`]
//! buckets are kept (about 100 bytes each); past that, buckets already refilled are dropped
//! unless their client once presented the right credential, and clients that still find no
//! room share one overflow bucket. So memory stays bounded whatever the number of addresses
//! (a local process can use all of 127.0.0.0/8), a reader who signed in before such a flood
//! keeps its own bucket, and the guesses of the whole flood stay a few thousand a second,
//! hopeless against a 16-character token. Refusals are counted ([`AccessCounts`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use faultline_net::{constant_time_eq, BearerToken, PeerAddr};
use serde::Deserialize;

use crate::ApiError;

/// Name of the session cookie.
const COOKIE_NAME: &str = "faultline_session";

/// Sessions kept at once; a new login past it ends the oldest session.
const MAX_SESSIONS: usize = 256;

/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Wrong credentials accepted in a burst, then [`ATTEMPTS_PER_SECOND`]: a person who mistypes
/// is never slowed down, a guesser gets two tries a second.
const ATTEMPT_BURST: f64 = 10.0;
const ATTEMPTS_PER_SECOND: f64 = 2.0;

/// Clients with a rate-limit bucket of their own. A node's dashboard has a handful of
/// readers; 4,096 buckets cost about 400 KB at most.
pub const MAX_CLIENTS: usize = 4096;

/// Refusals since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessCounts {
    /// Requests and logins with a wrong token or an unknown session.
    pub wrong_credentials: u64,
    /// Requests and logins refused by the rate limit of wrong credentials.
    pub throttled: u64,
    /// Requests refused for a `Host` that does not name this agent.
    pub foreign_hosts: u64,
}

/// The web listener's access control: token, sessions, rate limit and allowed hosts.
/// Shared by every request; build one with [`Access::new`].
pub struct Access {
    token: Option<BearerToken>,
    allowed_hosts: Vec<String>,
    sessions: Mutex<VecDeque<(String, Instant)>>,
    attempts: Mutex<AttemptLimiter>,
    wrong_credentials: AtomicU64,
    throttled: AtomicU64,
    foreign_hosts: AtomicU64,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Access control with this token (none: loopback use, `Host` checked) and these extra
    /// host names (`web.allowed_hosts`).
    pub fn new(token: Option<&str>, allowed_hosts: &[String]) -> Arc<Self> {
        Arc::new(Access {
            token: token.map(BearerToken::new),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            sessions: Mutex::new(VecDeque::new()),
            attempts: Mutex::new(AttemptLimiter::default()),
            wrong_credentials: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            foreign_hosts: AtomicU64::new(0),
        })
    }

    /// Refusals since start.
    pub fn counts(&self) -> AccessCounts {
        AccessCounts {
            wrong_credentials: self.wrong_credentials.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            foreign_hosts: self.foreign_hosts.load(Ordering::Relaxed),
        }
    }

    /// Whether a credential from `client` may be checked now; counts the refusal when not.
    fn may_attempt(&self, client: Client) -> bool {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let allowed = attempts.may_attempt(client, Instant::now());
        if !allowed {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Spends one attempt of `client`'s bucket on a wrong credential, and counts it.
    fn note_wrong(&self, client: Client) {
        self.wrong_credentials.fetch_add(1, Ordering::Relaxed);
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.note_wrong(client, Instant::now());
    }

    /// Remembers that `client` presented the right credential: its bucket is kept.
    fn note_right(&self, client: Client) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.note_right(client);
    }

    /// A new session id (32 random bytes in hex), remembered for [`SESSION_LIFETIME`].
    fn open_session(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let id = hex(&bytes);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|(_, expires)| *expires > now);
        if sessions.len() >= MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back((id.clone(), now + SESSION_LIFETIME));
        Some(id)
    }

    fn session_is_open(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Every session is compared (in constant time each), so the answer's timing says
        // nothing about which prefix matched.
        sessions.iter().fold(false, |found, (open, expires)| {
            found | (constant_time_eq(open.as_bytes(), id.as_bytes()) && *expires > now)
        })
    }

    /// Whether `Host` may be served without a token (see the module docs).
    fn host_allowed(&self, request: &Request) -> Result<(), String> {
        let host = request
            .headers()
            .get(HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
        // No Host at all: not a browser, so not a rebinding page.
        let Some(host) = host else { return Ok(()) };
        let name = host_name(&host);
        let ip_literal = name.starts_with('[') || name.parse::<IpAddr>().is_ok();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if ip_literal || name == "localhost" || self.allowed_hosts.contains(&name) {
            Ok(())
        } else {
            Err(host)
        }
    }
}

/// The host part of a `Host` value: without the port, brackets kept for IPv6.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Serves a request when access control lets it through (see the module docs); answers 403
/// (foreign `Host`), 429 (too many wrong tokens) or 401 (no or wrong credential: the login
/// page for dashboard pages, the JSON error for everything else) otherwise. The login form
/// and the static assets it needs are always reachable when a token is set.
pub(crate) async fn require_access(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = access.token.clone() else {
        return match access.host_allowed(&request) {
            Ok(()) => next.run(request).await,
            Err(host) => {
                access.foreign_hosts.fetch_add(1, Ordering::Relaxed);
                ApiError::foreign_host(&host).into_response()
            }
        };
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let api = path.starts_with("/api/") || path == "/metrics";
    let client = Client::of(request.extensions().get::<PeerAddr>());
    let presented = Credential::of(&request);
    if presented.is_some() && !access.may_attempt(client) {
        return throttled(api);
    }
    let valid = match &presented {
        Some(Credential::Bearer(given)) => expected.matches(given.as_bytes()),
        Some(Credential::Session(id)) => access.session_is_open(id),
        None => false,
    };
    if valid {
        access.note_right(client);
        return next.run(request).await;
    }
    if presented.is_some() {
        access.note_wrong(client);
    }
    if api {
        ApiError::unauthorized().into_response()
    } else {
        login_page(StatusCode::UNAUTHORIZED, false)
    }
}

/// What a request presents to prove it may read.
enum Credential {
    Bearer(String),
    Session(String),
}

impl Credential {
    fn of(request: &Request) -> Option<Credential> {
        let bearer = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return Some(Credential::Bearer(token.to_owned()));
        }
        request
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME)
            .map(|(_, value)| Credential::Session(value.to_owned()))
    }
}

fn throttled(api: bool) -> Response {
    let mut response = if api {
        ApiError::too_many_attempts().into_response()
    } else {
        login_page(StatusCode::TOO_MANY_REQUESTS, true)
    };
    response
        .headers_mut()
        .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who an attempt comes from, for the rate limit: an IPv4 address, or an IPv6 /64 (a host
/// usually holds a whole /64, so one bucket per IPv6 address would give it billions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(Ipv4Addr),
    V6Prefix(u64),
    /// A request that did not come through `faultline_net::serve` (no peer address).
    Unknown,
}

impl Client {
    fn of(peer: Option<&PeerAddr>) -> Client {
        match peer.map(|p| p.0) {
            None => Client::Unknown,
            Some(SocketAddr::V4(addr)) => Client::V4(*addr.ip()),
            Some(SocketAddr::V6(addr)) => match addr.ip().to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6Prefix((addr.ip().to_bits() >> 64) as u64),
            },
        }
    }
}

/// One client's attempts: a token bucket of [`ATTEMPT_BURST`] refilled at
/// [`ATTEMPTS_PER_SECOND`].
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The client once presented the right credential: its bucket is never dropped.
    trusted: bool,
}

impl Bucket {
    fn full(now: Instant) -> Bucket {
        Bucket {
            tokens: ATTEMPT_BURST,
            at: now,
            trusted: false,
        }
    }

    /// The tokens at `now`, refill included.
    fn tokens_at(&self, now: Instant) -> f64 {
        let refill = now.duration_since(self.at).as_secs_f64() * ATTEMPTS_PER_SECOND;
        (self.tokens + refill).min(ATTEMPT_BURST)
    }
}

/// The buckets of the clients that sent credentials, bounded by [`MAX_CLIENTS`] (see the
/// module docs).
#[derive(Debug)]
struct AttemptLimiter {
    clients: HashMap<Client, Bucket>,
    overflow: Bucket,
    /// No sweep for room before this: a sweep that found none is not repeated for every
    /// request of a flood.
    next_sweep: Instant,
}

/// Pause between sweeps for room that found none: a drained bucket takes 0.5 s to refill
/// one attempt, so sooner sweeps would find nothing either.
const SWEEP_PAUSE: Duration = Duration::from_millis(100);

impl Default for AttemptLimiter {
    fn default() -> Self {
        let now = Instant::now();
        AttemptLimiter {
            clients: HashMap::new(),
            overflow: Bucket::full(now),
            next_sweep: now,
        }
    }
}

impl AttemptLimiter {
    /// `client`'s bucket: its own, a new one, or the shared overflow bucket when
    /// [`MAX_CLIENTS`] clients hold buckets that are not refilled yet.
    fn bucket(&mut self, client: Client, now: Instant) -> &mut Bucket {
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            if now >= self.next_sweep {
                // A refilled bucket of a client never trusted is the same as none: dropping
                // it forgets nothing.
                self.clients
                    .retain(|_, bucket| bucket.trusted || bucket.tokens_at(now) < ATTEMPT_BURST);
                self.next_sweep = now + SWEEP_PAUSE;
            }
            if self.clients.len() >= MAX_CLIENTS {
                return &mut self.overflow;
            }
        }
        self.clients
            .entry(client)
            .or_insert_with(|| Bucket::full(now))
    }

    fn may_attempt(&mut self, client: Client, now: Instant) -> bool {
        let bucket = self.bucket(client, now);
        bucket.tokens = bucket.tokens_at(now);
        bucket.at = now;
        bucket.tokens >= 1.0
    }

    fn note_wrong(&mut self, client: Client, now: Instant) {
        let bucket = self.bucket(client, now);
        bucket.tokens = (bucket.tokens_at(now) - 1.0).max(0.0);
        bucket.at = now;
    }

    fn note_right(&mut self, client: Client) {
        // The overflow bucket is shared: trusting it would trust every client in it.
        if let Some(bucket) = self.clients.get_mut(&client) {
            bucket.trusted = true;
        }
    }
}

/// The login form's fields.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `GET /login` shows the form, `POST /login` checks the token and opens a session.
pub(crate) fn login_routes(access: Arc<Access>) -> Router {
    Router::new()
        .route(
            "/login",
            get(|| async { login_page(StatusCode::OK, false) }).post(check_login),
        )
        .with_state(access)
}

async fn check_login(
    State(access): State<Arc<Access>>,
    peer: Option<Extension<PeerAddr>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(expected) = access.token.clone() else {
        return (StatusCode::SEE_OTHER, [(LOCATION, "/")]).into_response();
    };
    let client = Client::of(peer.as_ref().map(|Extension(peer)| peer));
    if !access.may_attempt(client) {
        return throttled(false);
    }
    if !expected.matches(form.token.as_bytes()) {
        access.note_wrong(client);
        return login_page(StatusCode::UNAUTHORIZED, true);
    }
    access.note_right(client);
    let Some(session) = access.open_session() else {
        return ApiError::internal("no randomness for a session id").into_response();
    };
    let cookie = format!("{COOKIE_NAME}={session}; Path=/; HttpOnly; SameSite=Strict");
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/".to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response()
}

fn login_page(status: StatusCode, failed: bool) -> Response {
    let note = match (failed, status) {
        (true, StatusCode::TOO_MANY_REQUESTS) => {
            "<p class=\"login-error\" role=\"alert\">Too many wrong tokens: wait a second.</p>"
        }
        (true, _) => {
            "<p class=\"login-error\" role=\"alert\">That token is not the agent's token.</p>"
        }
        _ => "",
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>faultline: sign in</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
<body><main class=\"login\"><h1>faultline</h1>\
<p>This agent listens beyond loopback and asks for its token (<code>web.token</code>).</p>{note}\
<form method=\"post\" action=\"/login\"><label for=\"token\">Token</label> \
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" autofocus> \
<button type=\"submit\">Sign in</button></form></main></body></html>"
    );
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_keep_ipv6_brackets() {
        assert_eq!(host_name("localhost:7070"), "localhost");
        assert_eq!(host_name("evil.example"), "evil.example");
        assert_eq!(host_name("[::1]:7070"), "[::1]");
        assert_eq!(host_name("127.0.0.1:80"), "127.0.0.1");
    }

    fn peer(addr: &str) -> Client {
        Client::of(Some(&PeerAddr(addr.parse().unwrap())))
    }

    #[test]
    fn wrong_credentials_are_throttled_past_the_burst_for_their_client_only() {
        let access = Access::new(Some("a-long-enough-token"), &[]);
        let guesser = peer("127.0.0.2:5000");
        for _ in 0..ATTEMPT_BURST as usize {
            assert!(access.may_attempt(guesser));
            access.note_wrong(guesser);
        }
        assert!(!access.may_attempt(guesser));
        // Another port of the same address is the same client.
        assert!(!access.may_attempt(peer("127.0.0.2:5001")));
        // Another client is not locked out by the guesser.
        assert!(access.may_attempt(peer("127.0.0.1:5000")));
        let counts = access.counts();
        assert_eq!(counts.wrong_credentials, ATTEMPT_BURST as u64);
        assert_eq!(counts.throttled, 2);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix_and_mapped_ipv4_by_its_address() {
        assert_eq!(peer("[2001:db8::1]:1"), peer("[2001:db8::ffff:2]:2"));
        assert_ne!(peer("[2001:db8::1]:1"), peer("[2001:db8:0:1::1]:1"));
        assert_eq!(peer("[::ffff:10.0.0.1]:1"), peer("10.0.0.1:2"));
    }

    #[test]
    fn the_buckets_stay_bounded_and_known_clients_keep_theirs_under_many_addresses() {
        let mut limiter = AttemptLimiter::default();
        let now = Instant::now();
        let victim = peer("10.0.0.1:1");
        let reader = peer("10.0.0.3:1");
        assert!(limiter.may_attempt(victim, now));
        limiter.note_wrong(victim, now);
        // A reader who signed in and made no mistake: a full bucket, kept for its trust.
        assert!(limiter.may_attempt(reader, now));
        limiter.note_right(reader);
        // An attacker with far more addresses than buckets, each drained.
        for i in 0..(MAX_CLIENTS as u32 * 2) {
            let client = Client::V4(Ipv4Addr::from(0x0b00_0000 + i));
            for _ in 0..ATTEMPT_BURST as usize {
                limiter.note_wrong(client, now);
            }
            assert!(limiter.clients.len() <= MAX_CLIENTS);
        }
        // The overflow bucket is drained by the late addresses; the victim's is its own.
        assert!(!limiter.may_attempt(Client::V4(Ipv4Addr::new(12, 0, 0, 1)), now));
        assert!(limiter.may_attempt(victim, now));
        assert!(limiter.may_attempt(reader, now));
        // Once refilled, buckets make room for new clients again.
        let later = now + Duration::from_secs_f64(ATTEMPT_BURST / ATTEMPTS_PER_SECOND + 1.0);
        assert!(limiter.may_attempt(Client::V4(Ipv4Addr::new(12, 0, 0, 2)), later));
        assert!(limiter.clients.len() <= MAX_CLIENTS);
    }
}
