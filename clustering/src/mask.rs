//! Masking: the variable parts of a message become `<*>`, the rest is its *shape*.
//!
//! One pass over the message's whitespace-separated tokens, no regular expressions and no
//! per-data-set settings. A token is variable when its core (the token without surrounding
//! brackets, quotes and trailing punctuation) holds a digit (numbers, IPv4/IPv6 with ports,
//! `host:port`, hex and `0x..`, UUIDs, trace/span ids, durations such as `1.5s` or `3m0s`,
//! sizes such as `12KB`, dates and times), is a URL (`scheme://`), an absolute path with at
//! least two `/`, an e-mail-like `a@b.c`, or an empty bracket pair (`()`, `[]`, `""`). In
//! `key=value` tokens only the value is masked, and only when it is variable itself: a
//! constant value such as `user=root` stays part of the shape and is left to the template
//! miner, which generalises it when many values show up there. Month and weekday names next to
//! a variable token belong to a time stamp and are masked with it; a unit word right after a
//! variable number (`5.2 KB`, `200 ms`) is absorbed into it; consecutive `<*>` collapse into
//! one, so that variable-length values (time stamps) give one shape.
//!
//! The masked values are not thrown away: [`MaskedLine::params`] holds their byte ranges in
//! the original message, shown to users as a template's example parameter values.

/// The placeholder of a masked value.
pub const WILDCARD: &str = "<*>";

const LEADING: &[u8] = b"([{\"'<";
const TRAILING: &[u8] = b")]}\"',;:.>";

/// A message after masking: its shape and where its masked values were.
///
/// Reused from message to message so that masking does not allocate once the buffers have
/// grown to the size of the longest message.
#[derive(Debug, Default, Clone)]
pub struct MaskedLine {
    /// The shape: masked tokens joined by one space.
    pub text: String,
    /// Number of tokens of the shape.
    pub tokens: usize,
    /// Byte ranges, in the original message, of the masked values (in order).
    pub params: Vec<(usize, usize)>,
    scratch: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Constant,
    /// The whole core is variable.
    Variable,
    /// `key=value` with a variable value starting at this offset of the token.
    Value(usize),
    /// A unit word absorbed by the variable before it.
    Absorbed,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    pre: usize,
    suf: usize,
    kind: Kind,
    /// The core is 1 to 5 ASCII letters: a possible month, weekday or unit name.
    short_word: bool,
}

const LEAD: u8 = 1;
const TRAIL: u8 = 2;
const DIGIT: u8 = 4;
const SPECIAL: u8 = 8;
const ALPHA: u8 = 16;

/// Byte classes, so that one pass over a token decides the common cases.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_digit() {
            c |= DIGIT;
        }
        if b.is_ascii_alphabetic() {
            c |= ALPHA;
        }
        if matches!(b, b'=' | b'@' | b'/' | b':') {
            c |= SPECIAL;
        }
        let mut k = 0;
        while k < LEADING.len() {
            if LEADING[k] == b {
                c |= LEAD;
            }
            k += 1;
        }
        k = 0;
        while k < TRAILING.len() {
            if TRAILING[k] == b {
                c |= TRAIL;
            }
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl MaskedLine {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Masks `message` into this buffer (replacing what was there).
    pub fn mask(&mut self, message: &str) {
        self.text.clear();
        self.params.clear();
        self.tokens = 0;
        let mut toks = std::mem::take(&mut self.scratch);
        toks.clear();
        let bytes = message.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if start < i {
                toks.push(classify(bytes, start, i));
            }
        }
        // Month and weekday names touching a variable are part of a time stamp. Two passes
        // reach `Sat Jun 25 09:20:24`, where `Sat` touches `Jun` only.
        for _ in 0..2 {
            for k in 0..toks.len() {
                if toks[k].short_word
                    && toks[k].kind == Kind::Constant
                    && is_calendar_word(&bytes[toks[k].start..toks[k].end])
                    && ((k + 1 < toks.len() && toks[k + 1].kind == Kind::Variable)
                        || (k > 0 && toks[k - 1].kind == Kind::Variable))
                {
                    toks[k].kind = Kind::Variable;
                    toks[k].pre = 0;
                    toks[k].suf = 0;
                }
            }
        }
        for k in 1..toks.len() {
            if toks[k].short_word
                && toks[k].kind == Kind::Constant
                && matches!(toks[k - 1].kind, Kind::Variable | Kind::Value(_))
                && is_unit(&bytes[toks[k].start..toks[k].end])
            {
                toks[k].kind = Kind::Absorbed;
            }
        }
        let mut last_bare_wildcard = false;
        for t in &toks {
            let tok = &message[t.start..t.end];
            match t.kind {
                Kind::Absorbed => {
                    if let Some(last) = self.params.last_mut() {
                        last.1 = t.end;
                    }
                    continue;
                }
                Kind::Constant => {
                    self.push_token(tok);
                    last_bare_wildcard = false;
                }
                Kind::Variable => {
                    let bare = t.pre == 0 && t.suf == 0;
                    if bare && last_bare_wildcard {
                        if let Some(last) = self.params.last_mut() {
                            last.1 = t.end;
                        }
                        continue;
                    }
                    self.params.push((t.start + t.pre, t.end - t.suf));
                    self.begin_token();
                    self.text.push_str(&tok[..t.pre]);
                    self.text.push_str(WILDCARD);
                    self.text.push_str(&tok[tok.len() - t.suf..]);
                    last_bare_wildcard = bare;
                }
                Kind::Value(at) => {
                    self.params.push((t.start + at, t.end - t.suf));
                    self.begin_token();
                    self.text.push_str(&tok[..at]);
                    self.text.push_str(WILDCARD);
                    self.text.push_str(&tok[tok.len() - t.suf..]);
                    last_bare_wildcard = false;
                }
            }
        }
        self.scratch = toks;
    }

    fn begin_token(&mut self) {
        if self.tokens > 0 {
            self.text.push(' ');
        }
        self.tokens += 1;
    }

    fn push_token(&mut self, tok: &str) {
        self.begin_token();
        self.text.push_str(tok);
    }
}

/// Masks `message` and returns its shape (convenience for tests and cold paths).
pub fn mask(message: &str) -> String {
    let mut line = MaskedLine::new();
    line.mask(message);
    line.text
}

fn classify(bytes: &[u8], start: usize, end: usize) -> Token {
    let word = &bytes[start..end];
    let mut pre = 0;
    while pre < word.len() && CLASS[word[pre] as usize] & LEAD != 0 {
        pre += 1;
    }
    let mut suf = 0;
    while suf < word.len() - pre && CLASS[word[word.len() - 1 - suf] as usize] & TRAIL != 0 {
        suf += 1;
    }
    let core = &word[pre..word.len() - suf];
    let mut classes = 0u8;
    let mut all_alpha = true;
    for &b in core {
        let c = CLASS[b as usize];
        classes |= c;
        all_alpha &= c & ALPHA != 0;
    }
    let mut token = Token {
        start,
        end,
        pre,
        suf,
        kind: Kind::Constant,
        short_word: all_alpha && !core.is_empty() && core.len() <= 5,
    };
    // The common cases, decided by the byte classes alone.
    if classes & SPECIAL == 0 && !core.is_empty() {
        if classes & DIGIT != 0 {
            token.kind = Kind::Variable;
        }
        return token;
    }
    if core.is_empty() {
        // `()`, `[]`, `""`: an empty value where other messages have one.
        if pre > 0 && suf > 0 {
            token.kind = Kind::Variable;
        }
        return token;
    }
    if is_location(core) {
        token.kind = Kind::Variable;
        return token;
    }
    if let Some(eq) = key_value_split(core) {
        let value = strip(&core[eq + 1..]);
        if is_variable(value) {
            token.kind = Kind::Value(pre + eq + 1);
        }
        return token;
    }
    if is_variable(core) {
        token.kind = Kind::Variable;
    }
    token
}

/// The `=` of a `key=value` token whose key is an identifier and whose value is not empty.
pub(crate) fn key_value_split(core: &[u8]) -> Option<usize> {
    let eq = core.iter().position(|&b| b == b'=')?;
    if eq == 0 || eq + 1 >= core.len() {
        return None;
    }
    core[..eq]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .then_some(eq)
}

/// `word` without its leading brackets/quotes and trailing punctuation.
pub(crate) fn strip(word: &[u8]) -> &[u8] {
    let mut a = 0;
    while a < word.len() && LEADING.contains(&word[a]) {
        a += 1;
    }
    let mut b = word.len();
    while b > a && TRAILING.contains(&word[b - 1]) {
        b -= 1;
    }
    &word[a..b]
}

fn is_location(core: &[u8]) -> bool {
    contains(core, b"://") || (core[0] == b'/' && core.iter().filter(|&&b| b == b'/').count() >= 2)
}

fn is_variable(core: &[u8]) -> bool {
    if core.is_empty() {
        return false;
    }
    core.iter().any(u8::is_ascii_digit)
        || is_location(core)
        || (core.contains(&b'@') && core.contains(&b'.'))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_calendar_word(word: &[u8]) -> bool {
    let w = strip(word);
    if w.len() != 3 {
        return false;
    }
    const NAMES: [&[u8; 3]; 19] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec", b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun",
    ];
    let lower = [
        w[0].to_ascii_lowercase(),
        w[1].to_ascii_lowercase(),
        w[2].to_ascii_lowercase(),
    ];
    NAMES.iter().any(|n| **n == lower)
}

fn is_unit(word: &[u8]) -> bool {
    let w = strip(word);
    if w.is_empty() || w.len() > 5 {
        return false;
    }
    const UNITS: [&[u8]; 15] = [
        b"b", b"kb", b"mb", b"gb", b"tb", b"kib", b"mib", b"gib", b"ms", b"us", b"ns", b"s",
        b"sec", b"secs", b"bytes",
    ];
    let mut lower = [0u8; 5];
    for (d, s) in lower.iter_mut().zip(w) {
        *d = s.to_ascii_lowercase();
    }
    UNITS.contains(&&lower[..w.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_keep_their_words_and_lose_their_addresses() {
        assert_eq!(
            mask("read tcp 127.0.0.1:34252->127.0.0.1:9200: read: connection reset by peer"),
            "read tcp <*>: read: connection reset by peer"
        );
        assert_eq!(
            mask("dial tcp [::1]:8080: connect: connection refused"),
            "dial tcp [<*>: connect: connection refused"
        );
    }

    #[test]
    fn key_values_mask_only_variable_values() {
        assert_eq!(
            mask("logname= uid=0 euid=0 tty=NODEVssh rhost=10.0.0.1 user=root"),
            "logname= uid=<*> euid=<*> tty=NODEVssh rhost=<*> user=root"
        );
    }

    #[test]
    fn time_stamps_sizes_and_durations_are_one_value() {
        assert_eq!(
            mask("connection from 1.2.3.4 () at Sat Jul  9 12:16:49 2005"),
            "connection from <*> (<*>) at <*>"
        );
        assert_eq!(
            mask("stored (estimated size 5.2 KB, free 317.1 KB)"),
            "stored (estimated size <*> free <*>"
        );
        assert_eq!(mask("took 1.5s then 200ms"), "took <*> then <*>");
    }

    #[test]
    fn urls_paths_uuids_and_mail_are_masked() {
        let m = mask("GET https://a.b/c for /var/lib/x id 17288ea8-cbf4-4f0e-94fe-853fd2735f29 by bob@ex.com");
        assert_eq!(m, "GET <*> for <*> id <*> by <*>");
    }

    #[test]
    fn params_point_at_the_original_values() {
        let msg = "Took 1.00 seconds at port 8080";
        let mut line = MaskedLine::new();
        line.mask(msg);
        let values: Vec<&str> = line.params.iter().map(|&(a, b)| &msg[a..b]).collect();
        assert_eq!(values, ["1.00", "8080"]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for msg in [
            "",
            " ",
            "=",
            "((((",
            "a=",
            "=b",
            "\u{1F600}=1 é:2 ",
            "\0\0\0",
            "'",
            "[]",
        ] {
            let _ = mask(msg);
        }
    }
}
