//! Times in bundles: RFC 3339, UTC, whole seconds (`2026-01-01T00:00:00Z`),
//! read and written by `ringfence_schema::time`.
//!
//! The compiler never reads the clock; callers pass a `SystemTime` in and get
//! the string that goes into the signed payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringfence_schema::time;

/// The first instant RFC 3339 cannot write (year 10000).
const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);

/// Parse an RFC 3339 UTC time from 1970 on (`2026-01-01T00:00:00Z`;
/// fractions and `+00:00` are accepted, other offsets are not).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    let err =
        |why: &str| format!("`{s}` is not an RFC 3339 UTC time like 2026-01-01T00:00:00Z ({why})");
    let t = time::parse(s).map_err(|r| err(&r.to_string()))?;
    if t.offset_secs != 0 {
        return Err(err("the offset is not Z or +00:00"));
    }
    let at = SystemTime::from(t.at);
    if at < UNIX_EPOCH {
        return Err(err("it is before 1970"));
    }
    Ok(at)
}

/// Write a time as RFC 3339 UTC, truncated to whole seconds. `None` before
/// 1970 or from year 10000 on, which RFC 3339 cannot express.
pub fn format_time(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    if since >= YEAR_10000 {
        return None;
    }
    Some(time::format_secs(time::Timestamp::try_from(t).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds_and_refuses_what_rfc3339_cannot_say() {
        let t = parse_time("2026-03-04T05:06:07Z").unwrap();
        assert_eq!(format_time(t).unwrap(), "2026-03-04T05:06:07Z");
        let frac = t + Duration::from_millis(999);
        assert_eq!(format_time(frac).unwrap(), "2026-03-04T05:06:07Z");
        assert_eq!(parse_time("2026-03-04T05:06:07.999+00:00").unwrap(), frac);
        assert_eq!(format_time(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(format_time(UNIX_EPOCH + YEAR_10000), None);
        assert!(parse_time("2026-03-04 05:06:07").is_err());
        assert!(parse_time("").is_err());
        let e = parse_time("2026-03-04T05:06:07+02:00").unwrap_err();
        assert!(e.contains("not Z or +00:00"), "{e}");
        let e = parse_time("1969-12-31T23:59:59Z").unwrap_err();
        assert!(e.contains("before 1970"), "{e}");
        let e = parse_time("2026-02-29T00:00:00Z").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }
}
