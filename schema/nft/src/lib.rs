//! The screen every nftables ruleset passes before the compiler signs it and
//! before the agent loads it: a `rules.nft` may change `table inet ringfence`
//! and nothing else.
//!
//! It is an allowlist, not a search for bad words. [`lex`] splits the text
//! by nft's own lexical rules (quoted strings without escapes that may span
//! lines, `#` comments, line continuations), so braces or `#` inside a string
//! cannot move what is seen as code. The grammar then accepts only what a
//! ringfence ruleset is made of:
//!
//! - top level: `table inet ringfence [{ … }]`, `add|create table …`,
//!   `delete|flush table inet ringfence`, `add|create set|map|chain inet
//!   ringfence NAME …`, `add|delete element inet ringfence NAME { … }`,
//!   `add|insert rule inet ringfence CHAIN …` — every command names our
//!   table, so no other family or table is reachable;
//! - in the table: `set`, `map` and `chain` blocks only (no table `flags`:
//!   `dormant` would switch every rule off);
//! - in sets and maps: `type`, `flags interval|constant`, `size`,
//!   `auto-merge`, `policy`, `elements = { … }` of literal values and, in
//!   maps, verdicts;
//! - in chains: `type filter hook … priority …`, `policy accept|drop`, and
//!   rules made of the backend's vocabulary: payload, `meta`, `ct` and ICMP
//!   matches (and `!=`), literals, `@set` references, anonymous sets and verdict maps,
//!   `counter`, `log prefix "…"`, `comment "…"` and the verdicts `accept`,
//!   `drop`, `return`, `continue`, `jump`/`goto` a chain (which nft resolves
//!   in the same table).
//!
//! Refused among everything else: `include` (nft would read any file as
//! root), `define`/`redefine`/`undefine` and `$` variables, `ruleset`,
//! statements with effects beyond a verdict (`dup`, `fwd`, `queue`, NAT,
//! `notrack`, `meta … set`, `ct … set`), quoted strings anywhere but after
//! `comment` or `log prefix`, and bytes outside printable ASCII, tab and
//! newline (except inside strings and comments).

mod lex;
pub mod membership;

use std::fmt;

use lex::{Lexer, Tok, Token};

/// The family of the one table a ruleset may change.
pub const FAMILY: &str = "inet";
/// The name of the one table a ruleset may change.
pub const TABLE: &str = "ringfence";

/// Why a ruleset was refused, and where (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenError {
    /// Line of the offending token.
    pub line: usize,
    /// Column (byte) of the offending token.
    pub column: usize,
    /// What is wrong, naming the token (shortened, escaped).
    pub message: String,
}

impl fmt::Display for ScreenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ScreenError {}

/// Accept `text` only if every command in it stays inside
/// `table inet ringfence` and uses the vocabulary above.
pub fn screen(text: &str) -> Result<(), ScreenError> {
    screen_with(text, Parser::command)
}

/// Accept `text` only if it is a membership change: nothing but
/// `add element` / `delete element` on a set or map of `table inet
/// ringfence`, with literal values and, in maps, verdicts. No table, chain,
/// set or rule can be created, flushed or deleted through it: what an agent
/// loads for a membership key ([`membership::changes`]) passes this screen.
pub fn screen_elements(text: &str) -> Result<(), ScreenError> {
    screen_with(text, Parser::element_command)
}

/// Every command of `text`, each read by `command`.
fn screen_with<'a>(text: &'a str, command: fn(&mut Parser<'a>) -> Res) -> Res {
    let mut p = Parser::new(text)?;
    loop {
        match p.cur.tok {
            Tok::Eof => return Ok(()),
            Tok::Sep => p.bump()?,
            _ => {
                command(&mut p)?;
                p.end_of_item("a command")?;
            }
        }
    }
}

/// A token as an error message shows it: short, escaped.
fn show(tok: Tok<'_>) -> String {
    let short = |s: &str| {
        let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
        if s.chars().count() > 40 {
            out.push('…');
        }
        out
    };
    match tok {
        Tok::Word(w) => format!("`{}`", short(w)),
        Tok::Str(s) => format!("the string \"{}\"", short(s)),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Sep => "the end of the line".into(),
        Tok::Eof => "the end of the file".into(),
    }
}

const HOOKS: &[&str] = &["prerouting", "input", "forward", "output", "postrouting"];
const PRIORITIES: &[&str] = &["raw", "mangle", "dstnat", "filter", "security", "srcnat"];
const SET_TYPES: &[&str] = &[
    "ipv4_addr",
    "ipv6_addr",
    "inet_service",
    "inet_proto",
    "ifname",
    "mark",
    "ether_addr",
];
const SET_FLAGS: &[&str] = &["interval", "constant"];
const VERDICTS: &[&str] = &["accept", "drop", "return", "continue"];
/// Words that select what a rule matches.
const MATCHES: &[&str] = &[
    "ip",
    "ip6",
    "tcp",
    "udp",
    "sctp",
    "udplite",
    "th",
    "icmp",
    "icmpv6",
    "meta",
    "ct",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "l4proto",
    "nfproto",
    "protocol",
    "nexthdr",
    "iifname",
    "oifname",
    "length",
    "type",
    "code",
    "original",
    "reply",
    "proto-src",
    "proto-dst",
];
/// Symbolic values: protocols, address families and ICMP types.
const CONSTANTS: &[&str] = &[
    "tcp",
    "udp",
    "sctp",
    "udplite",
    "icmp",
    "icmpv6",
    "ipv6-icmp",
    "igmp",
    "ipv4",
    "ipv6",
    "echo-request",
    "echo-reply",
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
    "packet-too-big",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-redirect",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
];
const CT_STATES: &[&str] = &["established", "related", "new", "invalid", "untracked"];
const CT_STATUSES: &[&str] = &[
    "expected",
    "seen-reply",
    "assured",
    "confirmed",
    "snat",
    "dnat",
    "dying",
];
const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

/// Recursive descent over the tokens, one token of lookahead.
struct Parser<'a> {
    lx: Lexer<'a>,
    cur: Token<'a>,
}

type Res<T = ()> = Result<T, ScreenError>;

/// What an element list may hold besides values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Elems {
    /// A set's: values only.
    Set,
    /// A map's: each value `: verdict`.
    Map,
    /// An anonymous set or verdict map in a rule: either.
    Anonymous,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Res<Self> {
        let mut lx = Lexer::new(text);
        let cur = lx.next_token()?;
        Ok(Parser { lx, cur })
    }

    fn bump(&mut self) -> Res {
        self.cur = self.lx.next_token()?;
        Ok(())
    }

    /// Take the current token.
    fn take(&mut self) -> Res<Token<'a>> {
        let t = self.cur;
        self.bump()?;
        Ok(t)
    }

    fn err<T>(&self, t: Token<'_>, message: String) -> Res<T> {
        Err(ScreenError {
            line: t.line,
            column: t.col,
            message,
        })
    }

    fn unexpected<T>(&self, t: Token<'_>, wanted: &str) -> Res<T> {
        match t.tok {
            Tok::Word("include") => self.err(
                t,
                "`include` would make nft read another file: not allowed".into(),
            ),
            Tok::Word(w @ ("define" | "redefine" | "undefine")) => self.err(
                t,
                format!("`{w}` (variables) is not allowed: rules.nft is plain rules"),
            ),
            _ => self.err(t, format!("{} where {wanted} belongs", show(t.tok))),
        }
    }

    /// The next token must be the word `w`.
    fn keyword(&mut self, w: &str) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(x) if x == w => Ok(()),
            _ => self.unexpected(t, &format!("`{w}`")),
        }
    }

    /// The next token must be one of `words`; returns it.
    fn one_of(&mut self, words: &[&str], what: &str) -> Res<&'a str> {
        let t = self.take()?;
        match t.tok {
            Tok::Word(x) if words.contains(&x) => Ok(x),
            _ => self.err(
                t,
                format!(
                    "{} where {what} belongs ({})",
                    show(t.tok),
                    words.join(", ")
                ),
            ),
        }
    }

    fn punct(&mut self, c: char) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Punct(x) if x == c => Ok(()),
            _ => self.unexpected(t, &format!("`{c}`")),
        }
    }

    /// A set, map or chain name.
    fn name(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(w) if is_name(w) => Ok(()),
            _ => self.unexpected(t, "a name ([A-Za-z0-9_-]+)"),
        }
    }

    fn string(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Str(_) => Ok(()),
            _ => self.unexpected(t, "a quoted string"),
        }
    }

    fn number(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(w) if is_number(w) => Ok(()),
            _ => self.unexpected(t, "a number"),
        }
    }

    /// An item ends at a newline or `;`, a closing brace, or the end.
    fn end_of_item(&self, what: &str) -> Res {
        match self.cur.tok {
            Tok::Sep | Tok::Eof | Tok::Punct('}') => Ok(()),
            _ => self.err(
                self.cur,
                format!(
                    "{} after {what}: expected a new line or `;`",
                    show(self.cur.tok)
                ),
            ),
        }
    }

    /// `inet ringfence`: the only table any command may name.
    fn our_table(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(FAMILY) => {}
            Tok::Word(_) => {
                return self.err(
                    t,
                    format!(
                        "family {} is not {FAMILY}: only table {FAMILY} {TABLE} may be changed",
                        show(t.tok)
                    ),
                );
            }
            _ => return self.unexpected(t, "the family `inet`"),
        }
        let t = self.take()?;
        match t.tok {
            Tok::Word(TABLE) => Ok(()),
            _ => self.err(
                t,
                format!(
                    "table {} is not {TABLE}: only table {FAMILY} {TABLE} may be changed",
                    show(t.tok)
                ),
            ),
        }
    }

    fn command(&mut self) -> Res {
        let t = self.take()?;
        let Tok::Word(verb) = t.tok else {
            return self.unexpected(t, "a command");
        };
        match verb {
            "table" => {
                self.our_table()?;
                self.opt_block(Self::table_body)
            }
            "add" | "create" | "insert" | "delete" | "flush" => {
                let o = self.take()?;
                let Tok::Word(object) = o.tok else {
                    return self.unexpected(o, "table, set, map, chain, element or rule");
                };
                match (verb, object) {
                    ("add" | "create", "table") => {
                        self.our_table()?;
                        self.opt_block(Self::table_body)
                    }
                    ("delete" | "flush", "table") => self.our_table(),
                    ("add" | "create", "set" | "map") => {
                        self.our_table()?;
                        self.name()?;
                        self.set_body(object == "map")
                    }
                    ("add" | "create", "chain") => {
                        self.our_table()?;
                        self.name()?;
                        self.opt_block(Self::chain_body)
                    }
                    ("add" | "delete", "element") => {
                        self.our_table()?;
                        self.name()?;
                        self.punct('{')?;
                        self.elements(Elems::Anonymous)
                    }
                    ("add" | "insert", "rule") => {
                        self.our_table()?;
                        self.name()?;
                        self.rule()
                    }
                    _ => self.err(
                        o,
                        format!(
                            "`{verb} {}` is not a command a ringfence ruleset uses",
                            show(o.tok).trim_matches('`')
                        ),
                    ),
                }
            }
            "include" | "define" | "redefine" | "undefine" => self.unexpected(t, "a command"),
            _ => self.err(
                t,
                format!(
                    "{} is not a command a ringfence ruleset uses (only table, add, create, insert, delete and flush on table {FAMILY} {TABLE})",
                    show(t.tok)
                ),
            ),
        }
    }

    /// `add|delete element inet ringfence NAME { … }`, and nothing else.
    fn element_command(&mut self) -> Res {
        let t = self.take()?;
        let o = self.take()?;
        match (t.tok, o.tok) {
            (Tok::Word("add" | "delete"), Tok::Word("element")) => {
                self.our_table()?;
                self.name()?;
                self.punct('{')?;
                self.elements(Elems::Anonymous)
            }
            _ => self.err(
                t,
                format!(
                    "{} is not a membership change: only `add element` and `delete element` on table {FAMILY} {TABLE}",
                    show(t.tok)
                ),
            ),
        }
    }

    fn opt_block(&mut self, body: fn(&mut Self) -> Res) -> Res {
        match self.cur.tok {
            Tok::Punct('{') => body(self),
            _ => Ok(()),
        }
    }

    /// `{ set … | map … | chain … }`.
    fn table_body(&mut self) -> Res {
        self.punct('{')?;
        loop {
            let t = self.take()?;
            match t.tok {
                Tok::Sep => continue,
                Tok::Punct('}') => return Ok(()),
                Tok::Word(k @ ("set" | "map")) => {
                    self.name()?;
                    self.set_body(k == "map")?;
                }
                Tok::Word("chain") => {
                    self.name()?;
                    self.chain_body()?;
                }
                Tok::Word("flags") => {
                    return self.err(
                        t,
                        "table flags are not allowed (`dormant` switches every rule off)".into(),
                    );
                }
                _ => return self.unexpected(t, "`set`, `map`, `chain` or `}`"),
            }
            self.end_of_item("a table item")?;
        }
    }

    /// A named set's or map's block.
    fn set_body(&mut self, map: bool) -> Res {
        self.punct('{')?;
        loop {
            let t = self.take()?;
            match t.tok {
                Tok::Sep => continue,
                Tok::Punct('}') => return Ok(()),
                Tok::Word("type") => {
                    self.one_of(SET_TYPES, "a set type")?;
                    while self.cur.tok == Tok::Word(".") {
                        self.bump()?;
                        self.one_of(SET_TYPES, "a set type")?;
                    }
                    if map {
                        self.keyword(":")?;
                        let mut types = SET_TYPES.to_vec();
                        types.push("verdict");
                        self.one_of(&types, "a map's value type")?;
                    }
                }
                Tok::Word("flags") => {
                    self.one_of(SET_FLAGS, "a set flag")?;
                    while self.cur.tok == Tok::Punct(',') {
                        self.bump()?;
                        self.one_of(SET_FLAGS, "a set flag")?;
                    }
                }
                Tok::Word("size") => self.number()?,
                Tok::Word("auto-merge") => {}
                Tok::Word("policy") => {
                    self.one_of(&["performance", "memory"], "a set policy")?;
                }
                Tok::Word("elements") => {
                    self.punct('=')?;
                    self.punct('{')?;
                    self.elements(if map { Elems::Map } else { Elems::Set })?;
                }
                Tok::Word("comment") => self.string()?,
                _ => return self.unexpected(t, "a set's type, flags, size or elements"),
            }
            self.end_of_item("a set item")?;
        }
    }

    /// Elements up to the closing brace (the opening one is taken).
    fn elements(&mut self, kind: Elems) -> Res {
        loop {
            while self.cur.tok == Tok::Sep {
                self.bump()?;
            }
            if self.cur.tok == Tok::Punct('}') {
                return self.bump();
            }
            self.value()?;
            while self.cur.tok == Tok::Word(".") {
                self.bump()?;
                self.value()?;
            }
            match (kind, self.cur.tok) {
                (Elems::Map | Elems::Anonymous, Tok::Word(":")) => {
                    self.bump()?;
                    self.verdict()?;
                }
                (Elems::Map, _) => return self.unexpected(self.cur, "`:` and a verdict"),
                _ => {}
            }
            while self.cur.tok == Tok::Sep {
                self.bump()?;
            }
            let t = self.take()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct('}') => return Ok(()),
                _ => return self.unexpected(t, "`,` or `}`"),
            }
        }
    }

    /// A literal value: number, port range, address, prefix, address
    /// range, or a symbolic constant.
    fn value(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(w) if is_literal(w) => Ok(()),
            _ => self.unexpected(t, "a literal value"),
        }
    }

    fn verdict(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(v) if VERDICTS.contains(&v) => Ok(()),
            Tok::Word("jump" | "goto") => self.name(),
            _ => self.unexpected(t, "a verdict (accept, drop, return, continue, jump, goto)"),
        }
    }

    /// A chain's block: its type line, its policy, its rules.
    fn chain_body(&mut self) -> Res {
        self.punct('{')?;
        loop {
            match self.cur.tok {
                Tok::Sep => {
                    self.bump()?;
                    continue;
                }
                Tok::Punct('}') => return self.bump(),
                Tok::Word("type") => {
                    self.bump()?;
                    self.keyword("filter")?;
                    self.keyword("hook")?;
                    self.one_of(HOOKS, "a hook")?;
                    self.keyword("priority")?;
                    self.priority()?;
                }
                Tok::Word("policy") => {
                    self.bump()?;
                    self.one_of(&["accept", "drop"], "a chain policy")?;
                }
                _ => self.rule()?,
            }
            self.end_of_item("a chain item")?;
        }
    }

    /// `filter`, `filter + 10`, `filter - 10`, `-10`, `0`.
    fn priority(&mut self) -> Res {
        let t = self.take()?;
        match t.tok {
            Tok::Word(w) if PRIORITIES.contains(&w) => {
                if matches!(self.cur.tok, Tok::Punct('+') | Tok::Word("-")) {
                    self.bump()?;
                    self.number()?;
                }
                Ok(())
            }
            Tok::Word(w) if is_number(w.strip_prefix('-').unwrap_or(w)) => Ok(()),
            _ => self.unexpected(t, "a priority"),
        }
    }

    /// One rule, up to the end of its line, `;` or the chain's `}`.
    fn rule(&mut self) -> Res {
        if matches!(self.cur.tok, Tok::Sep | Tok::Eof | Tok::Punct('}')) {
            return self.unexpected(self.cur, "a rule");
        }
        while !matches!(self.cur.tok, Tok::Sep | Tok::Eof | Tok::Punct('}')) {
            let t = self.take()?;
            match t.tok {
                Tok::Word(v) if VERDICTS.contains(&v) => {}
                Tok::Word("jump" | "goto") => self.name()?,
                Tok::Word("counter") => {
                    while let Tok::Word("packets" | "bytes") = self.cur.tok {
                        self.bump()?;
                        self.number()?;
                    }
                }
                Tok::Word("log") => loop {
                    match self.cur.tok {
                        Tok::Word("prefix") => {
                            self.bump()?;
                            self.string()?;
                        }
                        Tok::Word("level") => {
                            self.bump()?;
                            self.one_of(LOG_LEVELS, "a log level")?;
                        }
                        _ => break,
                    }
                },
                Tok::Word("comment") => self.string()?,
                Tok::Word("vmap") => match self.cur.tok {
                    Tok::Punct('@') => {
                        self.bump()?;
                        self.name()?;
                    }
                    _ => {
                        self.punct('{')?;
                        self.elements(Elems::Map)?;
                    }
                },
                Tok::Word("state") => self.symbols(CT_STATES, "a conntrack state")?,
                Tok::Word("status") => self.symbols(CT_STATUSES, "a conntrack status")?,
                Tok::Word(w) if MATCHES.contains(&w) || w == "." || w == "!=" || is_literal(w) => {}
                Tok::Punct('@') => self.name()?,
                Tok::Punct('{') => self.elements(Elems::Anonymous)?,
                Tok::Punct(',') => {}
                Tok::Word("include" | "define" | "redefine" | "undefine") => {
                    return self.unexpected(t, "a rule's next word");
                }
                Tok::Word(_) => {
                    return self.err(
                        t,
                        format!(
                            "{} is not in the rule vocabulary a ringfence ruleset uses (matches, counter, log, comment, verdicts)",
                            show(t.tok)
                        ),
                    );
                }
                Tok::Str(_) => {
                    return self.err(
                        t,
                        format!(
                            "{}: a quoted string may only follow `comment` or `log prefix`",
                            show(t.tok)
                        ),
                    );
                }
                _ => return self.unexpected(t, "a rule's next word"),
            }
        }
        Ok(())
    }

    /// `a,b,c` or `{ a, b }` of `words`.
    fn symbols(&mut self, words: &[&str], what: &str) -> Res {
        if self.cur.tok == Tok::Punct('{') {
            self.bump()?;
            loop {
                while self.cur.tok == Tok::Sep {
                    self.bump()?;
                }
                self.one_of(words, what)?;
                while self.cur.tok == Tok::Sep {
                    self.bump()?;
                }
                let t = self.take()?;
                match t.tok {
                    Tok::Punct(',') => {}
                    Tok::Punct('}') => return Ok(()),
                    _ => return self.unexpected(t, "`,` or `}`"),
                }
            }
        }
        self.one_of(words, what)?;
        while self.cur.tok == Tok::Punct(',') {
            self.bump()?;
            self.one_of(words, what)?;
        }
        Ok(())
    }
}

/// `[A-Za-z0-9_-]{1,255}`.
fn is_name(w: &str) -> bool {
    (1..=255).contains(&w.len())
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decimal or `0x` hexadecimal.
fn is_number(w: &str) -> bool {
    match w.strip_prefix("0x") {
        Some(h) => !h.is_empty() && h.len() <= 16 && h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !w.is_empty() && w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn is_addr(w: &str) -> bool {
    w.parse::<std::net::IpAddr>().is_ok()
}

/// A number, `a-b` of numbers or addresses, an address with an optional
/// `/len`, or a symbolic constant.
fn is_literal(w: &str) -> bool {
    if is_number(w) || is_addr(w) || CONSTANTS.contains(&w) {
        return true;
    }
    if let Some((a, len)) = w.split_once('/') {
        return is_addr(a) && len.len() <= 3 && is_number(len);
    }
    // A range: split at the one `-` that leaves two numbers or addresses
    // (IPv6 addresses hold no `-`, so there is at most one candidate).
    match w.split_once('-') {
        Some((a, b)) => (is_number(a) && is_number(b)) || (is_addr(a) && is_addr(b)),
        None => false,
    }
}

#[cfg(test)]
mod tests;
