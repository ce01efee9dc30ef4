//! [`Window`]: the time range a run reads (`--since`, `--until`).
//!
//! A flow belongs to the window when its `first_seen` does: `since` included,
//! `until` excluded. Files and tables apply the same rule, so the same flows
//! give the same result from either.

use std::fmt;

use crate::time::Timestamp;

/// `[since, until)` on `first_seen`; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Flows that started before this are left out.
    pub since: Option<Timestamp>,
    /// Flows that started at or after this are left out.
    pub until: Option<Timestamp>,
}

impl Window {
    /// A window; `Err` names the flags when `since` is not before `until`.
    pub fn new(since: Option<Timestamp>, until: Option<Timestamp>) -> Result<Self, String> {
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(format!(
                "`--since {s}` is not before `--until {u}`: the window holds no flow"
            ));
        }
        Ok(Window { since, until })
    }

    /// Whether a flow that started at `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// Whether both ends are open.
    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.since, self.until) {
            (None, None) => f.write_str("all time"),
            (Some(s), None) => write!(f, "since {s}"),
            (None, Some(u)) => write!(f, "until {u}"),
            (Some(s), Some(u)) => write!(f, "{s} to {u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_included_until_is_not() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let w = Window::new(
            Some(t("2024-05-01T12:00:00Z")),
            Some(t("2024-05-01T13:00:00Z")),
        )
        .unwrap();
        assert!(w.contains(t("2024-05-01T12:00:00Z")));
        assert!(w.contains(t("2024-05-01T12:59:59.999999999Z")));
        assert!(!w.contains(t("2024-05-01T13:00:00Z")));
        assert!(!w.contains(t("2024-05-01T11:59:59Z")));
        assert!(Window::default().contains(t("1970-01-01T00:00:00Z")));
        let e = Window::new(w.until, w.since).unwrap_err();
        assert!(e.contains("is not before"), "{e}");
    }
}
