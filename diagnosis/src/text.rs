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
