//! How numbers and times read in evidence sentences, one definition for every judgement
//! ("what moved", counter anomalies, incidents), so the same level or moment is written the
//! same way on every page.

/// A level for a sentence: whole numbers (and anything from 100 up, where a decimal is noise)
/// with thousands separators, smaller fractions to one decimal.
pub(crate) fn number(v: f64) -> String {
    let whole = (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0;
    if whole && v.abs() < 1e15 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else {
        format!("{v:.1}")
    }
}

/// `HH:MM:SS UTC` of a Unix time in ms.
pub fn clock(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A quoted text cut to at most `max` characters for a sentence, then `…`: before a
/// parenthesis the cut would leave open, else at the last space, when either is in the last
/// third (a word or a parenthesis is not left in halves).
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let floor = cut.len() * 2 / 3;
    let open = cut.rfind('(').filter(|&i| !cut[i..].contains(')'));
    let space = cut.rfind(char::is_whitespace);
    let end = open
        .filter(|&i| i >= floor)
        .or(space.filter(|&i| i >= floor))
        .unwrap_or(cut.len());
    let mut out = cut[..end].trim_end_matches([' ', ':', ',', ';']).to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn a_short_text_is_kept_whole() {
        assert_eq!(
            shorten("connection reset by peer", 40),
            "connection reset by peer"
        );
    }

    #[test]
    fn a_long_text_is_cut_between_words_and_says_so() {
        let text = "error sending request for url (<url>): client error (SendRequest): \
                    connection error: Connection reset by peer (os error <num>)";
        let short = shorten(text, 120);
        assert!(short.chars().count() <= 121, "{short}");
        assert!(
            short.ends_with("peer…"),
            "cut mid-word or mid-parenthesis: {short}"
        );
    }

    #[test]
    fn a_text_without_spaces_is_cut_at_the_limit() {
        let text = "x".repeat(50);
        assert_eq!(shorten(&text, 10), format!("{}…", "x".repeat(10)));
    }
}
