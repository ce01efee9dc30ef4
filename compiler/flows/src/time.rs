//! Timestamps: RFC 3339 in and out, nanoseconds since the Unix epoch inside.
//!
//! Flow records carry RFC 3339 strings; comparing those as text is wrong as
//! soon as offsets or fraction lengths differ, so readers parse them once.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant, in nanoseconds since 1970-01-01T00:00:00Z (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const NANOS: i64 = 1_000_000_000;

impl Timestamp {
    /// From nanoseconds since the epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// From whole seconds since the epoch.
    pub const fn from_unix_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(NANOS))
    }

    /// Nanoseconds since the epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(NANOS)
    }

    /// From a file's modification time or any other system time.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// Parse RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`).
    /// A space may replace the `T`; the fraction has at most 9 digits.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not an RFC 3339 time (like 2024-05-01T12:00:00Z)");
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
            let part = &b[r];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(err());
            }
            Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        };
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err());
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(err());
        }
        let mut i = 19;
        let mut frac = 0i64;
        if b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = i - start;
            if digits == 0 || digits > 9 {
                return Err(err());
            }
            frac = num(start..i)? * 10i64.pow((9 - digits) as u32);
        }
        let offset = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                let o = (oh * 60 + om) * 60;
                if *sign == b'-' { -o } else { o }
            }
            _ => return Err(err()),
        };
        // A leap second is folded into the next second.
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Ok(Timestamp(secs * NANOS + frac))
    }

    /// RFC 3339 in UTC with the fraction only when there is one
    /// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25Z`).
    pub fn to_rfc3339(self) -> String {
        let frac = self.0.rem_euclid(NANOS);
        let mut out = self.to_rfc3339_secs();
        if frac != 0 {
            out.pop();
            let digits = format!("{frac:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
            out.push('Z');
        }
        out
    }

    /// RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`).
    pub fn to_rfc3339_secs(self) -> String {
        let secs = self.unix_secs();
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Timestamp::parse_rfc3339(s)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rfc3339() {
        let t: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        assert_eq!(t.unix_secs(), 1_714_564_800);
        assert_eq!(t.to_string(), "2024-05-01T12:00:00Z");
        let t: Timestamp = "2024-05-01T14:00:00.123456789+02:00".parse().unwrap();
        assert_eq!(t.unix_secs(), 1_714_564_800);
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.123456789Z");
        assert_eq!(t.to_rfc3339_secs(), "2024-05-01T12:00:00Z");
        let t: Timestamp = "1969-12-31 23:59:59.5z".parse().unwrap();
        assert_eq!(t.unix_nanos(), -500_000_000);
        assert_eq!(t.to_string(), "1969-12-31T23:59:59.5Z");
        assert_eq!(
            "2000-02-29T00:00:00-00:30"
                .parse::<Timestamp>()
                .unwrap()
                .to_string(),
            "2000-02-29T00:30:00Z"
        );
    }

    #[test]
    fn round_trips_every_day_of_a_few_centuries() {
        for day in (-50_000..50_000).step_by(7) {
            let t = Timestamp::from_unix_secs(day * 86_400 + 3_723);
            assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567890Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00Zjunk",
            "yesterday at noon, roughly",
        ] {
            let e = bad.parse::<Timestamp>().unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
