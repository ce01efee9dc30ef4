//! nft's lexical rules, exactly where they decide what is code: quoted
//! strings (`"[^"]*"`: no escapes, may span lines), `#` comments to the end
//! of the line (a comment alone on its line also swallows the newline),
//! line continuations (`\` + newline), and the newline and `;` that end a
//! command. Everything else is grouped into words of `[A-Za-z0-9_./:-]` and
//! the punctuation the grammar needs; any other byte is refused here.

use crate::ScreenError;

/// One token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A run of `[A-Za-z0-9_./:-]`.
    Word(&'a str),
    /// A quoted string's content.
    Str(&'a str),
    /// One of `{ } , @ = +`.
    Punct(char),
    /// A newline or `;`: the end of a command, rule or block item.
    Sep,
    /// The end of the text.
    Eof,
}

/// A token and where it starts (1-based).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token<'a> {
    pub(crate) tok: Tok<'a>,
    pub(crate) line: usize,
    pub(crate) col: usize,
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:-".contains(&b)
}

/// The tokens of a text, one at a time.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    line_start: usize,
    /// Only spaces and tabs since the start of the line (flex's `^`).
    bol: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            line_start: 0,
            bol: true,
        }
    }

    fn error(&self, at: usize, message: String) -> ScreenError {
        ScreenError {
            line: self.line,
            column: at - self.line_start + 1,
            message,
        }
    }

    fn newline(&mut self, at: usize) {
        self.line += 1;
        self.line_start = at + 1;
        self.bol = true;
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, ScreenError> {
        let bytes = self.text.as_bytes();
        loop {
            let start = self.pos;
            let token = |lx: &Self, tok| Token {
                tok,
                line: lx.line,
                col: start - lx.line_start + 1,
            };
            let Some(&b) = bytes.get(start) else {
                return Ok(token(self, Tok::Eof));
            };
            match b {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => {
                    let t = token(self, Tok::Sep);
                    self.pos += 1;
                    self.newline(start);
                    return Ok(t);
                }
                b';' => {
                    self.pos += 1;
                    self.bol = false;
                    return Ok(token(self, Tok::Sep));
                }
                b'\\' if bytes.get(start + 1) == Some(&b'\n') => {
                    // A line continuation: nothing, and the next line starts
                    // at its beginning.
                    self.pos += 2;
                    self.newline(start + 1);
                }
                b'#' => {
                    let end = memchr(b'\n', &bytes[start..]).map(|n| start + n);
                    match end {
                        // Alone on its line: the comment takes the newline too.
                        Some(nl) if self.bol => {
                            self.pos = nl + 1;
                            self.newline(nl);
                        }
                        Some(nl) => self.pos = nl,
                        None => self.pos = bytes.len(),
                    }
                }
                b'"' => {
                    let Some(n) = memchr(b'"', &bytes[start + 1..]) else {
                        return Err(self.error(start, "a quoted string is never closed".into()));
                    };
                    let end = start + 1 + n;
                    let t = token(self, Tok::Str(&self.text[start + 1..end]));
                    // A string may span lines.
                    for (i, _) in self.text[start + 1..end].match_indices('\n') {
                        self.line += 1;
                        self.line_start = start + 1 + i + 1;
                    }
                    self.pos = end + 1;
                    self.bol = false;
                    return Ok(t);
                }
                // `!=`, the one relational operator rules use (`… != @set`).
                b'!' if bytes.get(start + 1) == Some(&b'=') => {
                    self.pos += 2;
                    self.bol = false;
                    return Ok(token(self, Tok::Word(&self.text[start..start + 2])));
                }
                b'{' | b'}' | b',' | b'@' | b'=' | b'+' => {
                    self.pos += 1;
                    self.bol = false;
                    return Ok(token(self, Tok::Punct(b as char)));
                }
                b'$' => {
                    return Err(self.error(
                        start,
                        "`$` (a variable) is not allowed: rules.nft is plain rules, without define"
                            .into(),
                    ));
                }
                b if word_byte(b) => {
                    let len = bytes[start..].iter().take_while(|b| word_byte(**b)).count();
                    self.pos += len;
                    self.bol = false;
                    return Ok(token(self, Tok::Word(&self.text[start..start + len])));
                }
                _ => {
                    let c = self.text[start..].chars().next().unwrap_or('?');
                    return Err(self.error(
                        start,
                        format!("character {} is not allowed here", c.escape_debug()),
                    ));
                }
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok<'_>> {
        let mut lx = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap().tok;
            if t == Tok::Eof {
                return out;
            }
            out.push(t);
        }
    }

    #[test]
    fn strings_have_no_escapes_and_span_lines() {
        // `\"` does not escape: the string ends at the second quote.
        assert_eq!(
            toks("comment \"a \\\" {\n}"),
            [
                Tok::Word("comment"),
                Tok::Str("a \\"),
                Tok::Punct('{'),
                Tok::Sep,
                Tok::Punct('}')
            ]
        );
        assert_eq!(
            toks("comment \"{\n#\"} x"),
            [
                Tok::Word("comment"),
                Tok::Str("{\n#"),
                Tok::Punct('}'),
                Tok::Word("x")
            ]
        );
        assert!(Lexer::new("comment \"x").next_token().is_ok());
        let mut lx = Lexer::new("comment \"x");
        lx.next_token().unwrap();
        assert!(
            lx.next_token()
                .unwrap_err()
                .message
                .contains("never closed")
        );
    }

    #[test]
    fn comments_continuations_and_separators() {
        // A comment ends at the newline, which still ends the command...
        assert_eq!(
            toks("accept # \"{\ndrop"),
            [Tok::Word("accept"), Tok::Sep, Tok::Word("drop")]
        );
        // ...unless the comment is alone on its line: then it swallows it.
        assert_eq!(
            toks("a \\\n  # x\nb;c"),
            [Tok::Word("a"), Tok::Word("b"), Tok::Sep, Tok::Word("c")]
        );
        // A backslash ending a comment continues nothing.
        assert_eq!(
            toks("a # x \\\nb"),
            [Tok::Word("a"), Tok::Sep, Tok::Word("b")]
        );
        assert_eq!(
            toks("ip saddr @s_v4 10.0.0.0/24,fd00::1-fd00::9 @x{"),
            [
                Tok::Word("ip"),
                Tok::Word("saddr"),
                Tok::Punct('@'),
                Tok::Word("s_v4"),
                Tok::Word("10.0.0.0/24"),
                Tok::Punct(','),
                Tok::Word("fd00::1-fd00::9"),
                Tok::Punct('@'),
                Tok::Word("x"),
                Tok::Punct('{')
            ]
        );
    }

    #[test]
    fn refuses_variables_and_stray_bytes() {
        for (text, want) in [
            ("$x", "variable"),
            ("a\rb", "\\r"),
            ("a \\ b", "\\\\"),
            ("é", "é"),
            ("a[1]", "["),
        ] {
            let mut lx = Lexer::new(text);
            let e = loop {
                match lx.next_token() {
                    Ok(t) if t.tok == Tok::Eof => panic!("{text}: no error"),
                    Ok(_) => {}
                    Err(e) => break e,
                }
            };
            assert!(e.message.contains(want), "{text}: {}", e.message);
        }
    }
}
