//! RFC 3339, the one reader and writer of timestamps: flow records, bundle,
//! index and report times. jiff checks the date and converts; the layout is
//! fixed here: `YYYY-MM-DD`, `T` (or `t`, or a space), `HH:MM:SS`, an
//! optional fraction of 1 to 9 digits, then `Z` (or `z`) or `±HH:MM`. A leap
//! second (`:60`) is read as the first instant of the next second.

use jiff::SignedDuration;
pub use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;

/// A time as written: the instant and the offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339 {
    /// The instant.
    pub at: Timestamp,
    /// The offset from UTC, in seconds (`Z` is 0).
    pub offset_secs: i32,
}

/// Why a text is not an RFC 3339 time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    Layout,
    /// A field out of its range (month 13, February 30, hour 24, offset
    /// +24:00), or an instant jiff cannot represent.
    Range,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Layout => "not laid out as YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)",
            Refusal::Range => "a field is out of range",
        })
    }
}

/// Parse an RFC 3339 time (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`).
pub fn parse(s: &str) -> Result<Rfc3339, Refusal> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(Refusal::Layout);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i32, Refusal> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(Refusal::Layout);
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i32::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err(Refusal::Layout);
        }
        nanos = num(start..i)? * 10i32.pow((9 - digits) as u32);
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(Refusal::Range);
            }
            let o = (oh * 60 + om) * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(Refusal::Layout),
    };
    let small = |n: i32| i8::try_from(n).map_err(|_| Refusal::Range);
    let leap = second == 60;
    let civil = DateTime::new(
        i16::try_from(year).map_err(|_| Refusal::Range)?,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(if leap { 59 } else { second })?,
        nanos,
    )
    .map_err(|_| Refusal::Range)?;
    let offset = Offset::from_seconds(offset_secs).map_err(|_| Refusal::Range)?;
    let mut at = offset.to_timestamp(civil).map_err(|_| Refusal::Range)?;
    if leap {
        at = at
            .checked_add(SignedDuration::from_secs(1))
            .map_err(|_| Refusal::Range)?;
    }
    Ok(Rfc3339 { at, offset_secs })
}

/// `at` in UTC with a fraction only when there is one, without trailing
/// zeros (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25Z`).
pub fn format(at: Timestamp) -> String {
    at.to_string()
}

/// `at` in UTC truncated to the second (`2024-05-01T12:00:00Z`).
pub fn format_secs(at: Timestamp) -> String {
    format!("{at:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> (i64, i32, i32) {
        let t = parse(s).unwrap();
        (t.at.as_second(), t.at.subsec_nanosecond(), t.offset_secs)
    }

    #[test]
    fn reads_the_layout_and_nothing_else() {
        assert_eq!(secs("2024-05-01T12:00:00Z"), (1_714_564_800, 0, 0));
        assert_eq!(
            secs("2024-05-01t14:00:00.5+02:00"),
            (1_714_564_800, 500_000_000, 7200)
        );
        assert_eq!(
            secs("2024-05-01 11:30:00.000000001-00:30"),
            (1_714_564_800, 1, -1800)
        );
        assert_eq!(secs("2016-12-31T23:59:60Z"), secs("2017-01-01T00:00:00Z"));
        for (bad, why) in [
            ("2024-05-01T12:00Z", Refusal::Layout),
            ("2024-05-01T12:00:00", Refusal::Layout),
            ("2024-05-01T12:00:00.Z", Refusal::Layout),
            ("2024-05-01T12:00:00,5Z", Refusal::Layout),
            ("2024-05-01T12:00:00+0200", Refusal::Layout),
            ("20240501T120000Z", Refusal::Layout),
            ("2024-05-01T12:00:00Z[UTC]", Refusal::Layout),
            ("2024-05-01T12:00:61Z", Refusal::Range),
            ("2024-05-01T12:00:00+24:00", Refusal::Range),
            ("2023-02-29T12:00:00Z", Refusal::Range),
        ] {
            assert_eq!(parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn writes_utc_with_the_fraction_it_has() {
        let t = parse("2024-05-01T14:00:00.120+02:00").unwrap().at;
        assert_eq!(format(t), "2024-05-01T12:00:00.12Z");
        assert_eq!(format_secs(t), "2024-05-01T12:00:00Z");
        let before_1970 = Timestamp::from_nanosecond(-500_000_000).unwrap();
        assert_eq!(format(before_1970), "1969-12-31T23:59:59.5Z");
        assert_eq!(format_secs(before_1970), "1969-12-31T23:59:59Z");
    }
}
