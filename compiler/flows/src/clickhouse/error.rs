//! What can go wrong with a flow table, each said with what to do about it.

use super::TableUrl;

/// A flow table that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClickHouseError {
    /// The argument is not a table URL.
    #[error("--flows {0}")]
    Url(String),
    /// No HTTP answer from the server.
    #[error(
        "{url}: cannot reach the ClickHouse server at {server} ({why}); is it running, and is \
         {server} its HTTP port (`http_port`, 8123 by default, not the native 9000)?"
    )]
    Unreachable {
        /// The table.
        url: Box<TableUrl>,
        /// `host:port`.
        server: String,
        /// What the connection said.
        why: String,
    },
    /// The server refused the user or password.
    #[error(
        "{url}: the server refused user `{user}` ({said}); give the right user and password in \
         the URL (clickhouse://USER:PASSWORD@host:port/database.table)"
    )]
    Auth {
        /// The table.
        url: Box<TableUrl>,
        /// The user.
        user: String,
        /// What the server said.
        said: String,
    },
    /// The database or the table does not exist.
    #[error("{url}: {what} does not exist on {server}; {hint}")]
    Missing {
        /// The table.
        url: Box<TableUrl>,
        /// `database x` or `table x.y`.
        what: String,
        /// `host:port`.
        server: String,
        /// What to do.
        hint: &'static str,
    },
    /// The table's columns are neither ringfence's nor Theia's.
    #[error("{url}: {problems}; see schema/docs/flows.md for the columns of each layout")]
    Columns {
        /// The table.
        url: Box<TableUrl>,
        /// Every column that is missing or of another type.
        problems: String,
    },
    /// The query needed more memory than the server allows it.
    #[error(
        "{url}: the query needed more memory than the server allows ({said}); read a shorter \
         time range (--since, --until) or raise `max_memory_usage` for this user on the server"
    )]
    Memory {
        /// The table.
        url: Box<TableUrl>,
        /// What the server said.
        said: String,
    },
    /// Any other error the server reported.
    #[error("{url}: the server failed the query: {said}")]
    Server {
        /// The table.
        url: Box<TableUrl>,
        /// What the server said.
        said: String,
    },
    /// The answer could not be read.
    #[error("{url}: {why}")]
    Answer {
        /// The table.
        url: Box<TableUrl>,
        /// What is wrong with it.
        why: String,
    },
}

impl ClickHouseError {
    /// The error the server's exception text stands for (`Code: N. …` or
    /// `Code: N, e.displayText() = …`).
    pub(crate) fn from_server(url: &TableUrl, status: u16, body: &str) -> Self {
        let said: String = body.trim().chars().take(600).collect();
        let code = body
            .split("Code: ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse::<u32>().ok());
        match code {
            // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD,
            // IP_ADDRESS_NOT_ALLOWED, AUTHENTICATION_FAILED.
            Some(192..=195 | 516) => ClickHouseError::Auth {
                url: Box::new(url.clone()),
                user: url.user.clone(),
                said,
            },
            // MEMORY_LIMIT_EXCEEDED.
            Some(241) => ClickHouseError::Memory {
                url: Box::new(url.clone()),
                said,
            },
            // UNKNOWN_DATABASE.
            Some(81) => missing_database(url),
            // UNKNOWN_TABLE.
            Some(60) => missing_table(url),
            _ if status == 401 || status == 403 => ClickHouseError::Auth {
                url: Box::new(url.clone()),
                user: url.user.clone(),
                said,
            },
            _ => ClickHouseError::Server {
                url: Box::new(url.clone()),
                said: if said.is_empty() {
                    format!("HTTP status {status}")
                } else {
                    said
                },
            },
        }
    }

    /// An answer that cannot be used, and why.
    pub fn answer(url: &TableUrl, why: impl Into<String>) -> Self {
        ClickHouseError::Answer {
            url: Box::new(url.clone()),
            why: why.into(),
        }
    }
}

pub(crate) fn missing_database(url: &TableUrl) -> ClickHouseError {
    ClickHouseError::Missing {
        url: Box::new(url.clone()),
        what: format!("database `{}`", url.database),
        server: url.authority(),
        hint: "check the database name in the URL",
    }
}

pub(crate) fn missing_table(url: &TableUrl) -> ClickHouseError {
    ClickHouseError::Missing {
        url: Box::new(url.clone()),
        what: format!("table `{}.{}`", url.database, url.table),
        server: url.authority(),
        hint: "check the name, or create it with the DDL in schema/docs/flows.md \
               (`ringfence flows load` creates it)",
    }
}
