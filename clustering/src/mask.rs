//! Masking: the variable parts of a message become `<*>`, the rest is its *shape*.
//!
//! One pass over the message's whitespace-separated tokens, no regular expressions and no
//! per-data-set settings. Every rule below is a property of how programs print values, not
//! of one system's logs:
//!
//! * A token's *core* is the token without surrounding brackets, quotes and trailing
//!   punctuation. A core that is one value is masked whole, its brackets and punctuation
//!   kept: a value holds a digit (numbers, IPv4/IPv6 with ports, `host:port`, hex and `0x..`,
//!   UUIDs, trace ids, durations `1.5s`/`3m0s`, sizes `12KB`, dates and times), or is a URL
//!   (`scheme://`), an absolute path with at least two `/`, or an e-mail-like `a@b.c`. Programs
//!   print numbers with digits; words a human wrote into a format string rarely hold one.
//! * A core that holds brackets, quotes, commas or `=` inside (markup, JSON, `f(1)`,
//!   `a=1,b=2`) is not one value: it is cut at those characters and only the pieces that are
//!   values are masked. The masker never replaces part of a word together with its
//!   punctuation: `</script><script>alert(1)</script>` keeps every tag and becomes
//!   `</script><script>alert(<*>)</script>`.
//! * In `key=value` tokens only the value is masked, and only when it is a value itself: a
//!   constant value such as `user=root` stays part of the shape and is left to the template
//!   miner, which generalises it when many values show up there.
//! * Month and weekday names next to a variable token belong to a time stamp and are masked
//!   with it; a unit word right after a number (`5.2 KB`, `200 ms`) is absorbed into it (its
//!   punctuation stays); consecutive bare `<*>` collapse into one, so that variable-length
//!   values (time stamps) give one shape — except when that would leave nothing but one
//!   placeholder for a message of several tokens: a line is never swallowed whole.
//!
//! Each masked value also gets a [`ParamKind`] (`<ip:port>`, `<duration>`, `<uuid>`, ...)
//! for the names shown to people. The kinds are kept beside the shape, never in it: ids hash
//! the shape with plain `<*>` (DESIGN decision 1), so a better display never changes an id.
//!
//! The masked values are not thrown away: [`MaskedLine::params`] holds their byte ranges in
//! the original message, shown to users as a template's example parameter values.

use serde::{Deserialize, Serialize};

/// The placeholder of a masked value in a shape (the canonical, hashed form).
pub const WILDCARD: &str = "<*>";

const LEADING: &[u8] = b"([{\"'<";
const TRAILING: &[u8] = b")]}\"',;:.>";

/// What kind of value a placeholder stands for: shown in display names, never hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamKind {
    /// Anything (mixed values, or a word the template miner generalised).
    Any,
    /// A number (`42`, `-1.5`, `1,024`).
    Num,
    /// Hexadecimal digits (`0x1f`, trace ids, hashes).
    Hex,
    /// Letters and digits mixed (`blk_123`, `user42`).
    Id,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An IP address with a port (`10.0.0.1:80`, `[::1]:8080`).
    IpPort,
    /// A host name with a port (`db-1:5432`).
    HostPort,
    /// A UUID.
    Uuid,
    /// A duration (`1.5s`, `3m0s`, `200 ms`).
    Duration,
    /// A size (`12KB`, `5.2 MB`).
    Size,
    /// A date, a time or a time stamp.
    Time,
    /// A URL.
    Url,
    /// An absolute path.
    Path,
    /// An e-mail address.
    Email,
}

impl ParamKind {
    /// The typed placeholder shown to people (`<ip:port>`, `<duration>`, ...).
    pub fn placeholder(self) -> &'static str {
        match self {
            ParamKind::Any => WILDCARD,
            ParamKind::Num => "<num>",
            ParamKind::Hex => "<hex>",
            ParamKind::Id => "<id>",
            ParamKind::Ip => "<ip>",
            ParamKind::IpPort => "<ip:port>",
            ParamKind::HostPort => "<host:port>",
            ParamKind::Uuid => "<uuid>",
            ParamKind::Duration => "<duration>",
            ParamKind::Size => "<size>",
            ParamKind::Time => "<time>",
            ParamKind::Url => "<url>",
            ParamKind::Path => "<path>",
            ParamKind::Email => "<email>",
        }
    }

    /// One character per kind, for compact storage of a shape's kinds.
    pub fn code(self) -> char {
        match self {
            ParamKind::Any => '*',
            ParamKind::Num => 'n',
            ParamKind::Hex => 'x',
            ParamKind::Id => 'i',
            ParamKind::Ip => 'a',
            ParamKind::IpPort => 'p',
            ParamKind::HostPort => 'h',
            ParamKind::Uuid => 'u',
            ParamKind::Duration => 'd',
            ParamKind::Size => 's',
            ParamKind::Time => 't',
            ParamKind::Url => 'l',
            ParamKind::Path => 'f',
            ParamKind::Email => 'e',
        }
    }

    /// The kind of a [`code`](Self::code); unknown codes are [`ParamKind::Any`].
    pub fn from_code(c: char) -> Self {
        match c {
            'n' => ParamKind::Num,
            'x' => ParamKind::Hex,
            'i' => ParamKind::Id,
            'a' => ParamKind::Ip,
            'p' => ParamKind::IpPort,
            'h' => ParamKind::HostPort,
            'u' => ParamKind::Uuid,
            'd' => ParamKind::Duration,
            's' => ParamKind::Size,
            't' => ParamKind::Time,
            'l' => ParamKind::Url,
            'f' => ParamKind::Path,
            'e' => ParamKind::Email,
            _ => ParamKind::Any,
        }
    }

    /// The kind of one value made of two adjacent ones (collapsed placeholders).
    fn join(self, other: ParamKind) -> ParamKind {
        if self == other {
            self
        } else if self == ParamKind::Time || other == ParamKind::Time {
            ParamKind::Time
        } else {
            ParamKind::Any
        }
    }
}

/// A shape with its `<*>` replaced, in order, by the typed placeholders of `kinds` (a
/// missing kind stays `<*>`): the form shown to people.
pub fn display(shape: &str, kinds: &[ParamKind]) -> String {
    let mut out = String::with_capacity(shape.len() + 8 * kinds.len());
    let mut kinds = kinds.iter();
    let mut rest = shape;
    while let Some(at) = rest.find(WILDCARD) {
        out.push_str(&rest[..at]);
        out.push_str(kinds.next().map_or(WILDCARD, |k| k.placeholder()));
        rest = &rest[at + WILDCARD.len()..];
    }
    out.push_str(rest);
    out
}

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
    /// The kind of each masked value (parallel to `params`; all [`ParamKind::Any`] for a
    /// buffer made by [`shapes_only`](Self::shapes_only)).
    pub kinds: Vec<ParamKind>,
    scratch: Vec<Token>,
    untyped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Constant,
    /// The whole core (or, from `pre`, the bracketed value) is one value.
    Variable(ParamKind),
    /// `key=value` with a variable value starting at this offset of the token.
    Value(usize, ParamKind),
    /// Brackets, quotes or `=` inside: values are masked piece by piece.
    Pieces,
    /// A unit word absorbed by the number before it.
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
/// Characters that end a value inside a token: brackets, quotes, separators, `=`.
const HARD: u8 = 32;

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
        if matches!(
            b,
            b'(' | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'<'
                | b'>'
                | b'"'
                | b'\''
                | b','
                | b';'
                | b'|'
                | b'='
        ) {
            c |= HARD;
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

    /// An empty buffer that does not tell the kinds of values apart (every kind is
    /// [`ParamKind::Any`]): the same shapes, for callers that show no names (batch mode),
    /// without the extra look at every value.
    pub fn shapes_only() -> Self {
        MaskedLine {
            untyped: true,
            ..Self::default()
        }
    }

    /// Masks `message` into this buffer (replacing what was there).
    pub fn mask(&mut self, message: &str) {
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
                toks.push(classify(bytes, start, i, !self.untyped));
            }
        }
        // Month and weekday names touching a variable are part of a time stamp. Two passes
        // reach `Sat Jun 25 09:20:24`, where `Sat` touches `Jun` only.
        for _ in 0..2 {
            for k in 0..toks.len() {
                if toks[k].short_word
                    && toks[k].kind == Kind::Constant
                    && is_calendar_word(&bytes[toks[k].start..toks[k].end])
                    && ((k + 1 < toks.len() && matches!(toks[k + 1].kind, Kind::Variable(_)))
                        || (k > 0 && matches!(toks[k - 1].kind, Kind::Variable(_))))
                {
                    toks[k].kind = Kind::Variable(ParamKind::Time);
                    toks[k].pre = 0;
                    toks[k].suf = 0;
                }
            }
        }
        for k in 1..toks.len() {
            if toks[k].short_word
                && toks[k].kind == Kind::Constant
                && toks[k].pre == 0
                && matches!(toks[k - 1].kind, Kind::Variable(_) | Kind::Value(..))
            {
                if let Some(unit) = unit_word_kind(&bytes[toks[k].start..toks[k].end]) {
                    toks[k].kind = Kind::Absorbed;
                    toks[k - 1].kind = match toks[k - 1].kind {
                        Kind::Value(at, ParamKind::Num) => Kind::Value(at, unit),
                        Kind::Variable(ParamKind::Num) => Kind::Variable(unit),
                        other => other,
                    };
                }
            }
        }
        self.emit(message, &toks, true);
        if self.tokens == 1 && toks.len() > 1 && self.text == WILDCARD {
            // Nothing but values: keep one placeholder per token rather than one for all.
            self.emit(message, &toks, false);
        }
        self.scratch = toks;
    }

    fn emit(&mut self, message: &str, toks: &[Token], collapse: bool) {
        self.text.clear();
        self.params.clear();
        self.kinds.clear();
        self.tokens = 0;
        let mut last_bare_wildcard = false;
        for t in toks {
            let tok = &message[t.start..t.end];
            match t.kind {
                Kind::Absorbed => {
                    if let Some(last) = self.params.last_mut() {
                        last.1 = t.end - t.suf;
                    }
                    // The unit's punctuation (`KB,`) stays part of the shape.
                    self.text.push_str(&tok[tok.len() - t.suf..]);
                    last_bare_wildcard = false;
                }
                Kind::Constant => {
                    self.push_token(tok);
                    last_bare_wildcard = false;
                }
                Kind::Variable(kind) => {
                    let bare = t.pre == 0 && t.suf == 0;
                    if collapse && bare && last_bare_wildcard {
                        if let (Some(last), Some(k)) =
                            (self.params.last_mut(), self.kinds.last_mut())
                        {
                            last.1 = t.end;
                            *k = k.join(kind);
                        }
                        continue;
                    }
                    self.params.push((t.start + t.pre, t.end - t.suf));
                    self.kinds.push(kind);
                    self.begin_token();
                    self.text.push_str(&tok[..t.pre]);
                    self.text.push_str(WILDCARD);
                    self.text.push_str(&tok[tok.len() - t.suf..]);
                    last_bare_wildcard = bare;
                }
                Kind::Value(at, kind) => {
                    self.params.push((t.start + at, t.end - t.suf));
                    self.kinds.push(kind);
                    self.begin_token();
                    self.text.push_str(&tok[..at]);
                    self.text.push_str(WILDCARD);
                    self.text.push_str(&tok[tok.len() - t.suf..]);
                    last_bare_wildcard = false;
                }
                Kind::Pieces => {
                    self.begin_token();
                    self.push_pieces(message, t);
                    last_bare_wildcard = false;
                }
            }
        }
    }

    /// Writes a token whose core has brackets, quotes or `=` inside: each piece between them
    /// that is a value is masked, everything else is copied.
    fn push_pieces(&mut self, message: &str, t: &Token) {
        let b = message.as_bytes();
        let mut i = t.start;
        let mut copied = t.start;
        while i < t.end {
            if CLASS[b[i] as usize] & HARD != 0 {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < t.end && CLASS[b[j] as usize] & HARD == 0 {
                j += 1;
            }
            let (a, z) = trim_piece(b, i, j);
            if let Some(kind) = value_kind(&b[a..z], !self.untyped) {
                self.text.push_str(&message[copied..a]);
                self.text.push_str(WILDCARD);
                self.params.push((a, z));
                self.kinds.push(kind);
                copied = z;
            }
            i = j;
        }
        self.text.push_str(&message[copied..t.end]);
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

/// Masks `message` and returns its shape with typed placeholders (tests and cold paths).
pub fn mask_display(message: &str) -> String {
    let mut line = MaskedLine::new();
    line.mask(message);
    display(&line.text, &line.kinds)
}

fn classify(bytes: &[u8], start: usize, end: usize, typed: bool) -> Token {
    let word = &bytes[start..end];
    let mut pre = 0;
    while pre < word.len() && CLASS[word[pre] as usize] & LEAD != 0 {
        pre += 1;
    }
    let mut suf = 0;
    while suf < word.len() - pre && CLASS[word[word.len() - 1 - suf] as usize] & TRAIL != 0 {
        suf += 1;
    }
    // A closing bracket whose opening one is inside the core closes a value, not the token:
    // `/v1/orders/{id}` is one route template and `Foo_(bar)` one word. Stripped as
    // punctuation, the `}` was left over after the masked path (`GET <path>}`, issue #11).
    while suf > 0 && opens_inside(&word[pre..word.len() - suf], word[word.len() - suf]) {
        suf -= 1;
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
    if core.is_empty() {
        // `()`, `[]`, `""`: an empty value where other messages have one.
        if pre > 0 && suf > 0 {
            token.kind = Kind::Variable(ParamKind::Any);
        }
        return token;
    }
    // The common cases, decided by the byte classes alone: a plain word, a plain number.
    if classes & (SPECIAL | HARD | DIGIT) == 0 {
        return token;
    }
    if classes & (SPECIAL | HARD) == 0 {
        token.kind = Kind::Variable(match typed {
            true => value_kind(core, true).unwrap_or(ParamKind::Id),
            false => ParamKind::Any,
        });
        return token;
    }
    // `[::1]:8080`: the bracket belongs to the address.
    if pre > 0 && word[pre - 1] == b'[' && classes & DIGIT != 0 {
        if let Some(kind @ (ParamKind::Ip | ParamKind::IpPort)) =
            value_kind(&word[pre - 1..word.len() - suf], true)
        {
            token.pre -= 1;
            token.kind = Kind::Variable(kind);
            return token;
        }
    }
    if classes & HARD == 0 {
        if let Some(kind) = value_kind(core, typed) {
            token.kind = Kind::Variable(kind);
        }
        return token;
    }
    // A URL or path runs to the end of the token, query string included (RFC 3986 ends
    // one at white space, quotes and angle brackets only).
    if let Some(kind @ (ParamKind::Url | ParamKind::Path)) = value_kind(core, false) {
        if !core
            .iter()
            .any(|&b| matches!(b, b'"' | b'\'' | b'<' | b'>'))
        {
            // It starts at its scheme and ends before a bracket it does not close: in
            // `f{$http://a/b` or `http://a/b{` the `{` belongs to the text around the value
            // (a `}` later in the line may close it), not to the value.
            let start = match kind {
                ParamKind::Url => url_start(core).unwrap_or(0),
                _ => 0,
            };
            let end = unclosed_opener(core).unwrap_or(core.len());
            if start == 0 && end == core.len() {
                token.kind = Kind::Variable(kind);
                return token;
            }
            if start < end && value_kind(&core[start..end], false) == Some(kind) {
                token.suf = word.len() - (pre + end);
                token.kind = Kind::Value(pre + start, kind);
                return token;
            }
        }
    }
    if let Some(eq) = key_value_split(core) {
        let value = &core[eq + 1..];
        if !value.iter().any(|&b| CLASS[b as usize] & HARD != 0) {
            if let Some(kind) = value_kind(value, typed) {
                token.kind = Kind::Value(pre + eq + 1, kind);
            }
            return token;
        }
    }
    if classes & (DIGIT | SPECIAL) != 0 {
        token.kind = match list_kind(core, typed) {
            // `10.0.0.1,10.0.0.2`, `1;2;3`: a list of values is one value.
            Some(kind) => Kind::Variable(kind),
            None => Kind::Pieces,
        };
    }
    token
}

/// Where the URL in `core` starts: the first byte of its scheme (RFC 3986: a letter, then
/// letters, digits, `+`, `-`, `.`) before the first `://`; `None` without a scheme.
fn url_start(core: &[u8]) -> Option<usize> {
    let sep = core.windows(3).position(|w| w == b"://")?;
    let mut at = sep;
    while at > 0
        && (core[at - 1].is_ascii_alphanumeric() || matches!(core[at - 1], b'+' | b'-' | b'.'))
    {
        at -= 1;
    }
    while at < sep && !core[at].is_ascii_alphabetic() {
        at += 1;
    }
    (at < sep).then_some(at)
}

/// The position of the first opening bracket of `core` that `core` does not close.
fn unclosed_opener(core: &[u8]) -> Option<usize> {
    let mut open: Vec<(u8, usize)> = Vec::new();
    for (i, &b) in core.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => open.push((b, i)),
            b')' | b']' | b'}' => {
                let opener = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if let Some(at) = open.iter().rposition(|&(o, _)| o == opener) {
                    open.truncate(at);
                }
            }
            _ => {}
        }
    }
    open.first().map(|&(_, at)| at)
}

/// Whether `closer` (`)`, `]`, `}`) closes a bracket left open in `core`.
fn opens_inside(core: &[u8], closer: u8) -> bool {
    let opener = match closer {
        b')' => b'(',
        b']' => b'[',
        b'}' => b'{',
        _ => return false,
    };
    let mut depth = 0usize;
    for &b in core {
        if b == opener {
            depth += 1;
        } else if b == closer {
            depth = depth.saturating_sub(1);
        }
    }
    depth > 0
}

/// The kind of a core that is nothing but values joined by separators, `None` when a word
/// or a bracket is in it.
fn list_kind(core: &[u8], typed: bool) -> Option<ParamKind> {
    let mut kind: Option<ParamKind> = None;
    for piece in core.split(|&b| matches!(b, b',' | b';' | b'|')) {
        if piece.is_empty() {
            continue;
        }
        if piece.iter().any(|&b| CLASS[b as usize] & HARD != 0) {
            return None;
        }
        let k = value_kind(piece, typed)?;
        kind = Some(kind.map_or(k, |old| old.join(k)));
    }
    kind
}

/// A piece `b[a..z]` of a token without the punctuation that ends sentences or separates
/// fields (`.`, `:`, `-` at its end, `:` at its start unless it is an IPv6 `::`).
fn trim_piece(b: &[u8], mut a: usize, mut z: usize) -> (usize, usize) {
    while z > a && matches!(b[z - 1], b'.' | b':' | b'-') {
        z -= 1;
    }
    while a < z && b[a] == b':' && b.get(a + 1) != Some(&b':') {
        a += 1;
    }
    (a, z)
}

/// The kind of value `v` is, `None` when it is a word (see the module documentation). A value
/// with a digit is [`ParamKind::Any`] unless `typed`.
fn value_kind(v: &[u8], typed: bool) -> Option<ParamKind> {
    if v.is_empty() {
        return None;
    }
    if contains(v, b"://") {
        return Some(ParamKind::Url);
    }
    if v[0] == b'/' && v.iter().filter(|&&b| b == b'/').count() >= 2 {
        return Some(ParamKind::Path);
    }
    if let Some(at) = v.iter().position(|&b| b == b'@') {
        if at > 0 && v[at + 1..].contains(&b'.') {
            return Some(ParamKind::Email);
        }
    }
    if !v.iter().any(u8::is_ascii_digit) {
        return None;
    }
    Some(if typed {
        digit_value_kind(v)
    } else {
        ParamKind::Any
    })
}

/// The kind of a value that holds a digit.
fn digit_value_kind(v: &[u8]) -> ParamKind {
    let body = match v[0] {
        b'-' | b'+' => &v[1..],
        _ => v,
    };
    if body
        .iter()
        .all(|&b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return if is_dotted_quad(body) {
            ParamKind::Ip
        } else {
            ParamKind::Num
        };
    }
    if let Some(hex) = v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")) {
        if !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) {
            return ParamKind::Hex;
        }
    }
    if is_uuid(v) {
        return ParamKind::Uuid;
    }
    if let Some(kind) = address_kind(v) {
        return kind;
    }
    if is_time(v) {
        return ParamKind::Time;
    }
    if let Some(kind) = quantity_kind(v) {
        return kind;
    }
    if v.len() >= 8 && v.iter().all(u8::is_ascii_hexdigit) {
        return ParamKind::Hex;
    }
    ParamKind::Id
}

fn is_dotted_quad(v: &[u8]) -> bool {
    let mut parts = 0;
    for part in v.split(|&b| b == b'.') {
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        parts += 1;
    }
    parts == 4
}

fn is_uuid(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter().enumerate().all(|(i, &b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// IPv4 or IPv6 with or without a port, `[v6]:port`, `host:port`.
fn address_kind(v: &[u8]) -> Option<ParamKind> {
    if let Some(inner) = v.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        let (addr, rest) = (&inner[..close], &inner[close + 1..]);
        if !is_ipv6(addr) {
            return None;
        }
        return match rest {
            [] => Some(ParamKind::Ip),
            [b':', port @ ..] if is_port(port) => Some(ParamKind::IpPort),
            _ => None,
        };
    }
    if is_ipv6(v) {
        return Some(ParamKind::Ip);
    }
    let colon = v.iter().rposition(|&b| b == b':')?;
    let (host, port) = (&v[..colon], &v[colon + 1..]);
    if !is_port(port) || host.is_empty() {
        return None;
    }
    if is_dotted_quad(host) {
        return Some(ParamKind::IpPort);
    }
    let hostname = host
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && host.iter().any(u8::is_ascii_alphabetic);
    hostname.then_some(ParamKind::HostPort)
}

fn is_port(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 5 && v.iter().all(u8::is_ascii_digit)
}

/// An IPv6 address: hex groups and at least two colons, with at most one `::`, and not a
/// time of day (`09:20:24`: decimal groups of two).
fn is_ipv6(v: &[u8]) -> bool {
    let colons = v.iter().filter(|&&b| b == b':').count();
    colons >= 2
        && v.len() <= 45
        && v.iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && (contains(v, b"::") || v.iter().any(|&b| b.is_ascii_alphabetic()) || colons == 7)
}

/// Dates and times: digit groups joined by `-`, `/`, `:`, `.`, `T`, `Z`, `+`, `,`, with at
/// least one `-`/`/` date or `:` time separator between two digits (`2024-03-11`,
/// `08:22:20.123`, `2024-03-11T08:22:20Z`, `11/Mar/2024:08:22:20`).
fn is_time(v: &[u8]) -> bool {
    let mut separator = false;
    for (i, &b) in v.iter().enumerate() {
        match b {
            b'0'..=b'9' | b'.' | b',' | b'T' | b'Z' | b'+' => {}
            b'-' | b'/' | b':' => {
                let digit_before = i > 0 && v[i - 1].is_ascii_digit();
                let digit_after = v.get(i + 1).is_some_and(u8::is_ascii_digit);
                separator |= digit_before && (digit_after || b == b'/');
            }
            // Month names inside a date (`11/Mar/2024`).
            b'a'..=b'z' | b'A'..=b'Z' => {}
            _ => return false,
        }
    }
    separator
        && v.iter().filter(|b| b.is_ascii_digit()).count() >= 4
        && v.iter().filter(|b| b.is_ascii_alphabetic()).count() <= 3
}

/// Numbers with units: Go durations (`1.5s`, `3m0s`, `1h2m3.5s`, `200ms`, `10µs`) and sizes
/// (`12KB`, `5.2MiB`, `100B`).
fn quantity_kind(v: &[u8]) -> Option<ParamKind> {
    let mut i = 0;
    let mut kind = None;
    while i < v.len() {
        let start = i;
        while i < v.len() && (v[i].is_ascii_digit() || v[i] == b'.') {
            i += 1;
        }
        if i == start {
            return None;
        }
        let unit_start = i;
        while i < v.len() && !v[i].is_ascii_digit() && v[i] != b'.' {
            i += 1;
        }
        let unit = unit_kind(&v[unit_start..i])?;
        if kind.is_some_and(|k| k != unit) {
            return None;
        }
        kind = Some(unit);
    }
    kind
}

/// The kind a unit word standing after a number (`5.2 KB`, `200 ms`) gives it. Only units
/// of sizes and sub-minute durations: `m`, `h` or `k` alone after a number are as often
/// words or abbreviations of something else.
fn unit_word_kind(word: &[u8]) -> Option<ParamKind> {
    let w = strip(word);
    if w.is_empty() || w.len() > 5 {
        return None;
    }
    const DURATIONS: [&[u8]; 6] = [b"ms", b"us", b"ns", b"s", b"sec", b"secs"];
    const SIZES: [&[u8]; 9] = [
        b"b", b"kb", b"mb", b"gb", b"tb", b"kib", b"mib", b"gib", b"bytes",
    ];
    let mut lower = [0u8; 5];
    for (d, s) in lower.iter_mut().zip(w) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &lower[..w.len()];
    if DURATIONS.contains(&lower) {
        Some(ParamKind::Duration)
    } else if SIZES.contains(&lower) {
        Some(ParamKind::Size)
    } else {
        None
    }
}

/// The kind a unit written right after its number (`1.5s`, `3m0s`, `12KB`, `5M`) gives it.
fn unit_kind(word: &[u8]) -> Option<ParamKind> {
    let w = strip(word);
    if w.is_empty() || w.len() > 7 {
        return None;
    }
    const DURATIONS: [&[u8]; 13] = [
        b"ns",
        b"us",
        b"\xc2\xb5s",
        b"ms",
        b"s",
        b"m",
        b"h",
        b"sec",
        b"secs",
        b"seconds",
        b"min",
        b"mins",
        b"hours",
    ];
    const SIZES: [&[u8]; 14] = [
        b"b", b"kb", b"mb", b"gb", b"tb", b"kib", b"mib", b"gib", b"tib", b"k", b"bytes", b"byte",
        b"g", b"t",
    ];
    let mut lower = [0u8; 7];
    for (d, s) in lower.iter_mut().zip(w) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &lower[..w.len()];
    // `m` is minutes in Go durations (`3m0s`), `M` is mega in sizes (`5M`).
    if w == b"M" {
        return Some(ParamKind::Size);
    }
    if DURATIONS.contains(&lower) {
        Some(ParamKind::Duration)
    } else if SIZES.contains(&lower) {
        Some(ParamKind::Size)
    } else {
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_keep_their_words_and_lose_their_addresses() {
        assert_eq!(
            mask_display(
                "read tcp 127.0.0.1:34252->127.0.0.1:9200: read: connection reset by peer"
            ),
            "read tcp <ip:port>-><ip:port>: read: connection reset by peer"
        );
        assert_eq!(
            mask_display("dial tcp [::1]:8080: connect: connection refused"),
            "dial tcp <ip:port>: connect: connection refused"
        );
        assert_eq!(
            mask_display("lookup db-1:5432 on 10.0.0.2 took 35ms"),
            "lookup <host:port> on <ip> took <duration>"
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
            mask_display("connection from 1.2.3.4 () at Sat Jul  9 12:16:49 2005"),
            "connection from <ip> (<*>) at <time>"
        );
        assert_eq!(
            mask_display("stored (estimated size 5.2 KB, free 317.1 KB)"),
            "stored (estimated size <size>, free <size>)"
        );
        assert_eq!(
            mask_display("took 1.5s then 200ms, 3m0s"),
            "took <duration> then <duration>, <duration>"
        );
        assert_eq!(
            mask_display("at 2024-03-11T08:22:20.123Z and 11/Mar/2024:08:22:20"),
            "at <time> and <time>"
        );
    }

    #[test]
    fn urls_paths_uuids_and_mail_are_masked() {
        let m = mask_display(
            "GET https://a.b/c for /var/lib/x id 17288ea8-cbf4-4f0e-94fe-853fd2735f29 by bob@ex.com trace 4bf92f3577b34da6",
        );
        assert_eq!(m, "GET <url> for <path> id <uuid> by <email> trace <hex>");
    }

    #[test]
    fn markup_and_calls_keep_their_punctuation() {
        assert_eq!(
            mask("</script><script>alert(1)</script> id 7"),
            "</script><script>alert(<*>)</script> id <*>"
        );
        assert_eq!(mask("f(1) (2) [x=3,y=a]"), "f(<*>) (<*>) [x=<*>,y=a]");
        assert_eq!(
            mask(r#"{"level":"error","n":12,"msg":"x"}"#),
            r#"{"level":"error","n":<*>,"msg":"x"}"#
        );
        assert_eq!(mask("Get \"http://a:80/x\": EOF"), "Get \"<*>\": EOF");
    }

    #[test]
    fn a_bracket_closed_inside_a_value_stays_with_it() {
        // Route templates in span names and HTTP failures (`{id}` as OpenTelemetry and axum
        // write them): the `}` was left after the masked path.
        assert_eq!(mask_display("GET /v1/orders/{id}"), "GET <path>");
        assert_eq!(
            mask_display("HTTP 500 from GET /v1/stock/{sku}"),
            "HTTP <num> from GET <path>"
        );
        assert_eq!(
            mask_display("see http://en.wikipedia.org/wiki/Go_(language), then"),
            "see <url>, then"
        );
        // A bracket opened before the value still closes after it.
        assert_eq!(mask_display("(/var/lib/x)"), "(<path>)");
        assert_eq!(mask("{id=7} f(g(1))"), "{id=<*>} f(g(<*>))");
    }

    #[test]
    fn a_line_is_never_swallowed_whole() {
        assert_eq!(mask("12 34 56"), "<*> <*> <*>");
        assert_eq!(mask("2024-03-11 08:22:20 boot"), "<*> boot");
        assert_eq!(mask("42"), "<*>");
    }

    #[test]
    fn params_point_at_the_original_values() {
        let msg = "Took 1.00 s at port 8080, alert(7)";
        let mut line = MaskedLine::new();
        line.mask(msg);
        let values: Vec<&str> = line.params.iter().map(|&(a, b)| &msg[a..b]).collect();
        assert_eq!(values, ["1.00 s", "8080", "7"]);
        assert_eq!(
            line.kinds,
            [ParamKind::Duration, ParamKind::Num, ParamKind::Num]
        );
        assert_eq!(line.params.len(), line.text.matches(WILDCARD).count());
    }

    #[test]
    fn shapes_do_not_depend_on_telling_kinds_apart() {
        let mut typed = MaskedLine::new();
        let mut untyped = MaskedLine::shapes_only();
        for msg in [
            "read tcp 127.0.0.1:34252->127.0.0.1:9200: read: connection reset by peer",
            "dial tcp [::1]:8080: connect",
            "stored 5.2 KB, at 2024-03-11T08:22:20Z id=17288ea8-cbf4-4f0e-94fe-853fd2735f29",
            "</script><script>alert(1)</script> a=1,b=x 10.0.0.1,10.0.0.2 /a/b?x=1",
        ] {
            typed.mask(msg);
            untyped.mask(msg);
            assert_eq!(typed.text, untyped.text);
            assert_eq!(typed.params, untyped.params);
        }
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for k in [
            ParamKind::Any,
            ParamKind::Num,
            ParamKind::Hex,
            ParamKind::Id,
            ParamKind::Ip,
            ParamKind::IpPort,
            ParamKind::HostPort,
            ParamKind::Uuid,
            ParamKind::Duration,
            ParamKind::Size,
            ParamKind::Time,
            ParamKind::Url,
            ParamKind::Path,
            ParamKind::Email,
        ] {
            assert_eq!(ParamKind::from_code(k.code()), k);
        }
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
            "[",
            "[1",
            "[:]:",
            "a(1)=(2)é",
            ":::1",
            "x=\"1",
            "5 \u{b5}s",
        ] {
            let mut line = MaskedLine::new();
            line.mask(msg);
            assert_eq!(
                line.params.len(),
                line.text.matches(WILDCARD).count(),
                "{msg}"
            );
            for &(a, b) in &line.params {
                assert!(a <= b && msg.is_char_boundary(a) && msg.is_char_boundary(b));
            }
        }
    }

    /// Closing brackets in `text` with no opening one before them, per kind.
    fn unmatched_closers(text: &str) -> [usize; 3] {
        let mut depth = [0usize; 3];
        let mut unmatched = [0usize; 3];
        for c in text.chars() {
            let (k, open) = match c {
                '(' => (0, true),
                ')' => (0, false),
                '[' => (1, true),
                ']' => (1, false),
                '{' => (2, true),
                '}' => (2, false),
                _ => continue,
            };
            if open {
                depth[k] += 1;
            } else if depth[k] > 0 {
                depth[k] -= 1;
            } else {
                unmatched[k] += 1;
            }
        }
        unmatched
    }

    fn check_masking(msg: &str) {
        if msg.contains(WILDCARD) {
            // A literal placeholder in the input cannot be told from a masked one.
            return;
        }
        for mut line in [MaskedLine::new(), MaskedLine::shapes_only()] {
            line.mask(msg);
            assert_eq!(
                line.params.len(),
                line.text.matches(WILDCARD).count(),
                "{msg:?} -> {:?}",
                line.text
            );
            assert_eq!(line.params.len(), line.kinds.len());
            for &(a, b) in &line.params {
                assert!(a <= b && b <= msg.len(), "{msg:?}");
                assert!(
                    msg.is_char_boundary(a) && msg.is_char_boundary(b),
                    "{msg:?}"
                );
            }
            let tokens = msg.split_ascii_whitespace().count();
            if line.text == WILDCARD {
                // Only a line that is one value (`42`, `5.2 KB`) is one placeholder.
                let trimmed = msg.trim_matches(|c: char| c.is_ascii_whitespace());
                let start = msg.len()
                    - msg
                        .trim_start_matches(|c: char| c.is_ascii_whitespace())
                        .len();
                assert_eq!(
                    line.params,
                    [(start, start + trimmed.len())],
                    "{msg:?} swallowed whole"
                );
            }
            assert!(line.tokens <= tokens, "{msg:?} -> {:?}", line.text);
            let (before, after) = (unmatched_closers(msg), unmatched_closers(&line.text));
            for k in 0..3 {
                assert!(
                    after[k] <= before[k],
                    "{msg:?} -> {:?}: a closing bracket lost its opening one",
                    line.text
                );
            }
        }
    }

    /// Pieces log messages are made of: words, values of every kind, brackets, quotes and
    /// separators, so that generated lines hit the masker's branches rather than only
    /// random bytes.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("GET".to_string()),
            Just("connection reset by peer".to_string()),
            Just("/v1/orders/{id}".to_string()),
            Just("http://127.0.0.1:8080/a?b=1".to_string()),
            Just("127.0.0.1:34252->10.0.0.2:9200".to_string()),
            Just("[::1]:8080".to_string()),
            Just("2024-03-11T08:22:20.123Z".to_string()),
            Just("17288ea8-cbf4-4f0e-94fe-853fd2735f29".to_string()),
            Just("1.5s".to_string()),
            Just("5.2 KB".to_string()),
            Just("Sat Jun".to_string()),
            Just("key=value".to_string()),
            Just("n=42".to_string()),
            "[-0-9a-zA-Z_.:/=@]{1,12}",
            "[(){}\\[\\]<>\"',;:|= ]{1,3}",
            "\\PC{0,6}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn masking_never_panics_and_never_swallows_a_line(
            pieces in proptest::collection::vec(piece(), 0..12),
            glue in proptest::collection::vec("[ \t]{0,2}", 12),
        ) {
            let mut msg = String::new();
            for (p, g) in pieces.iter().zip(glue.iter()) {
                msg.push_str(p);
                msg.push_str(g);
            }
            check_masking(&msg);
        }

        #[test]
        fn masking_arbitrary_text_never_panics(msg in "\\PC{0,80}") {
            check_masking(&msg);
        }
    }
}
