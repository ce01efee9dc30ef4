use super::*;

/// What the nftables backend writes (every construct it uses, tabs).
const BACKEND: &str = "#!/usr/sbin/nft -f
# ringfence nftables for node n1 of cluster c: generated, do not edit.
# Replaces table inet ringfence atomically; touches no other table.
table inet ringfence
delete table inet ringfence
table inet ringfence {
\tset web_v4 { type ipv4_addr; flags interval;
\t\telements = {
\t\t\t10.0.0.0/24, 10.0.1.5, 10.0.2.1-10.0.2.9
\t\t}
\t}
\tset web_v6 { type ipv6_addr; size 2;
\t\telements = {
\t\t\tfd00::1, fd00::2
\t\t}
\t}
\tset ports-0 { type inet_service; flags interval;
\t\telements = {
\t\t\t80, 8000-8080
\t\t}
\t}
\tmap ingress-v4 { type ipv4_addr : verdict; size 1;
\t\telements = {
\t\t\t10.0.0.5 : jump c_pod_a
\t\t}
\t}
\tmap hostports-v4 { type ipv4_addr . inet_proto . inet_service : verdict; size 1;
\t\telements = {
\t\t\t10.0.0.9 . tcp . 9100 : jump c_node
\t\t}
\t}
\tchain dispatch {
\t\tip daddr . meta l4proto . th dport vmap @hostports-v4
\t\tip daddr vmap @ingress-v4
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related counter accept comment \"established\"
\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } counter accept comment \"ndp\"
\t\tct state invalid counter drop comment \"invalid\"
\t\tct status dnat counter jump exposures comment \"exposures\"
\t\tjump dispatch
\t}
\tchain exposures {
\t\tmeta l4proto tcp ct original proto-dst 30080 ct original ip daddr { 10.0.0.1 } counter goto expose-0 comment \"shop/web tcp/30080\"
\t}
\tchain expose-0 {
\t\tip daddr . th dport vmap { 10.0.0.5 . 8080 : jump c_pod_a }
\t}
\tchain c_pod_a {
\t\tip saddr @web_v4 tcp dport @ports-0 counter accept comment \"r-1\"
\t\tip6 saddr @web_v6 tcp dport 443 counter log prefix \"rf r-2 \" accept comment \"r-2\"
\t\tmeta l4proto { icmp, ipv6-icmp } counter return comment \"r-3\"
\t\tmeta l4proto udp counter drop comment \"r-4\"
\t}
\tchain unknown {
\t\tip saddr @podnets-v4 ip saddr != @local-v4 counter drop comment \"unknown-pod\"
\t}
}
";

#[test]
fn accepts_what_the_backends_write() {
    screen(BACKEND).unwrap();
    // Chunked element loads and membership deltas name our table too.
    screen("add element inet ringfence web_v4 { 10.9.9.9, 10.9.9.10 }\ndelete element inet ringfence web_v4 { 10.9.9.9 }\n").unwrap();
    // `!` only as `!=`.
    assert!(screen("table inet ringfence {\n chain c {\n  ip saddr ! @s drop\n }\n}\n").is_err());
    screen("add table inet ringfence\nadd set inet ringfence s { type ipv4_addr; }\nadd chain inet ringfence c { type filter hook input priority -10; policy drop; }\nadd rule inet ringfence c ip saddr @s counter accept\n").unwrap();
    // nft's own listing style (counter values, `priority filter + 5`).
    screen("table inet ringfence {\n chain c {\n  type filter hook output priority filter + 5; policy accept;\n  counter packets 10 bytes 600 accept\n }\n}\n").unwrap();
}

/// The attacks of issue 15 and their relatives: each refused, with the
/// line and what is wrong.
#[test]
fn refuses_everything_beyond_our_table() {
    let cases: &[(&str, &str)] = &[
        // Braces inside strings do not open or close anything.
        (
            "table inet ringfence {\n    chain rt_bypass {\n        counter comment \"{\"\n    }\n}\ndelete table ip victim\n",
            "line 6, column 14: family `ip` is not inet",
        ),
        (
            "define brace = \"{\"\nflush table ip victim\n",
            "line 1, column 1: `define`",
        ),
        (
            "table inet ringfence {\n    include \"/etc/shadow\"\n}\n",
            "line 2, column 5: `include` would make nft read",
        ),
        (
            "table inet ringfence { chain c { include \"/etc/x\" } }\n",
            "`include` would make nft read",
        ),
        (
            "table inet ringfence { set s { define x } }\n",
            "`define` (variables)",
        ),
        (
            "include \"/etc/shadow\"\n",
            "`include` would make nft read another file",
        ),
        ("flush ruleset\n", "`flush ruleset` is not a command"),
        ("list ruleset\n", "`list` is not a command"),
        ("delete table ip kube-proxy\n", "family `ip` is not inet"),
        (
            "delete table inet filter\n",
            "table `filter` is not ringfence",
        ),
        ("add rule ip filter input drop\n", "family `ip`"),
        (
            "add table inet ringfence { flags dormant; }\n",
            "table flags are not allowed",
        ),
        (
            "table inet ringfence {\n flags dormant\n}\n",
            "line 2, column 2: table flags",
        ),
        // A string swallowing a line break still ends where nft says.
        (
            "table inet ringfence {\n chain c {\n  counter comment \"a\n}\n\"\n }\n}\nflush table ip nat\n",
            "line 8, column 13: family `ip`",
        ),
        // A `#` inside a string is not a comment.
        (
            "table inet ringfence { chain c { counter comment \"#\" } }\ndelete table ip x\n",
            "family `ip`",
        ),
        // A continuation joins lines: `table … \` + `ip x` is one command.
        ("delete table \\\nip victim\n", "family `ip`"),
        // Variables and statements with effects beyond a verdict.
        (
            "table inet ringfence { chain c { ip saddr $evil accept } }\n",
            "`$`",
        ),
        (
            "table inet ringfence { chain c { dup to 10.0.0.1 } }\n",
            "`dup` is not in the rule vocabulary",
        ),
        (
            "table inet ringfence { chain c { queue num 1 } }\n",
            "`queue`",
        ),
        (
            "table inet ringfence { chain c { meta mark set 1 } }\n",
            "`mark`",
        ),
        (
            "table inet ringfence { chain c { ct helper set \"ftp\" } }\n",
            "`helper`",
        ),
        (
            "table inet ringfence { chain c { notrack } }\n",
            "`notrack`",
        ),
        (
            "table inet ringfence { chain c { dnat to 10.0.0.1 } }\n",
            "`dnat`",
        ),
        (
            "table inet ringfence { chain c { type nat hook prerouting priority dstnat; } }\n",
            "`nat`",
        ),
        (
            "table inet ringfence { chain c { type filter hook ingress device eth0 priority 0; } }\n",
            "`ingress`",
        ),
        (
            "table inet ringfence { chain c { accept \"x\" } }\n",
            "may only follow `comment`",
        ),
        (
            "table inet ringfence { set s { type ipv4_addr; flags dynamic; } }\n",
            "`dynamic`",
        ),
        (
            "table inet ringfence { set s { type ipv4_addr; elements = { 10.0.0.1 : jump x } } }\n",
            "`:`",
        ),
        (
            "table inet ringfence { map m { type ipv4_addr : verdict; elements = { 10.0.0.1 } } }\n",
            "`:` and a verdict",
        ),
        ("table inet ringfence { chain c { jump } }\n", "a name"),
        ("table inet ringfence \"x\"\n", "after a command"),
        ("table inet \"ringfence\" { }\n", "table the string"),
        ("table netdev ringfence\n", "family `netdev`"),
        ("{\"nftables\": []}\n", "`{` where a command belongs"),
        (
            "table inet ringfence { chain c { counter comment \"x\n",
            "never closed",
        ),
        ("table inet ringfence {\n", "the end of the file"),
        ("table inet ringfence\r\n", "\\r"),
    ];
    for (text, want) in cases {
        let e = screen(text).expect_err(text).to_string();
        assert!(e.contains(want), "{text:?}\n  gave: {e}\n  want: {want}");
    }
}

#[test]
fn errors_are_short_and_escaped() {
    let long = format!("table inet {}\n", "x\u{7}".repeat(100));
    let e = screen(&long).unwrap_err().to_string();
    assert!(e.len() < 200, "{e}");
    let e = screen("table inet ringfence { chain c { comment \"\u{1b}[2J\" \"\u{1b}\" } }")
        .unwrap_err();
    assert!(!e.to_string().contains('\u{1b}'), "{e}");
}

#[test]
fn literals() {
    for ok in [
        "10.0.0.1",
        "10.0.0.0/8",
        "fd00::/64",
        "::1",
        "80",
        "0x1f",
        "1000-2000",
        "10.0.0.1-10.0.0.9",
        "fd00::1-fd00::9",
        "tcp",
    ] {
        assert!(is_literal(ok), "{ok}");
    }
    for bad in [
        "victim",
        "10.0.0.1/",
        "1.2.3",
        "10.0.0.1-",
        "-5",
        "a-b",
        "1/2",
        "fd00::1/1000",
    ] {
        assert!(!is_literal(bad), "{bad}");
    }
}

#[test]
fn element_screen_takes_element_changes_only() {
    screen_elements(
        "delete element inet ringfence web_1_v4 { 10.0.1.5 }\n\
         add element inet ringfence ingress-v4 { 10.0.1.6 : jump c_in_a }\n\
         add element inet ringfence expose-0-v6 { fd00::5 . 8080 : jump c_in_a }\n",
    )
    .unwrap();
    for (bad, why) in [
        (
            "add rule inet ringfence forward accept",
            "not a membership change",
        ),
        ("flush table inet ringfence", "not a membership change"),
        ("delete table inet ringfence", "not a membership change"),
        ("table inet ringfence { }", "not a membership change"),
        (
            "add set inet ringfence x { type ipv4_addr; }",
            "not a membership change",
        ),
        (
            "add element ip filter s { 10.0.0.1 }",
            "only table inet ringfence",
        ),
        (
            "add element inet ringfence s { 10.0.0.1 : queue }",
            "a verdict",
        ),
        ("include \"/etc/shadow\"", "not a membership change"),
    ] {
        let e = screen_elements(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
