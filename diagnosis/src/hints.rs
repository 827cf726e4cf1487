//! Diagnosis hints as data: what a matched error pattern or counter anomaly usually means,
//! the next checks with exact commands, and what would rule the explanation out.
//!
//! The rules are a versioned TOML file ([`BUILTIN_RULES`], `diagnosis/rules/hints.toml`,
//! compiled into the binary) that a user extends or overrides with a file of the same format
//! (`[diagnosis] rules = "path"` in the agent's configuration): a user rule with a shipped
//! rule's id replaces it, the others are added after the shipped ones. The format is typed
//! with unknown keys refused, every regex is compiled and every placeholder checked when the
//! file is loaded, so a bad rule is an error at start that names it, never a silent miss
//! during an outage.
//!
//! A rule applies to an incident when one of its pattern regexes matches one of the
//! incident's pattern texts or one of its counter signatures matches one of the incident's
//! counter anomalies — and, when the rule names a culprit role, the incident's culprit has
//! that role (an unknown role does not exclude). A rule recognised by error text (it names
//! patterns: `connection refused`, `EOF`, `panic`, ...) needs one of them in the incident:
//! its counters only corroborate. A counter is never the error text: `Tcp AttemptFails`
//! rises with any refused dial on the node, and a caller's sockets climb whenever its callee
//! fails; seen on the Go lab, a panicking callee's caller was hinted "nothing accepts
//! connections" from its own port's socket count and a node-wide `AttemptFails`. A [`Hint`] says what matched (its evidence),
//! never that the cause is certain. Commands are filled from the incident's facts
//! ([`HintFacts`]); a fact that is unknown is shown as `<port>` and the check says it is
//! incomplete.
//!
//! Bounds: matching is `O(rules × (patterns + anomalies))` per incident; regexes are compiled
//! once, with the regex crate's linear-time engine, so a hostile pattern text cannot make a
//! rule slow.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use faultline_series::{PortSide, SeriesKey, SocketState, TrafficMetric};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::anomaly::leak::Accumulation;
use crate::anomaly::{CounterAnomaly, Direction};
use crate::text::shorten;

/// The rules shipped in the binary.
pub const BUILTIN_RULES: &str = include_str!("../rules/hints.toml");

/// The rules file format this build reads.
pub const RULES_VERSION: u32 = 1;

/// The placeholders a command may use, filled from [`HintFacts`].
pub const PLACEHOLDERS: [&str; 9] = [
    "service",
    "port",
    "peer",
    "url",
    "host",
    "pid",
    "goroutine_url",
    "pattern_id",
    "api",
];

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    /// Not valid TOML, or a key or value the format does not know.
    #[error("{origin}: {source}")]
    Format {
        /// Which file (`built-in rules` or the user's path).
        origin: String,
        /// What the parser said (it names the key and line).
        source: toml::de::Error,
    },
    /// A version this build does not read.
    #[error("{origin}: rules format version {found} is not supported (this build reads version {RULES_VERSION})")]
    Version {
        /// Which file.
        origin: String,
        /// The version it declares.
        found: u32,
    },
    /// A rule that cannot work as written.
    #[error("{origin}: rule `{rule}`: {problem}")]
    Rule {
        /// Which file.
        origin: String,
        /// The rule's id.
        rule: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The role of an incident's culprit in the failing calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CulpritRole {
    /// The callee of the failing calls: it closed, reset, refused or hung; its callers only
    /// saw the error.
    Callee,
    /// A caller that fails on its own (its name lookups, its own timeouts, its misuse of
    /// connections).
    Caller,
    /// A service that reported its own error (it logged it or recorded it on its span).
    #[serde(rename = "self")]
    SelfReported,
}

/// A family of counter series, as a rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesFamily {
    /// Sockets of one port in one state.
    PortState,
    /// Sockets of the node in one state.
    NodeState,
    /// All sockets of one port.
    PortTotal,
    /// A listening port's accept queue.
    ListenQueue,
    /// A kernel protocol counter rate.
    ProtocolRate,
    /// A `/proc/net/sockstat` field.
    Sockstat,
    /// A process's open file descriptors.
    OpenFds,
    /// A process's threads.
    Threads,
    /// A target's goroutines (tasks).
    Tasks,
    /// A service's requests per second.
    Requests,
    /// A service's failed requests per second.
    Errors,
}

/// A counter signature: which anomalies a rule recognises.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSignature {
    /// The family of the series.
    pub series: SeriesFamily,
    /// The socket state (socket series only).
    #[serde(default)]
    pub state: Option<SocketState>,
    /// The side of the port (port series only).
    #[serde(default)]
    pub side: Option<PortSide>,
    /// The protocol counter or sockstat field, matched against the last word of its name
    /// (`ListenOverflows` matches `TcpExt ListenOverflows`).
    #[serde(default)]
    pub name: Option<String>,
    /// Which way it must move; a rise when not given.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// When set, the series must have reached at least this share of its limit (an fd
    /// limit, a listen backlog): a queue at 10 % of its backlog overflows nothing.
    #[serde(default)]
    pub min_share_of_limit: Option<f64>,
    /// When true, only a count that accumulates matches: never one that levelled off within
    /// seconds of its change and held there — a population that turns over, such as the
    /// sockets of requests still in progress (see [`crate::anomaly::leak::accumulation`]).
    /// While the two are not yet told apart it matches, but explains no other rule's
    /// evidence (`explained_by`): a slow callee's CLOSE-WAIT climbs like a leak's for its
    /// first seconds.
    #[serde(default)]
    pub accumulates: bool,
}

impl CounterSignature {
    /// Whether `anomaly` has this signature: its series and direction, and its share of
    /// the series' limit when the signature asks for one (an unknown limit does not match).
    pub fn matches_anomaly(&self, anomaly: &CounterAnomaly) -> bool {
        self.matches(&anomaly.key, anomaly.direction)
            && self.min_share_of_limit.is_none_or(|share| {
                anomaly
                    .limit
                    .is_some_and(|limit| limit > 0.0 && anomaly.reached >= share * limit)
            })
    }

    /// Whether an anomaly of `key` moving in `direction` has this signature (its limit
    /// share not judged).
    pub fn matches(&self, key: &SeriesKey, direction: Direction) -> bool {
        if self.direction.unwrap_or(Direction::Rise) != direction {
            return false;
        }
        let (family, state, side, name) = match key {
            SeriesKey::PortState { side, state, .. } => {
                (SeriesFamily::PortState, Some(*state), Some(*side), None)
            }
            SeriesKey::NodeState { state } => (SeriesFamily::NodeState, Some(*state), None, None),
            SeriesKey::PortTotal { side, .. } => (SeriesFamily::PortTotal, None, Some(*side), None),
            SeriesKey::ListenQueue { .. } => (SeriesFamily::ListenQueue, None, None, None),
            SeriesKey::ProtocolRate { key } => {
                (SeriesFamily::ProtocolRate, None, None, Some(key.as_str()))
            }
            SeriesKey::Sockstat { key } => (SeriesFamily::Sockstat, None, None, Some(key.as_str())),
            SeriesKey::Process { metric, .. } => match metric {
                faultline_series::ProcessMetric::OpenFds => {
                    (SeriesFamily::OpenFds, None, None, None)
                }
                faultline_series::ProcessMetric::Threads => {
                    (SeriesFamily::Threads, None, None, None)
                }
                faultline_series::ProcessMetric::RssBytes => return false,
            },
            SeriesKey::Task { .. } => (SeriesFamily::Tasks, None, None, None),
            SeriesKey::ServiceTraffic { metric, .. } => match metric {
                TrafficMetric::Requests => (SeriesFamily::Requests, None, None, None),
                TrafficMetric::Errors => (SeriesFamily::Errors, None, None, None),
            },
            SeriesKey::OtherPortsTotal | SeriesKey::Runtime { .. } => return false,
        };
        let last_word = |n: &str| {
            n.rsplit([' ', '.', ':'])
                .next()
                .unwrap_or(n)
                .to_ascii_lowercase()
        };
        family == self.series
            && self.state.is_none_or(|s| state == Some(s))
            && self.side.is_none_or(|s| side == Some(s))
            && self
                .name
                .as_ref()
                .is_none_or(|want| name.is_some_and(|n| last_word(n) == want.to_ascii_lowercase()))
    }
}

/// How a rule is recognised.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recognition {
    /// Regexes matched case-insensitively against the incident's pattern texts. A rule
    /// that names any needs one to match: its counters then only corroborate.
    #[serde(default)]
    pub pattern: Vec<String>,
    /// Counter signatures matched against the incident's anomalies: they recognise the
    /// rule alone only when it names no pattern.
    #[serde(default)]
    pub counter: Vec<CounterSignature>,
    /// When set, the rule applies only when the incident's culprit has this role (or one
    /// of these roles); an incident whose culprit's role is unknown is not narrowed.
    #[serde(default)]
    pub culprit_role: Option<Roles>,
    /// Regexes of pattern texts that support the rule once one of its counters matched,
    /// but do not recognise it alone: the errors its mechanism produces that other
    /// mechanisms produce too (a dial that times out is what a dropped SYN looks like).
    #[serde(default)]
    pub corroborating_pattern: Vec<String>,
}

/// The culprit roles a rule applies to: one (`culprit_role = "callee"`) or several
/// (`culprit_role = ["caller", "self"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Roles {
    /// One role.
    One(CulpritRole),
    /// Any of these roles.
    Any(Vec<CulpritRole>),
}

impl Roles {
    /// Whether `role` is one of them.
    pub fn contains(&self, role: CulpritRole) -> bool {
        match self {
            Roles::One(r) => *r == role,
            Roles::Any(rs) => rs.contains(&role),
        }
    }
}

/// How strongly each kind of matched evidence supports a hint. A pattern text and a counter
/// of a specific port, process or target say what happened where; a node-wide counter moves
/// with any traffic on the node, so it supports less; a culprit role the rule asks for adds
/// to a pattern match (it is a fact about that pattern's failing calls).
const PATTERN_WEIGHT: u8 = 2;
const SPECIFIC_COUNTER_WEIGHT: u8 = 2;
const NODE_WIDE_COUNTER_WEIGHT: u8 = 1;
const ROLE_WEIGHT: u8 = 1;

/// One next check: what to look for and the exact command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTemplate {
    /// What the check shows.
    pub what: String,
    /// The command, with `{placeholders}` (see [`PLACEHOLDERS`]).
    pub command: String,
}

/// One rule as written in a rules file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintRule {
    /// Stable id (`close-wait-leak`); a user rule with a shipped id replaces it.
    pub id: String,
    /// A one-line name.
    pub title: String,
    /// How it is recognised.
    #[serde(default)]
    pub recognised_by: Recognition,
    /// Likely causes, most likely first.
    #[serde(default)]
    pub causes: Vec<String>,
    /// The next checks.
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckTemplate>,
    /// What would rule it out.
    #[serde(default)]
    pub ruled_out_by: Vec<String>,
    /// Rules whose mechanism produces this rule's evidence as a consequence (a hung callee's
    /// callers time out; a CLOSE-WAIT leak runs out of descriptors): when one of them
    /// matches the same incident, this hint is listed after it.
    #[serde(default)]
    pub explained_by: Vec<String>,
}

/// A rules file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The format version ([`RULES_VERSION`]).
    pub version: u32,
    /// The rules, in the order they are tried.
    #[serde(default, rename = "rule")]
    pub rules: Vec<HintRule>,
}

/// A rule ready to match: its regexes compiled.
#[derive(Debug, Clone)]
struct CompiledRule {
    rule: HintRule,
    patterns: Vec<Regex>,
    corroborating: Vec<Regex>,
    origin: String,
}

/// The rules in force: the shipped ones, possibly extended by a user's file.
#[derive(Debug, Clone)]
pub struct HintRules {
    rules: Vec<CompiledRule>,
    /// Which of the rules' regexes each pattern text matched, as far as already asked.
    texts: TextMatches,
}

/// The first of `regexes` that one of `texts` matches (the first such text), with that
/// text: `matched` says, for each text, which of all the rules' regexes it matches, and the
/// first of `regexes` is number `first` of them.
fn first_match<'t, 'r>(
    texts: &'t [String],
    matched: &[Arc<[bool]>],
    regexes: &'r [Regex],
    first: usize,
) -> Option<(&'t String, &'r Regex)> {
    texts.iter().zip(matched).find_map(|(text, matched)| {
        let i = (0..regexes.len()).find(|i| matched.get(first + i) == Some(&true))?;
        Some((text, &regexes[i]))
    })
}

/// Most pattern texts whose matches [`TextMatches`] remembers; past it, it starts again.
const TEXTS_REMEMBERED: usize = 1024;

/// Which of the rules' regexes (each rule's `pattern`s, then its `corroborating_pattern`s,
/// rule after rule) each pattern text matches. The diagnosis asks the rules for every
/// incident at every pass (once a second), about the same few texts: matching every rule's
/// regexes against them again was half of the incidents' build (0.5 % of the agent's CPU at
/// 1,000 lines/s + 1,000 spans/s, an incident active). A text is matched once against all,
/// when first asked about. Shared by the threads that ask (a lock held for one call); a
/// clone starts empty.
#[derive(Default)]
struct TextMatches(Mutex<HashMap<String, Arc<[bool]>>>);

impl Clone for TextMatches {
    fn clone(&self) -> TextMatches {
        TextMatches::default()
    }
}

impl std::fmt::Debug for TextMatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextMatches")
    }
}

/// What the commands are filled from: the incident's facts, each unknown when absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HintFacts {
    /// The culprit service.
    pub service: Option<String>,
    /// The port the fault shows on (the culprit's listening port, or the port of the top
    /// socket anomaly).
    pub port: Option<u16>,
    /// The callee's `host:port`, as the failing calls name it.
    pub peer: Option<String>,
    /// A URL a failing call asked for (`http://host:port/path`), so a check repeats a request
    /// that failed rather than one to `/` (which a service may answer fast with a 404).
    pub url: Option<String>,
    /// A host name the calls looked up (DNS failures) or the peer's host.
    pub host: Option<String>,
    /// The culprit's process id.
    pub pid: Option<u32>,
    /// The culprit's goroutine dump with stacks (pprof `debug=2`).
    pub goroutine_url: Option<String>,
    /// Where most of the culprit's goroutines wait, read from that dump: evidence of a rule
    /// matched by a goroutine count (not a placeholder).
    pub top_stack: Option<String>,
    /// The incident's leading pattern id.
    pub pattern_id: Option<String>,
    /// What of the callee culprit went away, in one sentence ("nothing has listened on :8082
    /// since 10:11:47 UTC; its process stock has been gone since 10:11:47 UTC"): evidence of
    /// a rule that blames a callee (not a placeholder).
    pub gone: Option<String>,
    /// The agent's own API base URL (`http://127.0.0.1:7070`).
    pub api: Option<String>,
    /// Each service's first listening port, for a check about a service other than the
    /// culprit: the demo's panic in orders raised "inventory request rate fell", and its check
    /// looked at orders' port.
    pub service_ports: Vec<(String, u16)>,
}

impl HintFacts {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "service" => self.service.clone(),
            "port" => self.port.map(|p| p.to_string()),
            "peer" => self.peer.clone(),
            "url" => self.url.clone(),
            "host" => self.host.clone(),
            "pid" => self.pid.map(|p| p.to_string()),
            "goroutine_url" => self.goroutine_url.clone(),
            "pattern_id" => self.pattern_id.clone(),
            "api" => self.api.clone(),
            _ => None,
        }
    }
}

/// What a hint is matched against.
#[derive(Debug, Clone, Copy)]
pub struct HintSubject<'a> {
    /// The incident's pattern texts (canonical templates or messages).
    pub patterns: &'a [String],
    /// The incident's counter anomalies.
    pub anomalies: &'a [CounterAnomaly],
    /// Whether each of `anomalies` (by index) accumulates (see
    /// [`crate::anomaly::leak::accumulation`]); an anomaly beyond its end is undecided.
    pub accumulating: &'a [Accumulation],
    /// A reading each of `anomalies` (by index) may add to the evidence of a hint that rests
    /// on it, after its own evidence: what its holder does (a CLOSE-WAIT whose holder has
    /// answered nothing since it began to climb, see [`crate::anomaly::leak::Answers`]).
    pub readings: &'a [Option<String>],
    /// The role of the incident's culprit, when known.
    pub culprit_role: Option<CulpritRole>,
    /// What the commands are filled from.
    pub facts: &'a HintFacts,
}

/// A check with its command filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// What it shows.
    pub what: String,
    /// The command to run.
    pub command: String,
    /// False when a fact the command needs is unknown (shown as `<port>`, ...): edit it
    /// before running.
    pub complete: bool,
}

/// A rule that matched an incident: a hint, with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hint {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's one-line name.
    pub title: String,
    /// What matched, one sentence each ("pattern `... EOF` matches /\bEOF\b/", "CLOSE-WAIT
    /// :8080 is climbing 0 → 40 ...").
    pub evidence: Vec<String>,
    /// Likely causes, most likely first: possibilities, not a verdict.
    pub causes: Vec<String>,
    /// The next checks.
    pub checks: Vec<Check>,
    /// What would rule it out.
    pub ruled_out_by: Vec<String>,
    /// Where the rule came from: `built-in` or the user's file.
    pub source: String,
    /// The counter series its evidence rests on (its counter signatures' matches), in order:
    /// the leading hint's come first in its incident's counters.
    #[serde(default)]
    pub series: Vec<SeriesKey>,
}

/// A hint with what it matched, for the incident that lists it (not part of the answer).
#[derive(Debug, Clone)]
pub struct HintMatch {
    /// The hint as shown; its counters' evidence is [`Hint::series`].
    pub hint: Hint,
    /// Whether it is recognised by error text: its counters only corroborate.
    pub by_text: bool,
}

impl HintRules {
    /// The shipped rules.
    pub fn builtin() -> Result<HintRules, HintsError> {
        let mut rules = HintRules {
            rules: Vec::new(),
            texts: TextMatches::default(),
        };
        rules.extend(BUILTIN_RULES, "built-in")?;
        Ok(rules)
    }

    /// The shipped rules extended by a user's rules file (`text`, read from `origin`).
    pub fn with_user_rules(text: &str, origin: &str) -> Result<HintRules, HintsError> {
        let mut rules = HintRules::builtin()?;
        rules.extend(text, origin)?;
        Ok(rules)
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn extend(&mut self, text: &str, origin: &str) -> Result<(), HintsError> {
        // What the texts matched was the rules' before.
        self.texts = TextMatches::default();
        let file: RulesFile = toml::from_str(text).map_err(|source| HintsError::Format {
            origin: origin.to_owned(),
            source,
        })?;
        if file.version != RULES_VERSION {
            return Err(HintsError::Version {
                origin: origin.to_owned(),
                found: file.version,
            });
        }
        let mut ids = BTreeSet::new();
        for rule in file.rules {
            let bad = |problem: String| HintsError::Rule {
                origin: origin.to_owned(),
                rule: rule.id.clone(),
                problem,
            };
            if !ids.insert(rule.id.clone()) {
                return Err(bad("the id is used twice in this file".into()));
            }
            let r = &rule.recognised_by;
            if r.pattern.is_empty() && r.counter.is_empty() {
                return Err(bad(
                    "recognised_by names no pattern and no counter: it would never match".into(),
                ));
            }
            let compile = |list: &[String]| -> Result<Vec<Regex>, HintsError> {
                list.iter()
                    .map(|p| {
                        RegexBuilder::new(p)
                            .case_insensitive(true)
                            .build()
                            .map_err(|e| bad(format!("pattern {p:?}: {e}")))
                    })
                    .collect()
            };
            let patterns = compile(&r.pattern)?;
            let corroborating = compile(&r.corroborating_pattern)?;
            if !corroborating.is_empty() && r.counter.is_empty() {
                return Err(bad(
                    "corroborating_pattern needs a counter to corroborate: use pattern".into(),
                ));
            }
            for c in &rule.checks {
                placeholders(&c.command)
                    .map_err(|e| bad(format!("command {:?}: {e}", c.command)))?;
            }
            let compiled = CompiledRule {
                rule,
                patterns,
                corroborating,
                origin: origin.to_owned(),
            };
            match self
                .rules
                .iter_mut()
                .find(|c| c.rule.id == compiled.rule.id)
            {
                Some(existing) => *existing = compiled,
                None => self.rules.push(compiled),
            }
        }
        for c in &self.rules {
            if let Some(unknown) = c
                .rule
                .explained_by
                .iter()
                .find(|id| !self.rules.iter().any(|r| &r.rule.id == *id))
            {
                return Err(HintsError::Rule {
                    origin: c.origin.clone(),
                    rule: c.rule.id.clone(),
                    problem: format!("explained_by names no rule `{unknown}`"),
                });
            }
        }
        Ok(())
    }

    /// The hints whose rules match `subject`, the best supported first: by the weight of
    /// the evidence that matched (a pattern text, a counter of a specific port or process, a
    /// node-wide counter, the culprit's role with a pattern), then a rule matched by a pattern
    /// before one matched by counters alone, then the one whose first matching counter is
    /// listed first (the incident lists its counters most related first), then file order.
    /// Last, a hint whose evidence another matching rule explains (`explained_by`) goes
    /// after that rule.
    pub fn hints_for(&self, subject: &HintSubject<'_>) -> Vec<Hint> {
        self.matches_for(subject)
            .into_iter()
            .map(|m| m.hint)
            .collect()
    }

    /// Which of the rules' regexes each of `texts` matches (see [`TextMatches`]).
    fn text_matches(&self, texts: &[String]) -> Vec<Arc<[bool]>> {
        let mut known = self.texts.0.lock().unwrap_or_else(PoisonError::into_inner);
        texts
            .iter()
            .map(|text| {
                if let Some(matched) = known.get(text) {
                    return Arc::clone(matched);
                }
                let matched: Arc<[bool]> = self
                    .rules
                    .iter()
                    .flat_map(|c| c.patterns.iter().chain(&c.corroborating))
                    .map(|re| re.is_match(text))
                    .collect();
                if known.len() >= TEXTS_REMEMBERED {
                    known.clear();
                }
                known.insert(text.clone(), Arc::clone(&matched));
                matched
            })
            .collect()
    }

    /// The hints of [`HintRules::hints_for`], each with what it matched.
    pub fn matches_for(&self, subject: &HintSubject<'_>) -> Vec<HintMatch> {
        let mut out: Vec<(Support, HintMatch)> = Vec::new();
        let texts = self.text_matches(subject.patterns);
        let first_match = |regexes, first| first_match(subject.patterns, &texts, regexes, first);
        let mut next = 0;
        for c in &self.rules {
            let (first_pattern, first_corroborating) = (next, next + c.patterns.len());
            next = first_corroborating + c.corroborating.len();
            let r = &c.rule.recognised_by;
            if let (Some(want), Some(have)) = (&r.culprit_role, subject.culprit_role) {
                if !want.contains(have) {
                    continue;
                }
            }
            let mut evidence = Vec::new();
            let mut support = Support {
                weight: 0,
                pattern: false,
                specific: false,
                decided: false,
                first_counter: usize::MAX,
            };
            let by_text = first_match(&c.patterns, first_pattern);
            // Recognised by error text: without that text, its counters say nothing.
            if by_text.is_none() && !c.patterns.is_empty() {
                continue;
            }
            if let Some((text, re)) = by_text {
                evidence.push(format!(
                    "pattern \u{201c}{}\u{201d} matches /{}/",
                    shorten(text, 160),
                    re.as_str()
                ));
                support.weight += PATTERN_WEIGHT;
                support.pattern = true;
            }
            let accumulation = |i: usize| {
                subject
                    .accumulating
                    .get(i)
                    .copied()
                    .unwrap_or(Accumulation::Undecided)
            };
            // Each matching counter, and whether it matched decidedly: by a signature that
            // asks nothing of its shape, or one that asks for an accumulating count the
            // history shows accumulating.
            let matching: Vec<(usize, &CounterAnomaly, bool)> = subject
                .anomalies
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    let fits = r.counter.iter().filter(|s| s.matches_anomaly(a));
                    let mut matched = false;
                    let mut decided = false;
                    for s in fits {
                        match (s.accumulates, accumulation(i)) {
                            (false, _) | (true, Accumulation::Accumulates) => {
                                matched = true;
                                decided = true;
                            }
                            (true, Accumulation::Undecided) => matched = true,
                            (true, Accumulation::TurnsOver) => {}
                        }
                    }
                    matched.then_some((i, a, decided))
                })
                .collect();
            support.decided = by_text.is_some() || matching.iter().any(|m| m.2);
            let counters: Vec<(usize, &CounterAnomaly)> =
                matching.iter().map(|&(i, a, _)| (i, a)).collect();
            if let Some(&(first, _)) = counters.first() {
                support.specific = counters.iter().any(|(_, a)| !a.kind.is_node_wide());
                support.weight += if support.specific {
                    SPECIFIC_COUNTER_WEIGHT
                } else {
                    NODE_WIDE_COUNTER_WEIGHT
                };
                support.first_counter = first;
                for &(i, a) in counters.iter().take(3) {
                    evidence.push(a.evidence.clone());
                    evidence.extend(subject.readings.get(i).cloned().flatten());
                }
                // A goroutine count says that they pile up; the dump says where.
                if let Some(stack) = subject.facts.top_stack.as_ref().filter(|_| {
                    counters
                        .iter()
                        .any(|(_, a)| matches!(a.key, SeriesKey::Task { .. }))
                }) {
                    evidence.push(format!("where most goroutines wait: {stack}"));
                }
                if !support.pattern {
                    if let Some((text, re)) = first_match(&c.corroborating, first_corroborating) {
                        evidence.push(format!(
                            "pattern \u{201c}{}\u{201d} matches /{}/, as this mechanism's failures do",
                            shorten(text, 160),
                            re.as_str()
                        ));
                        support.weight += PATTERN_WEIGHT;
                        support.pattern = true;
                    }
                }
            }
            // Node-wide counters alone recognise nothing: they move with every program on
            // the node. Seen on the unseen lab: listen-overflow matched a TIME-WAIT storm's
            // incident from another program's `ListenDrops`, with no error and no queue of a
            // service of the node.
            if !support.pattern && !support.specific {
                continue;
            }
            if let (Some(_), Some(role)) = (&r.culprit_role, subject.culprit_role) {
                evidence.push(format!("the culprit is the {}", role_name(role)));
                if let (CulpritRole::Callee, Some(gone)) = (role, &subject.facts.gone) {
                    evidence.push(gone.clone());
                }
                if support.pattern {
                    support.weight += ROLE_WEIGHT;
                }
            }
            // A check of a port looks where this rule's evidence is: a TIME-WAIT storm of a
            // caller shows on its callee's port, not on the caller's own listening port.
            let evidence_port = counters.iter().find_map(|(_, a)| match &a.key {
                SeriesKey::ServiceTraffic { service, .. } => subject
                    .facts
                    .service_ports
                    .iter()
                    .find(|(s, _)| s == service)
                    .map(|&(_, port)| port),
                key => key.port(),
            });
            let facts = match evidence_port {
                Some(port) if subject.facts.port != Some(port) => {
                    std::borrow::Cow::Owned(HintFacts {
                        port: Some(port),
                        ..subject.facts.clone()
                    })
                }
                _ => std::borrow::Cow::Borrowed(subject.facts),
            };
            let checks = c
                .rule
                .checks
                .iter()
                .map(|t| {
                    let (command, complete) = fill(&t.command, &facts);
                    Check {
                        what: t.what.clone(),
                        command,
                        complete,
                    }
                })
                .collect();
            out.push((
                support,
                HintMatch {
                    hint: Hint {
                        rule_id: c.rule.id.clone(),
                        title: c.rule.title.clone(),
                        evidence,
                        causes: c.rule.causes.clone(),
                        checks,
                        ruled_out_by: c.rule.ruled_out_by.clone(),
                        source: c.origin.clone(),
                        series: counters.iter().map(|(_, a)| a.key.clone()).collect(),
                    },
                    by_text: by_text.is_some(),
                },
            ));
        }
        // Stable: equal support keeps file order.
        out.sort_by(|(a, _), (b, _)| {
            b.weight
                .cmp(&a.weight)
                .then(b.pattern.cmp(&a.pattern))
                .then(a.first_counter.cmp(&b.first_counter))
        });
        self.explained_last(out)
    }

    /// The hints with each one that another listed hint explains moved after it; among those
    /// free to go next, the best supported goes first. Only a hint matched by a pattern or a
    /// counter of a specific port or process explains another (a node-wide counter moves
    /// with anything), and only once its evidence is decided: a CLOSE-WAIT that may still
    /// be a slow callee's requests in progress does not yet explain its callers' timeouts
    /// (see [`Support::decided`]). A cycle of `explained_by` (possible in user rules) is
    /// broken in the order given.
    fn explained_last(&self, mut hints: Vec<(Support, HintMatch)>) -> Vec<HintMatch> {
        let explainers = |id: &str| -> &[String] {
            self.rules
                .iter()
                .find(|r| r.rule.id == id)
                .map_or(&[], |r| r.rule.explained_by.as_slice())
        };
        let mut ordered = Vec::with_capacity(hints.len());
        while !hints.is_empty() {
            let next = hints
                .iter()
                .position(|(_, m)| {
                    !explainers(&m.hint.rule_id).iter().any(|e| {
                        hints.iter().any(|(s, o)| {
                            &o.hint.rule_id == e && (s.pattern || s.specific) && s.decided
                        })
                    })
                })
                .unwrap_or(0);
            ordered.push(hints.remove(next).1);
        }
        ordered
    }
}

/// How well a rule's evidence matched, for ordering hints.
#[derive(Debug, Clone, Copy)]
struct Support {
    /// The weights of the kinds of evidence that matched.
    weight: u8,
    /// Whether a pattern text matched.
    pattern: bool,
    /// Whether a counter of a specific port, process or target matched.
    specific: bool,
    /// Whether its own error text or a counter of the shape it asks for matched, not only a
    /// count whose shape is not told yet ([`Accumulation::Undecided`]).
    decided: bool,
    /// The position of the first matching counter in the incident's list.
    first_counter: usize,
}

fn role_name(role: CulpritRole) -> &'static str {
    match role {
        CulpritRole::Callee => "callee of the failing calls",
        CulpritRole::Caller => "caller itself",
        CulpritRole::SelfReported => "service that reported its own error",
    }
}

/// A text cut to at most `max` characters, with an ellipsis when cut.
/// One piece of a command: literal text or a placeholder.
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Slot(&'a str),
}

/// The pieces of a command; an error names an unknown or unclosed placeholder.
fn placeholders(command: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = command;
    while let Some(i) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..i]));
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push(Piece::Brace('{'));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push(Piece::Brace('}'));
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{') {
            let end = t
                .find('}')
                .ok_or_else(|| "a `{` without its `}` (write `{{` for a brace)".to_owned())?;
            let name = &t[..end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            out.push(Piece::Slot(name));
            rest = &t[end + 1..];
        } else {
            return Err("a `}` without its `{` (write `}}` for a brace)".to_owned());
        }
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The command with its placeholders filled; false when a fact was unknown.
fn fill(command: &str, facts: &HintFacts) -> (String, bool) {
    // Commands were checked when the rules were loaded.
    let Ok(pieces) = placeholders(command) else {
        return (command.to_owned(), false);
    };
    let mut out = String::new();
    let mut complete = true;
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(b) => out.push(b),
            Piece::Slot(name) => match facts.get(name) {
                Some(v) => out.push_str(&shell_safe(&v)),
                None => {
                    complete = false;
                    out.push('<');
                    out.push_str(name);
                    out.push('>');
                }
            },
        }
    }
    (out, complete)
}

/// A fact as it may appear inside a command: facts come from log text (an attacker may write
/// `host:80'; rm -rf /`), so anything outside a conservative set of URL and host characters
/// is dropped rather than quoted.
fn shell_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._:/?=&%[]@+,~".contains(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::ChangeShape;
    use faultline_series::CounterKind;

    fn anomaly(key: SeriesKey, direction: Direction, evidence: &str) -> CounterAnomaly {
        CounterAnomaly {
            label: key.label(),
            unit: key.unit().to_owned(),
            kind: key.kind(),
            key,
            shape: ChangeShape::Step,
            direction,
            before: 0.0,
            noise: 1.0,
            reached: 100.0,
            latest: 100.0,
            score: 100.0,
            changed_at_unix_ms: 0,
            active: true,
            limit: None,
            evidence: evidence.to_owned(),
            caveat: None,
        }
    }

    fn ids(hints: &[Hint]) -> Vec<&str> {
        hints.iter().map(|h| h.rule_id.as_str()).collect()
    }

    fn subject<'a>(
        patterns: &'a [String],
        anomalies: &'a [CounterAnomaly],
        role: Option<CulpritRole>,
        facts: &'a HintFacts,
    ) -> HintSubject<'a> {
        HintSubject {
            patterns,
            anomalies,
            accumulating: &[],
            readings: &[],
            culprit_role: role,
            facts,
        }
    }

    #[test]
    fn the_shipped_rules_load_and_cover_the_faults_asked_for() {
        let rules = HintRules::builtin().unwrap();
        let have: Vec<&str> = rules.rules.iter().map(|r| r.rule.id.as_str()).collect();
        for id in [
            "callee-closed",
            "connection-reset",
            "connection-refused",
            "timeout",
            "close-wait-leak",
            "time-wait-storm",
            "listen-overflow",
            "goroutine-leak",
            "too-many-open-files",
            "panic",
            "dns-failure",
            "tls-handshake",
        ] {
            assert!(have.contains(&id), "missing {id}");
        }
        for r in &rules.rules {
            assert!(!r.rule.causes.is_empty(), "{} has no cause", r.rule.id);
            assert!(!r.rule.checks.is_empty(), "{} has no check", r.rule.id);
            assert!(
                !r.rule.ruled_out_by.is_empty(),
                "{} cannot be ruled out",
                r.rule.id
            );
        }
    }

    #[test]
    fn each_rule_matches_the_texts_as_its_regexes_do_whatever_was_asked_before() {
        let rules = HintRules::builtin().unwrap();
        let texts: Vec<String> = [
            "Get \"http://127.0.0.1:<NUM>/v1/items/<NUM>\": EOF",
            "read tcp <IP>:<NUM>-><IP>:<NUM>: read: connection reset by peer",
            "dial tcp <IP>:<NUM>: connect: connection refused",
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            "accept tcp [::]:<NUM>: accept4: too many open files",
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "remote error: tls: bad certificate",
            "nothing any rule knows",
        ]
        .map(str::to_owned)
        .into();
        // Each text alone, every pair in both orders, all of them; asked again after more
        // texts than are remembered.
        let mut subjects: Vec<Vec<String>> = texts.iter().map(|t| vec![t.clone()]).collect();
        for a in &texts {
            for b in &texts {
                subjects.push(vec![a.clone(), b.clone()]);
            }
        }
        subjects.push(texts.clone());
        let others: Vec<String> = (0..TEXTS_REMEMBERED + 10)
            .map(|i| format!("error {i}: EOF"))
            .collect();
        for round in 0..3 {
            for patterns in &subjects {
                let matched = rules.text_matches(patterns);
                let mut next = 0;
                for c in &rules.rules {
                    for (regexes, first) in [
                        (&c.patterns, next),
                        (&c.corroborating, next + c.patterns.len()),
                    ] {
                        let want = patterns.iter().find_map(|t| {
                            regexes
                                .iter()
                                .find(|re| re.is_match(t))
                                .map(|re| (t, re.as_str()))
                        });
                        let have = first_match(patterns, &matched, regexes, first)
                            .map(|(t, re)| (t, re.as_str()));
                        assert_eq!(
                            have, want,
                            "rule {} (round {round}) over {patterns:?}",
                            c.rule.id
                        );
                    }
                    next += c.patterns.len() + c.corroborating.len();
                }
            }
            if round == 1 {
                rules.text_matches(&others);
            }
        }
        // Asked of a clone (which starts empty), the hints are the same.
        let facts = HintFacts::default();
        for patterns in &subjects {
            let subject = subject(patterns, &[], None, &facts);
            assert_eq!(rules.hints_for(&subject), rules.clone().hints_for(&subject));
        }
    }

    #[test]
    fn error_texts_of_go_and_hyper_find_their_rule() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        for (text, id) in [
            ("Get \"http://127.0.0.1:<NUM>/v1/items/<NUM>\": EOF", "callee-closed"),
            ("Get \"http://<IP>:<NUM>/x\": unexpected EOF", "callee-closed"),
            (
                "error sending request for url (http://127.0.0.1:<NUM>/a): client error (SendRequest): connection closed before message completed",
                "callee-closed",
            ),
            ("read tcp <IP>:<NUM>-><IP>:<NUM>: read: connection reset by peer", "connection-reset"),
            ("dial tcp <IP>:<NUM>: connect: connection refused", "connection-refused"),
            ("context deadline exceeded (Client.Timeout exceeded while awaiting headers)", "timeout"),
            ("Get \"<url>\": net/http: timeout awaiting response headers", "timeout"),
            ("accept tcp [::]:<NUM>: accept4: too many open files", "too-many-open-files"),
            ("panic: runtime error: invalid memory address or nil pointer dereference", "panic"),
            ("dial tcp: lookup <*>.invalid on <IP>:<NUM>: no such host", "dns-failure"),
            ("remote error: tls: bad certificate", "tls-handshake"),
        ] {
            let patterns = [text.to_owned()];
            let hints = rules.hints_for(&subject(&patterns, &[], None, &facts));
            assert_eq!(hints.first().map(|h| h.rule_id.as_str()), Some(id), "{text}: {:?}", ids(&hints));
        }
    }

    #[test]
    fn counter_signatures_find_their_rule_with_the_anomaly_as_evidence() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts {
            port: Some(8080),
            ..HintFacts::default()
        };
        let cases = [
            (
                SeriesKey::PortState {
                    port: 8080,
                    side: PortSide::Local,
                    state: SocketState::CloseWait,
                },
                "close-wait-leak",
            ),
            (
                SeriesKey::PortState {
                    port: 8080,
                    side: PortSide::Remote,
                    state: SocketState::TimeWait,
                },
                "time-wait-storm",
            ),
            (SeriesKey::ListenQueue { port: 8080 }, "listen-overflow"),
            (
                SeriesKey::Task {
                    target: "a".into(),
                    source: "pprof".into(),
                },
                "goroutine-leak",
            ),
        ];
        for (key, id) in cases {
            let mut a = [anomaly(key.clone(), Direction::Rise, "it rose")];
            // A queue at its backlog (the only limit the cases have).
            a[0].limit = Some(a[0].reached);
            let hints = rules.hints_for(&subject(&[], &a, None, &facts));
            assert_eq!(ids(&hints), vec![id], "{key:?}");
            assert_eq!(hints[0].evidence, vec!["it rose".to_owned()]);
        }
        // A node-wide counter alone recognises nothing: another program's listen drops
        // matched listen-overflow on the unseen lab's TIME-WAIT storm. A caller's timeouts
        // corroborate it.
        let overflows = [anomaly(
            SeriesKey::ProtocolRate {
                key: "TcpExt ListenOverflows".into(),
            },
            Direction::Rise,
            "it rose",
        )];
        assert!(ids(&rules.hints_for(&subject(&[], &overflows, None, &facts))).is_empty());
        let timeouts = ["Get \"<url>\": dial tcp <ip:port>: i/o timeout".to_owned()];
        assert!(
            ids(&rules.hints_for(&subject(&timeouts, &overflows, None, &facts)))
                .contains(&"listen-overflow")
        );
        // A queue far from its backlog overflows nothing; one of unknown backlog says nothing.
        let mut a = [anomaly(
            SeriesKey::ListenQueue { port: 8080 },
            Direction::Rise,
            "q",
        )];
        a[0].limit = Some(4096.0);
        assert!(rules.hints_for(&subject(&[], &a, None, &facts)).is_empty());
        a[0].limit = None;
        assert!(rules.hints_for(&subject(&[], &a, None, &facts)).is_empty());
        // A fall of sockets is no storm.
        let a = [anomaly(
            SeriesKey::PortState {
                port: 8080,
                side: PortSide::Remote,
                state: SocketState::TimeWait,
            },
            Direction::Fall,
            "it fell",
        )];
        assert!(rules.hints_for(&subject(&[], &a, None, &facts)).is_empty());
        let hint = &rules.hints_for(&subject(
            &[],
            &[anomaly(
                SeriesKey::PortState {
                    port: 8080,
                    side: PortSide::Local,
                    state: SocketState::CloseWait,
                },
                Direction::Rise,
                "x",
            )],
            None,
            &facts,
        ))[0];
        assert_eq!(
            hint.checks[0].command,
            "ss -tanp state close-wait '( sport = :8080 or dport = :8080 )'"
        );
        assert!(hint.checks[0].complete);
        assert!(!hint.checks[1].complete, "{}", hint.checks[1].command);
        assert!(hint.checks[1].command.contains("<goroutine_url>"));
    }

    #[test]
    fn a_check_of_a_port_looks_at_the_port_of_the_rules_own_evidence() {
        // The unseen lab (blind, 2026-12-05): a caller's TIME-WAIT storm shows on its callee's
        // port (TIME-WAIT →:23346) while the culprit (the caller) listens on :25897, where
        // nothing moved: a check of :25897 shows nothing and would "rule out" the hint.
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts {
            port: Some(25897),
            url: Some("http://127.0.0.1:23346/meta/7".into()),
            ..HintFacts::default()
        };
        let storm = [anomaly(
            SeriesKey::PortState {
                port: 23346,
                side: PortSide::Remote,
                state: SocketState::TimeWait,
            },
            Direction::Rise,
            "TIME-WAIT →:23346 rose",
        )];
        let hints = rules.hints_for(&subject(&[], &storm, Some(CulpritRole::Caller), &facts));
        assert_eq!(ids(&hints), vec!["time-wait-storm"]);
        assert_eq!(
            hints[0].checks[0].command,
            "ss -tan state time-wait '( sport = :23346 or dport = :23346 )' | wc -l"
        );
        // A rule with no counter of a port keeps the culprit's port; a request check repeats
        // a request that failed, not one to `/`.
        let patterns = ["Get \"<url>\": context deadline exceeded".to_owned()];
        let hints = rules.hints_for(&subject(&patterns, &[], Some(CulpritRole::Callee), &facts));
        assert_eq!(hints[0].rule_id, "timeout");
        let commands: Vec<&str> = hints[0].checks.iter().map(|c| c.command.as_str()).collect();
        assert!(
            commands[0].ends_with("'http://127.0.0.1:23346/meta/7'"),
            "{commands:?}"
        );
        assert!(commands[2].contains(":25897"), "{commands:?}");

        // A service's request rate is about that service's port: the demo's panic in orders
        // (listening on :33373) raised "inventory request rate fell", checked on orders' port.
        let facts = HintFacts {
            port: Some(33373),
            service_ports: vec![("orders".into(), 33373), ("inventory".into(), 43617)],
            ..HintFacts::default()
        };
        let fell = [anomaly(
            SeriesKey::ServiceTraffic {
                service: "inventory".into(),
                metric: TrafficMetric::Requests,
            },
            Direction::Fall,
            "inventory request rate fell",
        )];
        let hints = rules.hints_for(&subject(
            &[],
            &fell,
            Some(CulpritRole::SelfReported),
            &facts,
        ));
        assert_eq!(ids(&hints), vec!["traffic-drop"]);
        assert_eq!(hints[0].checks[0].command, "ss -tan '( dport = :43617 )'");
    }

    #[test]
    fn a_goroutine_leak_hint_shows_where_the_goroutines_wait() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts {
            top_stack: Some(
                "950 of 958 goroutines wait in [chan send] at main.leak.func1 (main.go:13)".into(),
            ),
            ..HintFacts::default()
        };
        let leak = [anomaly(
            SeriesKey::Task {
                target: "thumbnailer".into(),
                source: "pprof".into(),
            },
            Direction::Rise,
            "goroutines thumbnailer rose 7 → 958 in 39 s",
        )];
        let hints = rules.hints_for(&subject(&[], &leak, None, &facts));
        assert_eq!(hints[0].rule_id, "goroutine-leak");
        assert_eq!(
            hints[0].evidence,
            vec![
                "goroutines thumbnailer rose 7 → 958 in 39 s".to_owned(),
                "where most goroutines wait: 950 of 958 goroutines wait in [chan send] at \
                 main.leak.func1 (main.go:13)"
                    .to_owned()
            ]
        );
        // A rule matched by other counters does not borrow the stack.
        let storm = [anomaly(
            SeriesKey::PortState {
                port: 8080,
                side: PortSide::Remote,
                state: SocketState::TimeWait,
            },
            Direction::Rise,
            "tw",
        )];
        let hints = rules.hints_for(&subject(&[], &storm, None, &facts));
        assert_eq!(hints[0].evidence, vec!["tw".to_owned()]);
    }

    #[test]
    fn a_culprit_role_narrows_a_rule_and_an_unknown_role_does_not() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        let patterns = ["Get \"http://h:1/\": EOF".to_owned()];
        let known = rules.hints_for(&subject(&patterns, &[], Some(CulpritRole::Caller), &facts));
        assert!(!ids(&known).contains(&"callee-closed"));
        let unknown = rules.hints_for(&subject(&patterns, &[], None, &facts));
        assert!(ids(&unknown).contains(&"callee-closed"));
        let callee = rules.hints_for(&subject(&patterns, &[], Some(CulpritRole::Callee), &facts));
        assert_eq!(
            callee[0].evidence.last().unwrap(),
            "the culprit is the callee of the failing calls"
        );
    }

    /// The unseen lab's abort fault: a callee's handler aborts (Go's `http.ErrAbortHandler`),
    /// its callers see EOF, and the callee's own side of its port holds the TIME-WAIT sockets
    /// of what it closed. That matched the storm hint beside callee-closed, whose causes (a
    /// client opening a connection per call) point at the caller, not at the culprit.
    #[test]
    fn a_storm_hint_is_a_clients_and_a_closing_callee_gets_none() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        let eof = ["Get \"http://<ip:port>/render/<num>\": EOF".to_owned()];
        let own_side = [anomaly(
            SeriesKey::PortState {
                port: 8080,
                side: PortSide::Local,
                state: SocketState::TimeWait,
            },
            Direction::Rise,
            "TIME-WAIT :8080 rose",
        )];
        let callee = rules.hints_for(&subject(&eof, &own_side, Some(CulpritRole::Callee), &facts));
        assert_eq!(ids(&callee), vec!["callee-closed"]);
        // The same sockets with a caller as the culprit (keep-alives off), or no culprit
        // known yet: a storm.
        for role in [
            Some(CulpritRole::Caller),
            Some(CulpritRole::SelfReported),
            None,
        ] {
            let hints = rules.hints_for(&subject(&[], &own_side, role, &facts));
            assert_eq!(ids(&hints), vec!["time-wait-storm"], "{role:?}");
        }
        // A user rule narrowed to several roles, and a single one as before.
        let user = r#"
version = 1
[[rule]]
id = "mine"
title = "t"
[rule.recognised_by]
pattern = ['quota']
culprit_role = ["caller", "self"]

[[rule]]
id = "theirs"
title = "t"
[rule.recognised_by]
pattern = ['quota']
culprit_role = "callee"
"#;
        let rules = HintRules::with_user_rules(user, "mine.toml").unwrap();
        let quota = ["quota exceeded".to_owned()];
        for (role, want) in [
            (CulpritRole::Caller, "mine"),
            (CulpritRole::SelfReported, "mine"),
            (CulpritRole::Callee, "theirs"),
        ] {
            let hints = rules.hints_for(&subject(&quota, &[], Some(role), &facts));
            assert_eq!(ids(&hints), vec![want], "{role:?}");
        }
        let bad = user.replace("\"self\"]", "\"nobody\"]");
        assert!(HintRules::with_user_rules(&bad, "mine.toml").is_err());
    }

    #[test]
    fn a_pattern_and_a_counter_together_outrank_either_alone() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        let patterns = [
            "Get \"http://h:1/\": EOF".to_owned(),
            "accept4: too many open files".to_owned(),
        ];
        let mut a = [anomaly(
            SeriesKey::Process {
                name: "api".into(),
                metric: faultline_series::ProcessMetric::OpenFds,
            },
            Direction::Rise,
            "api open fds rose",
        )];
        a[0].limit = Some(a[0].reached);
        let hints = rules.hints_for(&subject(&patterns, &a, None, &facts));
        assert_eq!(hints[0].rule_id, "too-many-open-files");
        assert_eq!(hints[0].evidence.len(), 2);
        assert_eq!(a[0].kind, CounterKind::ProcessFds);
    }

    /// The Go lab's panic (seed 8806): the panicking callee's caller saw its own port's
    /// sockets climb and the node's `Tcp AttemptFails` rise, and was hinted "nothing accepts
    /// connections" with no `connection refused` anywhere. A rule recognised by error text
    /// needs the text; its counters only add to it.
    #[test]
    fn an_error_text_rule_needs_its_text_and_a_counter_only_corroborates() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        let rate = |name: &str| {
            anomaly(
                SeriesKey::ProtocolRate { key: name.into() },
                Direction::Rise,
                &format!("{name} rose"),
            )
        };
        let callers_port = anomaly(
            SeriesKey::PortTotal {
                port: 8080,
                side: PortSide::Local,
            },
            Direction::Rise,
            "sockets :8080 climbing",
        );
        let counters = [
            callers_port,
            rate("Tcp AttemptFails"),
            rate("Tcp EstabResets"),
            rate("Tcp OutRsts"),
        ];
        for role in [None, Some(CulpritRole::Callee), Some(CulpritRole::Caller)] {
            let hints = rules.hints_for(&subject(&[], &counters, role, &facts));
            assert!(hints.is_empty(), "{role:?}: {:?}", ids(&hints));
        }
        // With its text, the counter is part of the evidence.
        let refused = ["dial tcp 127.0.0.1:8080: connect: connection refused".to_owned()];
        let hints = rules.hints_for(&subject(
            &refused,
            &counters,
            Some(CulpritRole::Callee),
            &facts,
        ));
        assert_eq!(hints[0].rule_id, "connection-refused");
        assert!(
            hints[0]
                .evidence
                .iter()
                .any(|e| e == "Tcp AttemptFails rose"),
            "{:?}",
            hints[0].evidence
        );
        // And the panic the lab injected is hinted by its own text beside those counters.
        let panic = ["runtime error: index out of range [<num>] with length <num>".to_owned()];
        let hints = rules.hints_for(&subject(
            &panic,
            &counters,
            Some(CulpritRole::SelfReported),
            &facts,
        ));
        assert_eq!(ids(&hints), vec!["panic"]);
        // A fd counter at its limit is not "too many open files" without the error.
        let mut fds = anomaly(
            SeriesKey::Process {
                name: "api".into(),
                metric: faultline_series::ProcessMetric::OpenFds,
            },
            Direction::Rise,
            "fds",
        );
        fds.limit = Some(fds.reached);
        assert!(rules
            .hints_for(&subject(&[], &[fds], None, &facts))
            .is_empty());
    }

    type LabCase<'a> = (
        &'a str,
        Vec<String>,
        Vec<CounterAnomaly>,
        Option<CulpritRole>,
        &'a str,
    );

    /// The Go lab's faults as the incidents saw them (counters listed most related first,
    /// node-wide last): the hint shown first is the fault's own, chosen by the evidence.
    #[test]
    fn each_lab_fault_is_hinted_by_its_own_evidence() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts::default();
        let port = |state| SeriesKey::PortState {
            port: 8080,
            side: PortSide::Local,
            state,
        };
        let rate = |name: &str| SeriesKey::ProtocolRate { key: name.into() };
        let fds = SeriesKey::Process {
            name: "orders".into(),
            metric: faultline_series::ProcessMetric::OpenFds,
        };
        let tasks = SeriesKey::Task {
            target: "orders".into(),
            source: "http".into(),
        };
        let rise = |key: SeriesKey, limit: Option<f64>| {
            let mut a = anomaly(key.clone(), Direction::Rise, &key.label());
            a.limit = limit;
            a
        };
        let timeout = "Get \"<url>\": context deadline exceeded".to_owned();
        let dial = "Get \"<url>\": dial tcp <ip:port>: i/o timeout (Client.Timeout exceeded while awaiting headers)".to_owned();
        let node_close_wait = SeriesKey::NodeState {
            state: SocketState::CloseWait,
        };
        // (fault, pattern texts, counters, culprit role, the hint wanted first)
        let cases: Vec<LabCase<'_>> = vec![
            (
                // The callee stalls: its fds (far from the limit) and goroutines rise with
                // the stuck requests; resets and CLOSE-WAIT move node-wide.
                "slow",
                vec![timeout.clone()],
                vec![
                    rise(fds.clone(), Some(20_000.0)),
                    rise(tasks.clone(), None),
                    rise(rate("Tcp OutRsts"), None),
                    rise(rate("Tcp EstabResets"), None),
                    rise(node_close_wait.clone(), None),
                ],
                Some(CulpritRole::Callee),
                "timeout",
            ),
            (
                // The same with CLOSE-WAIT on the callee's port: its callers closed the
                // connections it is still stalling on (it answers late, then closes).
                "slow, CLOSE-WAIT on its port",
                vec![timeout.clone()],
                vec![
                    rise(port(SocketState::CloseWait), None),
                    rise(fds.clone(), Some(20_000.0)),
                    rise(tasks.clone(), None),
                    rise(rate("Tcp EstabResets"), None),
                ],
                Some(CulpritRole::Callee),
                "timeout",
            ),
            (
                // The callee never answers: CLOSE-WAIT on its port, its fds at the limit.
                "close-wait",
                vec![
                    timeout.clone(),
                    "http: Accept error: accept tcp <ip:port>: accept4: too many open files".into(),
                ],
                vec![
                    rise(port(SocketState::CloseWait), None),
                    rise(SeriesKey::ListenQueue { port: 8080 }, Some(4096.0)),
                    rise(fds.clone(), Some(100.0)),
                    rise(tasks.clone(), None),
                    rise(node_close_wait.clone(), None),
                ],
                Some(CulpritRole::Callee),
                "close-wait-leak",
            ),
            (
                // The callee stops accepting: its queue at the backlog, connections waiting
                // there closed by their callers (CLOSE-WAIT), overflows node-wide.
                "listen-overflow",
                vec![timeout.clone(), dial.clone()],
                vec![
                    rise(port(SocketState::CloseWait), None),
                    rise(SeriesKey::ListenQueue { port: 8080 }, Some(100.0)),
                    rise(rate("TcpExt ListenOverflows"), None),
                    rise(
                        SeriesKey::Sockstat {
                            key: "TCP tw".into(),
                        },
                        None,
                    ),
                ],
                Some(CulpritRole::Callee),
                "listen-overflow",
            ),
            (
                // The same with the accept queue's series not judged (too young): only the
                // node's overflow counters move, and the callers' timeouts corroborate them.
                "listen-overflow, node-wide counters only",
                vec![timeout.clone(), dial.clone()],
                vec![
                    rise(rate("TcpExt ListenDrops"), None),
                    rise(rate("TcpExt ListenOverflows"), None),
                    rise(rate("Tcp RetransSegs"), None),
                ],
                Some(CulpritRole::Callee),
                "listen-overflow",
            ),
            (
                // A caller's lookups fail; the edge's port moves with the failing requests.
                "dns",
                vec!["Get \"<url>\": dial tcp: lookup <id> on <ip:port>: no such host".into()],
                vec![rise(port(SocketState::TimeWait), None)],
                Some(CulpritRole::Caller),
                "dns-failure",
            ),
            (
                // A new connection per call: TIME-WAIT on the callee's port, a little
                // CLOSE-WAIT node-wide.
                "time-wait",
                Vec::new(),
                vec![
                    rise(port(SocketState::TimeWait), None),
                    rise(rate("Tcp ActiveOpens"), None),
                    rise(node_close_wait.clone(), None),
                ],
                Some(CulpritRole::Caller),
                "time-wait-storm",
            ),
            (
                "goroutine-leak",
                Vec::new(),
                vec![rise(tasks.clone(), None), rise(node_close_wait, None)],
                None,
                "goroutine-leak",
            ),
        ];
        for (fault, patterns, anomalies, role, want) in cases {
            let hints = rules.hints_for(&subject(&patterns, &anomalies, role, &facts));
            assert_eq!(
                hints.first().map(|h| h.rule_id.as_str()),
                Some(want),
                "{fault}: {:?}",
                ids(&hints)
            );
        }
    }

    /// The demo's close-wait: its callee holds every connection it accepts, unread and
    /// unclosed; its callers time out (their only error text) and close, and CLOSE-WAIT
    /// climbs on the callee's port. The fault is the leak, the timeouts are how the callers
    /// see it: once the count is seen to accumulate, the leak leads (before, "Calls time
    /// out" led its incident and the leak came second). While it may still be a slow
    /// callee's requests in progress (their CLOSE-WAIT climbs alike for a request's time),
    /// the timeout leads; once it has levelled and held, it is no leak at all.
    #[test]
    fn a_callee_s_close_wait_leads_its_callers_timeouts_once_it_accumulates() {
        let rules = HintRules::builtin().unwrap();
        let facts = HintFacts {
            port: Some(8080),
            ..HintFacts::default()
        };
        let timeout = ["Get \"<url>\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned()];
        let counters = [
            anomaly(
                SeriesKey::PortState {
                    port: 8080,
                    side: PortSide::Local,
                    state: SocketState::CloseWait,
                },
                Direction::Rise,
                "CLOSE-WAIT :8080 is climbing",
            ),
            anomaly(
                SeriesKey::Task {
                    target: "inventory".into(),
                    source: "pprof".into(),
                },
                Direction::Rise,
                "goroutines inventory rose",
            ),
        ];
        let hints_when = |close_wait: Accumulation| {
            let accumulating = [close_wait, Accumulation::Undecided];
            ids(&rules.hints_for(&HintSubject {
                accumulating: &accumulating,
                ..subject(&timeout, &counters, Some(CulpritRole::Callee), &facts)
            }))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        };
        let leak = hints_when(Accumulation::Accumulates);
        assert_eq!(&leak[..2], ["close-wait-leak", "timeout"], "{leak:?}");
        let early = hints_when(Accumulation::Undecided);
        assert_eq!(&early[..2], ["timeout", "close-wait-leak"], "{early:?}");
        let slow = hints_when(Accumulation::TurnsOver);
        assert_eq!(slow[0], "timeout", "{slow:?}");
        assert!(!slow.iter().any(|h| h == "close-wait-leak"), "{slow:?}");
    }

    #[test]
    fn explained_by_must_name_a_rule() {
        let user = r#"
version = 1
[[rule]]
id = "mine"
title = "t"
explained_by = ["no-such-rule"]
[rule.recognised_by]
pattern = ['x']
"#;
        let err = HintRules::with_user_rules(user, "mine.toml").unwrap_err();
        assert!(err.to_string().contains("no-such-rule"), "{err}");
    }

    #[test]
    fn user_rules_replace_and_extend_the_shipped_ones() {
        let user = r#"
version = 1
[[rule]]
id = "timeout"
title = "Our proxy's 2 s budget"
causes = ["the proxy"]
ruled_out_by = ["no proxy"]
[rule.recognised_by]
pattern = ['deadline']
[[rule.check]]
what = "proxy stats"
command = "curl -s 'http://{peer}/stats?x={{y}}'"

[[rule]]
id = "quota"
title = "Quota exceeded"
[rule.recognised_by]
pattern = ['quota exceeded']
"#;
        let rules = HintRules::with_user_rules(user, "/etc/faultline/hints.toml").unwrap();
        assert_eq!(rules.len(), HintRules::builtin().unwrap().len() + 1);
        let facts = HintFacts {
            peer: Some("10.0.0.1:9000".into()),
            ..HintFacts::default()
        };
        let patterns = ["context deadline exceeded".to_owned()];
        let hints = rules.hints_for(&subject(&patterns, &[], None, &facts));
        assert_eq!(hints[0].title, "Our proxy's 2 s budget");
        assert_eq!(hints[0].source, "/etc/faultline/hints.toml");
        assert_eq!(
            hints[0].checks[0].command,
            "curl -s 'http://10.0.0.1:9000/stats?x={y}'"
        );
    }

    #[test]
    fn bad_rules_files_are_refused_naming_what_is_wrong() {
        let cases = [
            ("version = 2", "version 2 is not supported"),
            ("version = 1\n[[rule]]\nid = \"a\"\ntitle = \"t\"\ncolour = \"red\"", "colour"),
            (
                "version = 1\n[[rule]]\nid = \"a\"\ntitle = \"t\"\n[rule.recognised_by]\npattern = ['(']",
                "rule `a`: pattern \"(\"",
            ),
            (
                "version = 1\n[[rule]]\nid = \"a\"\ntitle = \"t\"\n[rule.recognised_by]\npattern = ['x']\n[[rule.check]]\nwhat = \"w\"\ncommand = \"ss {prot}\"",
                "unknown placeholder {prot}",
            ),
            ("version = 1\n[[rule]]\nid = \"a\"\ntitle = \"t\"", "would never match"),
            (
                "version = 1\n[[rule]]\nid = \"a\"\ntitle = \"t\"\n[rule.recognised_by]\ncounter = [{ series = \"sockets\" }]",
                "sockets",
            ),
        ];
        for (text, want) in cases {
            let err = HintRules::with_user_rules(text, "mine.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("mine.toml"), "{err}");
            assert!(err.contains(want), "{want:?} not in {err}");
        }
    }

    #[test]
    fn facts_from_logs_cannot_break_out_of_a_command() {
        let facts = HintFacts {
            host: Some("x.invalid'; rm -rf / #".into()),
            ..HintFacts::default()
        };
        let (cmd, complete) = fill("getent hosts '{host}'", &facts);
        assert!(complete);
        assert_eq!(cmd, "getent hosts 'x.invalidrm-rf/'");
    }

    #[test]
    fn no_shipped_rule_names_a_port_or_a_service() {
        // Rules describe kinds of faults; a number of four digits or more in a command or a
        // regex would be a port some deployment chose (errno values and `head -100` are not).
        for line in BUILTIN_RULES
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
        {
            let digits = line
                .split(|c: char| !c.is_ascii_digit())
                .filter(|d| d.len() >= 4)
                .collect::<Vec<_>>();
            assert!(digits.is_empty(), "a number in a rule: {line}");
        }
    }
}
