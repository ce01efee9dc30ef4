//! The HTTP interface: one POST per statement, answers streamed. Every
//! failure becomes a [`ClickHouseError`] that names the table.

use std::io::Read;
use std::time::Duration;

use base64::Engine;

use super::TableUrl;
use super::error::ClickHouseError;

/// How much of an error answer is read.
const MAX_ERROR: u64 = 64 << 10;
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one server, as one user.
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    pub(crate) url: TableUrl,
    auth: String,
}

/// What a statement sends besides its query string.
pub(crate) enum Body<'a> {
    /// Nothing: the statement is in the query string.
    None,
    /// Data for `INSERT … FORMAT RowBinary`.
    Data(&'a [u8]),
    /// External tables (`name`, RowBinary rows) for the query to read.
    External(&'a [(&'a str, &'a [u8])]),
}

/// Percent-encode a query-string value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub(crate) fn new(url: &TableUrl) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .build()
            .new_agent();
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            url.user,
            url.password.as_deref().unwrap_or("")
        ));
        Client {
            agent,
            url: url.clone(),
            auth: format!("Basic {token}"),
        }
    }

    /// Run one statement; on success its answer, streamed.
    ///
    /// `wait_end_of_query` has the server finish (and buffer) the answer
    /// before sending it, so an error is always an HTTP error, never text
    /// in the middle of the rows.
    pub(crate) fn post(
        &self,
        query: &str,
        params: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<impl Read + use<>, ClickHouseError> {
        let mut uri = format!(
            "http://{}/?wait_end_of_query=1&query={}",
            self.url.authority(),
            encode(query)
        );
        for (k, v) in params {
            uri.push_str(&format!("&{k}={}", encode(v)));
        }
        let req = self.agent.post(&uri).header("Authorization", &self.auth);
        let sent = match body {
            Body::None => req.send_empty(),
            Body::Data(d) => req
                .header("Content-Type", "application/octet-stream")
                .send(d),
            Body::External(tables) => {
                let (boundary, form) = multipart(tables);
                req.header(
                    "Content-Type",
                    &format!("multipart/form-data; boundary={boundary}"),
                )
                .send(&form[..])
            }
        };
        let resp = sent.map_err(|e| ClickHouseError::Unreachable {
            url: Box::new(self.url.clone()),
            server: self.url.authority(),
            why: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp.into_body();
        if status == 200 {
            return Ok(body.into_reader());
        }
        let mut text = String::new();
        let _ = body.into_reader().take(MAX_ERROR).read_to_string(&mut text);
        Err(ClickHouseError::from_server(&self.url, status, &text))
    }

    /// Run a statement and read its whole (small) answer as text.
    pub(crate) fn text(&self, query: &str) -> Result<String, ClickHouseError> {
        let mut text = String::new();
        self.post(query, &[], Body::None)?
            .take(MAX_ERROR)
            .read_to_string(&mut text)
            .map_err(|e| ClickHouseError::answer(&self.url, format!("reading the answer: {e}")))?;
        Ok(text)
    }
}

/// A multipart form holding one file per external table.
fn multipart(tables: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut n = 0u32;
    let boundary = loop {
        let b = format!("ringfence-{n:08x}-boundary");
        if tables
            .iter()
            .all(|(_, rows)| memchr::memmem::find(rows, b.as_bytes()).is_none())
        {
            break b;
        }
        n += 1;
    };
    let mut form = Vec::with_capacity(tables.iter().map(|t| t.1.len() + 256).sum());
    for (name, rows) in tables {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        form.extend_from_slice(rows);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("SELECT 1 FORMAT TSV"), "SELECT%201%20FORMAT%20TSV");
        assert_eq!(encode("a&b=c/é"), "a%26b%3Dc%2F%C3%A9");
    }

    #[test]
    fn the_boundary_never_occurs_in_the_rows() {
        let rows = b"xx ringfence-00000000-boundary yy".to_vec();
        let (b, form) = multipart(&[("set", &rows[..])]);
        assert_eq!(b, "ringfence-00000001-boundary");
        assert!(form.ends_with(b"\r\n--ringfence-00000001-boundary--\r\n"));
    }
}
