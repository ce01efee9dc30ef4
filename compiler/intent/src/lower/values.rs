//! Reading KDL values for lowering: strings, booleans, names, actions,
//! protocols, ports, addresses and references. A reader reports what is
//! wrong with its value and returns `None`.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use kdl::{KdlEntry, KdlValue};

use super::{Entries, Lower};
use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic, did_you_mean};
use crate::model::{Action, PortRange, Proto, Span, port_name_problem};

impl Lower<'_> {
    pub(super) fn invalid_value(&mut self, e: &KdlEntry, message: String, help: String) {
        let d = Diagnostic::error(Code::InvalidValue, message)
            .with_label(self.value_span(e), "invalid value")
            .with_help(help);
        self.push(d);
    }

    // ---- typed values --------------------------------------------------------

    pub(super) fn string(&mut self, e: &KdlEntry, what: &str) -> Option<String> {
        match e.value() {
            KdlValue::String(s) => Some(s.clone()),
            v => {
                self.invalid_value(
                    e,
                    format!("{what} must be a string, not {v}"),
                    format!("quote it: \"{v}\""),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, e: &KdlEntry, what: &str) -> Option<bool> {
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            v => {
                let help = match v.as_string() {
                    Some("true") | Some("yes") => "write #true (KDL booleans start with #)",
                    Some("false") | Some("no") => "write #false (KDL booleans start with #)",
                    _ => "write #true or #false",
                };
                self.invalid_value(
                    e,
                    format!("{what} must be #true or #false, not {v}"),
                    help.into(),
                );
                None
            }
        }
    }

    /// A name of a scope, filter, external, plugin or policy.
    pub(super) fn name(&mut self, e: &KdlEntry, kind: &str) -> Option<Name> {
        let text = self.string(e, &format!("a {kind} name"))?;
        let span = self.value_span(e);
        let problem = if text.is_empty() {
            Some("is empty")
        } else if text == "any" {
            Some("is reserved (`any` means every address)")
        } else if text
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == '/')
        {
            Some("contains a space, `:` or `/`")
        } else {
            None
        };
        if let Some(p) = problem {
            let d = Diagnostic::error(Code::InvalidName, format!("{kind} name \"{text}\" {p}"))
                .with_label(span, "invalid name")
                .with_help(
                    "use letters, digits, `-`, `_` and `.`; `:` and `/` separate the parts of \
                     references such as `scope:NAME` and `service:NS/NAME`",
                );
            self.push(d);
            return None;
        }
        Some(Name { text, span })
    }

    /// A plain string naming something elsewhere (`matches`, `parent=`, …).
    pub(super) fn reference_name(&mut self, e: &KdlEntry, what: &str) -> Option<Name> {
        let text = self.string(e, what)?;
        Some(Name {
            text,
            span: self.value_span(e),
        })
    }

    pub(super) fn one_of<T: Copy>(
        &mut self,
        e: &KdlEntry,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(e, what)?;
        if let Some((_, v)) = options.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
        let help = match did_you_mean(&s, names.iter().copied()) {
            Some(m) => format!("did you mean \"{m}\"?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        self.invalid_value(
            e,
            format!("{what} \"{s}\" is not one of {}", names.join(", ")),
            help,
        );
        None
    }

    pub(super) fn action(&mut self, e: &KdlEntry, what: &str) -> Option<Action> {
        self.one_of(e, what, &[("allow", Action::Allow), ("deny", Action::Deny)])
    }

    pub(super) fn proto(&mut self, e: &KdlEntry) -> Option<Proto> {
        let s = self.string(e, "`proto`")?;
        match Proto::from_str(&s) {
            Ok(p) => Some(p),
            Err(msg) => {
                let help = match did_you_mean(&s, ["tcp", "udp", "sctp", "icmp", "any"]) {
                    Some(m) => format!("did you mean \"{m}\"?"),
                    None => "use tcp, udp, sctp, icmp or any".into(),
                };
                self.invalid_value(e, msg, help);
                None
            }
        }
    }

    /// `ports=443` or `ports="80,443,8000-8100,http"`: numbers and ranges
    /// (normalised) and container port names (sorted, deduplicated).
    pub(super) fn ports(&mut self, e: &KdlEntry) -> Option<(Vec<PortRange>, Vec<String>)> {
        let span = self.value_span(e);
        let bad = |cx: &mut Self, span: Span, msg: String| {
            let d = Diagnostic::error(Code::InvalidPort, msg)
                .with_label(span, "invalid port")
                .with_help(
                    "a port is 0-65535 or a container port name (up to 15 lowercase letters, \
                     digits and inner dashes); write `ports=443` or \
                     `ports=\"80,443,8000-8100,http\"` (ranges low-high)",
                );
            cx.push(d);
        };
        let mut out = Vec::new();
        let mut names = Vec::new();
        match e.value() {
            KdlValue::Integer(i) => match u16::try_from(*i) {
                Ok(p) => out.push(PortRange::single(p)),
                Err(_) => {
                    bad(self, span, format!("port {i} is out of range (0-65535)"));
                    return None;
                }
            },
            KdlValue::String(s) => {
                // Point at the bad element when the string is written plainly.
                let plain = e
                    .format()
                    .is_some_and(|f| f.value_repr == format!("\"{s}\""));
                let mut ok = true;
                let mut at = 0;
                for part in s.split(',') {
                    let part_span = if plain {
                        let lead = part.len() - part.trim_start().len();
                        Span {
                            offset: span.offset + 1 + at + lead,
                            len: part.trim().len().max(1),
                            ..span
                        }
                    } else {
                        span
                    };
                    at += part.len() + 1;
                    let part = part.trim();
                    if part.is_empty() {
                        bad(self, part_span, format!("empty port in \"{s}\""));
                        ok = false;
                        continue;
                    }
                    if part.bytes().any(|b| b.is_ascii_alphabetic()) {
                        match port_name_problem(part) {
                            None => names.push(part.to_string()),
                            Some(why) => {
                                bad(self, part_span, format!("port name `{part}` {why}"));
                                ok = false;
                            }
                        }
                        continue;
                    }
                    match PortRange::from_str(part) {
                        Ok(r) => out.push(r),
                        Err(msg) => {
                            bad(self, part_span, msg);
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
            }
            v => {
                bad(
                    self,
                    span,
                    format!("ports must be a number or a string, not {v}"),
                );
                return None;
            }
        }
        ringfence_schema::net::normalize_ports(&mut out);
        names.sort();
        names.dedup();
        Some((out, names))
    }

    /// A prefix or a single address.
    pub(super) fn cidr(&mut self, e: &KdlEntry) -> Option<IpNet> {
        let s = self.string(e, "an address")?;
        let span = self.value_span(e);
        let parsed = match s.parse::<IpNet>() {
            Ok(n) => Ok(n),
            Err(_) => s.trim().parse::<IpAddr>().map(IpNet::from),
        };
        match parsed {
            Ok(net) if net.trunc() != net => {
                let d = Diagnostic::error(
                    Code::InvalidCidr,
                    format!("prefix \"{s}\" has host bits set"),
                )
                .with_label(span, "host bits set")
                .with_help(format!(
                    "write \"{}\" (the network of this prefix), or give the address alone for \
                     one host",
                    net.trunc()
                ));
                self.push(d);
                None
            }
            Ok(net) => Some(net),
            Err(_) => {
                let d = Diagnostic::error(
                    Code::InvalidCidr,
                    format!("\"{s}\" is not an IP address or prefix"),
                )
                .with_label(span, "not an address")
                .with_help(
                    "write a prefix (\"10.0.0.0/8\", \"fd00::/8\") or an address (\"192.0.2.10\")",
                );
                self.push(d);
                None
            }
        }
    }

    /// A consumer or provider: `any`, `NAME`, `filter:NAME`, `scope:NAME`,
    /// `external:NAME` or `service:NAMESPACE/NAME`.
    pub(super) fn reference(&mut self, e: &KdlEntry) -> Option<RawRef> {
        let s = self.string(e, "a reference")?;
        let span = self.value_span(e);
        let bad = |cx: &mut Self, msg: String, help: String| {
            cx.invalid_value(e, msg, help);
            None
        };
        let kind = if s == "any" {
            RefKind::Any
        } else if let Some((prefix, rest)) = s.split_once(':') {
            let rest = rest.to_string();
            if rest.is_empty() {
                return bad(
                    self,
                    format!("reference \"{s}\" has no name after `{prefix}:`"),
                    format!("write `{prefix}:NAME`"),
                );
            }
            match prefix {
                "filter" => RefKind::Filter(rest),
                "scope" => RefKind::Scope(rest),
                "external" => RefKind::External(rest),
                "service" => match rest.split_once('/') {
                    Some((ns, name))
                        if !ns.is_empty() && !name.is_empty() && !name.contains('/') =>
                    {
                        RefKind::Service {
                            namespace: ns.into(),
                            name: name.into(),
                        }
                    }
                    _ => {
                        return bad(
                            self,
                            format!("service reference \"{s}\" is not `service:NAMESPACE/NAME`"),
                            "write the service's namespace and name: `service:shop/frontend`"
                                .into(),
                        );
                    }
                },
                other => {
                    let help = match did_you_mean(other, ["filter", "scope", "external", "service"])
                    {
                        Some(m) => format!("did you mean `{m}:{rest}`?"),
                        None => "references are `any`, `NAME`, `filter:NAME`, `scope:NAME`, \
                                 `external:NAME` or `service:NAMESPACE/NAME`"
                            .into(),
                    };
                    return bad(
                        self,
                        format!("unknown reference kind `{other}:` in \"{s}\""),
                        help,
                    );
                }
            }
        } else {
            RefKind::Bare(s)
        };
        Some(RawRef { kind, span })
    }

    /// where `named` (policies, not quarantine exceptions); with `proto="any"`
    /// a policy may list names only.
    #[allow(clippy::type_complexity)]
    pub(super) fn proto_ports(
        &mut self,
        ents: &Entries<'_>,
        named: bool,
    ) -> (Option<Proto>, Option<(Vec<PortRange>, Vec<String>)>) {
        let proto = match ents.prop("proto") {
            Some(e) => self.proto(e),
            None => Some(Proto::Any),
        };
        let ports = match ents.prop("ports") {
            Some(e) => {
                let ports = self.ports(e);
                if let Some((_, names)) = &ports
                    && !names.is_empty()
                    && !named
                {
                    let d = Diagnostic::error(
                        Code::InvalidPort,
                        format!("port name `{}` in a quarantine exception", names[0]),
                    )
                    .with_label(self.value_span(e), "invalid port")
                    .with_help(
                        "quarantine exceptions take port numbers only: write the container \
                         port's number",
                    );
                    self.push(d);
                    return (proto, None);
                }
                if let (Some(p), Some((numbers, names))) = (proto, &ports)
                    && !p.has_ports()
                    && !(p == Proto::Any && numbers.is_empty() && !names.is_empty())
                {
                    let mut d = Diagnostic::error(
                        Code::PortsNeedProtocol,
                        format!("ports need proto tcp, udp or sctp; this policy's proto is {p}"),
                    )
                    .with_label(self.value_span(e), "ports given here");
                    d = match ents.prop("proto") {
                        Some(pe) => d.with_label(self.value_span(pe), format!("{p} has no ports")),
                        None => d,
                    };
                    let help = if p == Proto::Any {
                        "add proto=\"tcp\" (or udp, sctp), or remove `ports` to match every port \
                         (with proto=\"any\", only port names may be given)"
                    } else {
                        "remove `ports`, or use proto=\"tcp\", \"udp\" or \"sctp\""
                    };
                    self.push(d.with_help(help));
                    return (Some(p), None);
                }
                ports
            }
            None => Some((Vec::new(), Vec::new())),
        };
        (proto, ports)
    }
}
