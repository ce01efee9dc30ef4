//! `clickhouse://[user[:password]@]host:port/database.table`: where a flow
//! table lives. The password never appears in messages ([`TableUrl`]'s
//! `Display` leaves it out).

use std::fmt;
use std::str::FromStr;

/// A table on a ClickHouse server, reached over its HTTP interface.
#[derive(Clone, PartialEq, Eq)]
pub struct TableUrl {
    /// User name (`default` when the URL names none).
    pub user: String,
    /// Password (percent-decoded), if given.
    pub password: Option<String>,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// HTTP port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Table.
    pub table: String,
}

/// The scheme flow sources use.
pub(crate) const SCHEME: &str = "clickhouse://";

impl TableUrl {
    /// Whether an argument names a table rather than a file.
    pub fn is_table(arg: &str) -> bool {
        arg.starts_with(SCHEME)
    }

    /// `database.table`, quoted for SQL.
    pub(crate) fn sql_name(&self) -> String {
        format!("`{}`.`{}`", self.database, self.table)
    }

    /// `host:port` as an HTTP authority.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for TableUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}")?;
        if self.user != "default" || self.password.is_some() {
            write!(f, "{}@", self.user)?;
        }
        write!(f, "{}/{}.{}", self.authority(), self.database, self.table)
    }
}

impl fmt::Debug for TableUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `%XX` escapes, for user names and passwords with reserved characters.
fn decode(s: &str, what: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("the {what} has a `%` not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} is not UTF-8 once decoded"))
}

/// A database or table name: letters, digits and `_`, not starting with a digit.
fn identifier(s: &str, what: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a {what} name ringfence accepts (letters, digits and `_`)"
        ))
    }
}

impl FromStr for TableUrl {
    type Err = String;

    /// Parse a URL; the message says what is wrong and shows the form.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "clickhouse://[user[:password]@]host:port/database.table";
        let fail = |why: String| format!("`{}`: {why} (expected {FORM})", redact(s));
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| fail("not a clickhouse:// URL".into()))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| fail("no /database.table".into()))?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("default".to_string(), None),
            Some(u) => {
                let (name, pass) = match u.split_once(':') {
                    Some((n, p)) => (n, Some(decode(p, "password").map_err(fail)?)),
                    None => (u, None),
                };
                let name = decode(name, "user name").map_err(fail)?;
                if name.is_empty() {
                    return Err(fail("the user name is empty".into()));
                }
                (name, pass)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| fail("an IPv6 host without its closing `]`".into()))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(p))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.to_string(), ""),
            }
        };
        if host.is_empty() {
            return Err(fail("no host".into()));
        }
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
            fail(format!(
                "`{port}` is not a port (the HTTP port, 8123 by default)"
            ))
        })?;
        let (database, table) = path
            .split_once('.')
            .ok_or_else(|| fail(format!("`{path}` is not database.table")))?;
        Ok(TableUrl {
            user,
            password,
            host,
            port,
            database: identifier(database, "database").map_err(fail)?,
            table: identifier(table, "table").map_err(fail)?,
        })
    }
}

/// A URL as given, without its password.
fn redact(s: &str) -> String {
    let Some(rest) = s.strip_prefix(SCHEME) else {
        return s.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{SCHEME}{user}:***{}", &rest[at..]),
            None => s.to_string(),
        },
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let u: TableUrl = "clickhouse://ringfence:p%40ss:w@ch.example:8123/netflow.flows_all"
            .parse()
            .unwrap();
        assert_eq!(u.user, "ringfence");
        assert_eq!(u.password.as_deref(), Some("p@ss:w"));
        assert_eq!((u.host.as_str(), u.port), ("ch.example", 8123));
        assert_eq!(
            (u.database.as_str(), u.table.as_str()),
            ("netflow", "flows_all")
        );
        assert_eq!(
            u.to_string(),
            "clickhouse://ringfence@ch.example:8123/netflow.flows_all"
        );
        let u: TableUrl = "clickhouse://[::1]:9000/default.flows".parse().unwrap();
        assert_eq!((u.host.as_str(), u.user.as_str()), ("::1", "default"));
        assert_eq!(u.authority(), "[::1]:9000");
        assert_eq!(u.to_string(), "clickhouse://[::1]:9000/default.flows");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (bad, why) in [
            ("clickhouse://h:8123/flows", "is not database.table"),
            ("clickhouse://h/default.flows", "is not a port"),
            ("clickhouse://h:0/default.flows", "is not a port"),
            ("clickhouse://h:8123", "no /database.table"),
            ("clickhouse://h:8123/default.fl-ows", "not a table name"),
            ("clickhouse://h:8123/1db.flows", "not a database name"),
            ("clickhouse://u:secret@:8123/d.t", "no host"),
            ("clickhouse://u:se%zzt@h:8123/d.t", "two hex digits"),
            ("clickhouse://[::1:8123/d.t", "closing `]`"),
        ] {
            let e = bad.parse::<TableUrl>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("expected clickhouse://"), "{e}");
            assert!(!e.contains("secret") && !e.contains("se%zzt"), "{e}");
        }
    }
}
