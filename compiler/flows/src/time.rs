//! Timestamps: RFC 3339 in and out (`ringfence_schema::time`), nanoseconds
//! since the Unix epoch inside.
//!
//! Flow records carry RFC 3339 strings; comparing those as text is wrong as
//! soon as offsets or fraction lengths differ, so readers parse them once.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use ringfence_schema::time;

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
    /// A space may replace the `T`; the fraction has at most 9 digits; a leap
    /// second is read as the next second. Instants from 1677 to 2262 (what
    /// nanoseconds in an `i64` hold).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let t = time::parse(s)
            .map_err(|_| format!("`{s}` is not an RFC 3339 time (like 2024-05-01T12:00:00Z)"))?;
        i64::try_from(t.at.as_nanosecond())
            .map(Timestamp)
            .map_err(|_| format!("`{s}` is out of range (flow times are from 1677 to 2262)"))
    }

    /// RFC 3339 in UTC with the fraction only when there is one
    /// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25Z`).
    pub fn to_rfc3339(self) -> String {
        time::format(self.instant())
    }

    /// RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`).
    pub fn to_rfc3339_secs(self) -> String {
        time::format_secs(self.instant())
    }

    fn instant(self) -> time::Timestamp {
        time::Timestamp::from_nanosecond(i128::from(self.0))
            .expect("i64 nanoseconds are within jiff's range")
    }
}

/// Parses RFC 3339 times that mostly share their minute, as a file's flows
/// do: the instant of the last UTC minute read is kept, and a time in that
/// minute (`…T12:00:SS[.fraction]Z`, second below 60) costs only its
/// seconds. Anything else goes to [`Timestamp::parse_rfc3339`]; the results
/// are the same.
#[derive(Debug, Default)]
pub(crate) struct MinuteCache {
    /// `YYYY-MM-DDTHH:MM:` and the nanoseconds of that minute.
    minute: Option<([u8; 17], i64)>,
}

impl MinuteCache {
    pub(crate) fn parse(&mut self, s: &str) -> Result<Timestamp, String> {
        if let Some(t) = self.in_minute(s) {
            return Ok(t);
        }
        let t = Timestamp::parse_rfc3339(s)?;
        let b = s.as_bytes();
        if matches!(b.last(), Some(b'Z' | b'z')) {
            // The layout is valid: the minute is `s` at second zero.
            let mut start = [0u8; 17];
            start.copy_from_slice(&b[..17]);
            let mut at_zero = String::with_capacity(20);
            at_zero.push_str(&s[..17]);
            at_zero.push_str("00Z");
            self.minute = Timestamp::parse_rfc3339(&at_zero)
                .ok()
                .map(|m| (start, m.0));
        }
        Ok(t)
    }

    fn in_minute(&self, s: &str) -> Option<Timestamp> {
        let (start, minute) = self.minute.as_ref()?;
        let b = s.as_bytes();
        if b.len() < 20 || b[..17] != start[..] || !matches!(b[b.len() - 1], b'Z' | b'z') {
            return None;
        }
        let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
        let second = digit(b[17])? * 10 + digit(b[18])?;
        if second >= 60 {
            return None;
        }
        let mut nanos = 0;
        match &b[19..b.len() - 1] {
            [] => {}
            [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
                for &c in fraction {
                    nanos = nanos * 10 + digit(c)?;
                }
                nanos *= 10i64.pow(9 - fraction.len() as u32);
            }
            _ => return None,
        }
        minute.checked_add(second * NANOS + nanos).map(Timestamp)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache answers exactly as the full parser, in and out of its
    /// minute, whatever came before.
    #[test]
    fn the_minute_cache_reads_as_the_parser_does() {
        let times = [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:59.999999999Z",
            "2024-05-01T12:00:07.5z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:07.Z",
            "2024-05-01T12:00:07.1234567890Z",
            "2024-05-01T12:00:7Z",
            "2024-05-01T12:00:0aZ",
            "2024-05-01T12:00:07+02:00",
            "2024-05-01T12:00:07.25+00:00",
            "2024-05-01 12:00:07Z",
            "2024-05-01T12:01:00Z",
            "2024-05-01T12:00:01Z",
            "2262-04-11T23:47:16Z",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16.854775808Z",
            "2262-04-11T23:47:59Z",
            "1677-09-21T00:12:44Z",
            "2024-05-01T12:00:01Zx",
        ];
        let mut cache = MinuteCache::default();
        for _ in 0..2 {
            for t in times {
                assert_eq!(cache.parse(t), Timestamp::parse_rfc3339(t), "{t}");
            }
        }
    }

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
            "2024-05-01T12:00:60.5+25:00",
            "2024-05-01T12:00:61Z",
            "2024-05-01T12:00:00+02:60",
            "2024-05-01T12:00Z",
            "yesterday at noon, roughly",
        ] {
            let e = bad.parse::<Timestamp>().unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn edges_fractions_offsets_leap_seconds_and_range() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // Fractions of 1 to 9 digits; written without trailing zeros.
        assert_eq!(
            at("2024-05-01T12:00:00.1Z").unix_nanos() % 1_000_000_000,
            100_000_000
        );
        assert_eq!(at("2024-05-01T12:00:00.000000001Z").unix_nanos() % 10, 1);
        assert_eq!(
            at("2024-05-01T12:00:00.100Z").to_string(),
            "2024-05-01T12:00:00.1Z"
        );
        // `Z`, `z` and offsets name the same instant.
        let noon = at("2024-05-01T12:00:00Z");
        for same in [
            "2024-05-01T12:00:00z",
            "2024-05-01T12:00:00+00:00",
            "2024-05-01T12:00:00-00:00",
            "2024-05-02T11:59:00+23:59",
            "2024-04-30T12:01:00-23:59",
        ] {
            assert_eq!(at(same), noon, "{same}");
        }
        // A leap second is read as the next second, as before.
        assert_eq!(at("2016-12-31T23:59:60Z"), at("2017-01-01T00:00:00Z"));
        assert_eq!(
            at("2016-12-31T23:59:60.25Z").to_string(),
            "2017-01-01T00:00:00.25Z"
        );
        // What an i64 of nanoseconds holds, and no further.
        assert_eq!(at("1677-09-21T00:12:43.145224192Z").unix_nanos(), i64::MIN);
        assert_eq!(at("2262-04-11T23:47:16.854775807Z").unix_nanos(), i64::MAX);
        for far in [
            "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z",
            "0000-01-01T00:00:00Z",
        ] {
            let e = far.parse::<Timestamp>().unwrap_err();
            assert!(e.contains("out of range"), "{far}: {e}");
        }
        assert_eq!(
            Timestamp::from_unix_nanos(i64::MIN).to_string(),
            "1677-09-21T00:12:43.145224192Z"
        );
    }
}
