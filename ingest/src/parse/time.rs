//! Timestamps as Go loggers and web servers write them, read without allocation.
//!
//! Every reader returns Unix nanoseconds. A timestamp that names its zone (`Z`, `+02:00`,
//! `-0700`) is exact; one that does not (Go's `log` package, Gin, nginx's error log) is a wall
//! clock reading and is placed in the zone given by `naive_offset_secs` (the operator's choice,
//! UTC by default), because the log line itself cannot tell.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads exactly `n` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = b.get(at..at + n)?;
    let mut v: u32 = 0;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// A calendar date and time of day, before a zone is applied.
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Civil {
    fn to_unix_nanos(&self, offset_secs: i64) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || !(1..=31).contains(&self.day)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - offset_secs;
        secs.checked_mul(1_000_000_000)?
            .checked_add(i64::from(self.nanos))
    }
}

/// Reads `.123456789` (or `,123`) at `at`; returns nanoseconds and the index after it.
fn fraction(b: &[u8], at: usize) -> (u32, usize) {
    if !matches!(b.get(at), Some(b'.') | Some(b',')) {
        return (0, at);
    }
    let mut i = at + 1;
    let mut nanos: u32 = 0;
    let mut scale = 100_000_000;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        nanos += u32::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == at + 1 {
        return (0, at);
    }
    (nanos, i)
}

/// Reads `Z`, `+02:00`, `+0200` or `-07` at `at`: offset seconds and the index after it.
fn zone(b: &[u8], at: usize) -> Option<(i64, usize)> {
    match b.get(at)? {
        b'Z' | b'z' => Some((0, at + 1)),
        sign @ (b'+' | b'-') => {
            let hours = digits(b, at + 1, 2)?;
            let mut i = at + 3;
            let mut minutes = 0;
            if b.get(i) == Some(&b':') {
                minutes = digits(b, i + 1, 2)?;
                i += 3;
            } else if let Some(m) = digits(b, i, 2) {
                minutes = m;
                i += 2;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            Some((if *sign == b'-' { -secs } else { secs }, i))
        }
        _ => None,
    }
}

/// Reads `HH:MM:SS[.frac]` at `at`.
fn clock(b: &[u8], at: usize) -> Option<(u32, u32, u32, u32, usize)> {
    let hour = digits(b, at, 2)?;
    if b.get(at + 2) != Some(&b':') {
        return None;
    }
    let minute = digits(b, at + 3, 2)?;
    if b.get(at + 5) != Some(&b':') {
        return None;
    }
    let second = digits(b, at + 6, 2)?;
    let (nanos, end) = fraction(b, at + 8);
    Some((hour, minute, second, nanos, end))
}

/// Reads `YYYY<sep>MM<sep>DD` at the start of `b`.
fn date(b: &[u8], sep: u8) -> Option<(u32, u32, u32)> {
    if b.get(4) != Some(&sep) || b.get(7) != Some(&sep) {
        return None;
    }
    Some((digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?))
}

/// Reads the time of day at `at` and joins it to `(year, month, day)`; returns the calendar
/// reading and the index after the clock.
fn civil_at(b: &[u8], (year, month, day): (u32, u32, u32), at: usize) -> Option<(Civil, usize)> {
    let (hour, minute, second, nanos, end) = clock(b, at)?;
    let civil = Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
    };
    Some((civil, end))
}

/// Reads an RFC 3339 / ISO 8601 timestamp (`2024-03-11T08:22:17.123Z`, a space instead of
/// `T`, an optional zone) at the start of `text`. Returns Unix nanoseconds and the number of
/// bytes read.
pub fn rfc3339_prefix(text: &str, naive_offset_secs: i64) -> Option<(i64, usize)> {
    let b = text.as_bytes();
    let ymd = date(b, b'-')?;
    if !matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' ')) {
        return None;
    }
    let (civil, mut end) = civil_at(b, ymd, 11)?;
    let mut offset = naive_offset_secs;
    if let Some((o, e)) = zone(b, end) {
        offset = o;
        end = e;
    }
    Some((civil.to_unix_nanos(offset)?, end))
}

/// Reads a whole value as a timestamp: RFC 3339 or a Unix epoch number (seconds with a
/// fraction as zap writes it, or integer seconds, milliseconds, microseconds, nanoseconds).
pub fn any_timestamp(text: &str, naive_offset_secs: i64) -> Option<i64> {
    let text = text.trim();
    if let Some((nanos, used)) = rfc3339_prefix(text, naive_offset_secs) {
        return (used == text.len()).then_some(nanos);
    }
    if let Some((nanos, used)) = go_log_prefix(text, naive_offset_secs) {
        return (used == text.len()).then_some(nanos);
    }
    epoch_number(text)
}

/// Reads a Unix epoch number; the unit is guessed from its size (s, ms, µs, ns).
pub fn epoch_number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    epoch_float(value)
}

/// A Unix epoch value of any usual unit, guessed from its size.
pub fn epoch_float(value: f64) -> Option<i64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let nanos = if value < 1e11 {
        value * 1e9
    } else if value < 1e14 {
        value * 1e6
    } else if value < 1e17 {
        value * 1e3
    } else {
        value
    };
    (nanos < 9.2e18).then_some(nanos as i64)
}

/// Reads Go's `log` package timestamp `2024/03/11 08:22:20[.465632]` (no zone) at the start
/// of `text`. Returns Unix nanoseconds and the bytes read.
pub fn go_log_prefix(text: &str, naive_offset_secs: i64) -> Option<(i64, usize)> {
    let b = text.as_bytes();
    let ymd = date(b, b'/')?;
    if b.get(10) != Some(&b' ') {
        return None;
    }
    let (civil, end) = civil_at(b, ymd, 11)?;
    Some((civil.to_unix_nanos(naive_offset_secs)?, end))
}

/// Reads Gin's `2024/03/11 - 08:22:18` (no zone).
pub fn gin(text: &str, naive_offset_secs: i64) -> Option<i64> {
    let b = text.as_bytes();
    let ymd = date(b, b'/')?;
    if b.get(10..13) != Some(b" - ") {
        return None;
    }
    civil_at(b, ymd, 13)?.0.to_unix_nanos(naive_offset_secs)
}

/// Reads the common log format's `10/Oct/2000:13:55:36 -0700` (nginx, Apache).
pub fn common_log(text: &str, naive_offset_secs: i64) -> Option<i64> {
    let b = text.as_bytes();
    let day = digits(b, 0, 2)?;
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let name = b.get(3..6)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == name)? as u32 + 1;
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let year = digits(b, 7, 4)?;
    let (civil, end) = civil_at(b, (year, month, day), 12)?;
    let mut offset = naive_offset_secs;
    if b.get(end) == Some(&b' ') {
        if let Some((o, _)) = zone(b, end + 1) {
            offset = o;
        }
    }
    civil.to_unix_nanos(offset)
}

/// The proleptic Gregorian year of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn year_of_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month_is_jan_or_feb = mp >= 10;
    yoe + era * 400 + i64::from(month_is_jan_or_feb)
}

/// Places a year-less reading (syslog's `Nov 25 20:41:03`, klog's `1125 20:41:03`) in the
/// year that puts it at or before the moment it was observed: the observation year, or the
/// year before when that would put it more than a day in the future (a December line read in
/// January). The day of slack absorbs zone differences between the writer and the reader.
fn in_observed_year(civil: &mut Civil, offset_secs: i64, observed_nanos: i64) -> Option<i64> {
    let observed_secs = observed_nanos.div_euclid(1_000_000_000);
    let year = year_of_days((observed_secs + offset_secs).div_euclid(86_400));
    civil.year = u32::try_from(year).ok()?;
    let nanos = civil.to_unix_nanos(offset_secs)?;
    if nanos > observed_nanos.saturating_add(86_400 * 1_000_000_000) {
        civil.year = civil.year.checked_sub(1)?;
        return civil.to_unix_nanos(offset_secs);
    }
    Some(nanos)
}

/// Reads syslog's (RFC 3164) `Nov 25 20:41:03` or `Nov  5 20:41:03` at the start of `text`,
/// in the zone of `naive_offset_secs` and the year of `observed_nanos` (see
/// `in_observed_year`). Returns Unix nanoseconds and the bytes read.
pub fn syslog_prefix(
    text: &str,
    naive_offset_secs: i64,
    observed_nanos: i64,
) -> Option<(i64, usize)> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = text.as_bytes();
    let name = b.get(0..3)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == name)? as u32 + 1;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let day = match (b.get(4)?, b.get(5)?) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => digits(b, 4, 2)?,
    };
    if b.get(6) != Some(&b' ') {
        return None;
    }
    let (mut civil, end) = civil_at(b, (0, month, day), 7)?;
    Some((
        in_observed_year(&mut civil, naive_offset_secs, observed_nanos)?,
        end,
    ))
}

/// Reads klog's `1125 20:41:03.123456` (month, day, then the clock) at the start of `text`,
/// like [`syslog_prefix`].
pub fn klog_prefix(
    text: &str,
    naive_offset_secs: i64,
    observed_nanos: i64,
) -> Option<(i64, usize)> {
    let b = text.as_bytes();
    let month = digits(b, 0, 2)?;
    let day = digits(b, 2, 2)?;
    if b.get(4) != Some(&b' ') {
        return None;
    }
    let (mut civil, end) = civil_at(b, (0, month, day), 5)?;
    Some((
        in_observed_year(&mut civil, naive_offset_secs, observed_nanos)?,
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARCH_11_2024_082217: i64 = 1_710_145_337;

    #[test]
    fn rfc3339_with_and_without_zone() {
        let (n, used) = rfc3339_prefix("2024-03-11T08:22:17Z rest", 0).unwrap();
        assert_eq!(n, MARCH_11_2024_082217 * 1_000_000_000);
        assert_eq!(used, 20);
        let (n, _) = rfc3339_prefix("2024-03-11T10:22:17.5+02:00", 0).unwrap();
        assert_eq!(n, MARCH_11_2024_082217 * 1_000_000_000 + 500_000_000);
        let (n, _) = rfc3339_prefix("2024-03-11 09:22:17", 3600).unwrap();
        assert_eq!(n, MARCH_11_2024_082217 * 1_000_000_000);
    }

    #[test]
    fn go_gin_and_common_log_forms() {
        let (n, _) = go_log_prefix("2024/03/11 08:22:17.000001 x", 0).unwrap();
        assert_eq!(n, MARCH_11_2024_082217 * 1_000_000_000 + 1000);
        assert_eq!(
            gin("2024/03/11 - 08:22:17", 0),
            Some(MARCH_11_2024_082217 * 1_000_000_000)
        );
        assert_eq!(
            common_log("11/Mar/2024:01:22:17 -0700", 0),
            Some(MARCH_11_2024_082217 * 1_000_000_000)
        );
    }

    #[test]
    fn epochs_of_every_unit() {
        let s = MARCH_11_2024_082217;
        assert_eq!(any_timestamp("1710145337", 0), Some(s * 1_000_000_000));
        assert_eq!(any_timestamp("1710145337000", 0), Some(s * 1_000_000_000));
        assert_eq!(
            any_timestamp("1710145337000000000", 0),
            Some(s * 1_000_000_000)
        );
        assert!(any_timestamp("-1", 0).is_none());
        assert!(any_timestamp("2024-13-11T08:22:17Z", 0).is_none());
    }

    #[test]
    fn year_less_readings_take_the_observed_year_or_the_one_before() {
        let observed = MARCH_11_2024_082217 * 1_000_000_000;
        let (n, used) = syslog_prefix("Mar 11 08:22:17 host", 0, observed).unwrap();
        assert_eq!((n, used), (observed, 15));
        let (n, _) = syslog_prefix("Mar  1 08:22:17", 0, observed).unwrap();
        assert_eq!(n, observed - 10 * 86_400 * 1_000_000_000);
        // December read in March: last year's.
        let (n, _) = syslog_prefix("Dec 31 23:59:59", 0, observed).unwrap();
        assert_eq!(n, 1_704_067_199 * 1_000_000_000);
        let (n, used) = klog_prefix("0311 08:22:17.000001 1 x.go:1]", 0, observed).unwrap();
        assert_eq!((n, used), (observed + 1000, 20));
        assert!(syslog_prefix("Foo 11 08:22:17", 0, observed).is_none());
        assert!(klog_prefix("1311 08:22:17", 0, observed).is_none());
        for days in [-800_000_i64, -1, 0, 59, 365, 10_957, 19_793, 2_932_896] {
            let year = year_of_days(days);
            assert!(days_from_civil(year, 1, 1) <= days && days < days_from_civil(year + 1, 1, 1));
        }
    }
}
