//! The HTML page in a real browser: it fetches nothing, it renders (the
//! screenshot has the chart's and the cards' colours, and is not a blank
//! page), the totals are in the DOM Chromium builds from it, past 40 scopes
//! the graph becomes a matrix, and its script drills down, filters and sorts.

use ringfence_analyze::html::{GRAPH_SCOPES, render, thousands};
use ringfence_analyze::{Analysis, Edge, Outcome};
use ringfence_intent::model::Proto::Tcp;
use ringfence_schema::flow::NetworkVerdict::{Allowed, Dropped};

use crate::browser::{chromium, decode_png, dump_dom, screenshot};
use crate::common::*;
use ringfence_testkit::text::assert_contains;

/// Three hours of flows of every outcome, analysed against the scenario with
/// `web-to-api` narrowed, compared with the original.
fn analysis() -> Analysis {
    let before = build(intent_("80"), &inventory_());
    let after = build(intent_("81"), &inventory_());
    let mut flows = Vec::new();
    for minute in 0..180 {
        let burst = if (60..90).contains(&minute) { 6 } else { 1 };
        for _ in 0..burst {
            flows.push(flow(
                "10.0.1.1",
                "10.96.0.10",
                Tcp,
                Some(80),
                Some(Allowed),
                minute,
            ));
        }
        flows.push(flow(
            "10.0.1.2",
            "10.0.1.3",
            Tcp,
            Some(5432),
            Some(Allowed),
            minute,
        ));
        if minute % 3 == 0 {
            flows.push(flow(
                "10.0.1.1",
                "10.0.1.3",
                Tcp,
                Some(5432),
                Some(Dropped),
                minute,
            ));
            flows.push(flow(
                "10.0.3.1",
                "10.0.2.1",
                Tcp,
                Some(9999),
                Some(Allowed),
                minute,
            ));
        }
        if minute % 10 == 0 {
            flows.push(flow(
                "10.0.1.2",
                "10.0.1.3",
                Tcp,
                Some(5432),
                Some(Dropped),
                minute,
            ));
            flows.push(flow("10.0.3.1", "192.0.2.9", Tcp, Some(443), None, minute));
            flows.push(flow("10.0.1.9", "10.0.1.2", Tcp, Some(8080), None, minute));
        }
    }
    analyse(
        after.version("feature"),
        Some(before.version("main")),
        &flows,
    )
}

/// Nothing in the page is fetched: no remote scripts, stylesheets, images,
/// frames or fonts, no attribute or CSS `url()` pointing anywhere but the
/// page, and the inline script uses no network API.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert_eq!(lower.matches("<script").count(), 1, "one inline script");
    assert!(lower.contains("<script>"), "the script is inline");
    for banned in [
        "fetch(",
        "xmlhttprequest",
        "import(",
        "websocket",
        "eventsource",
        "sendbeacon",
        "location.href",
        "window.open",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "@import",
        "@font-face",
        "http://",
        "https://",
    ] {
        assert!(!lower.contains(banned), "the page contains `{banned}`");
    }
    for attr in ["src=", "href=", "xlink:href="] {
        for (i, _) in lower.match_indices(attr) {
            let value = lower[i + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with('#'),
                "remote `{attr}` at {i}: {value:.40}"
            );
        }
    }
    for (i, _) in lower.match_indices("url(") {
        assert!(
            lower[i + 4..].starts_with('#'),
            "url() to something else than the page at {i}"
        );
    }
}

#[test]
fn the_page_is_self_contained_and_renders() {
    let a = analysis();
    let html = render(&a);
    assert_self_contained(&html);
    assert_eq!(render(&a), html, "the same analysis gives the same page");
    assert!(html.contains("id=\"timeline\"") && html.contains("id=\"scope-graph\""));
    assert!(html.contains("id=\"table-escaped\"") && html.contains("id=\"table-changes\""));

    if chromium().is_none() {
        panic!("chromium is needed for this test: apt-get install chromium");
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("analysis.html");
    std::fs::write(&page, &html).unwrap();
    let png = dir.path().join("analysis.png");
    screenshot(&page, &png, &dir.path().join("profile"));
    let bytes = std::fs::read(&png).expect("a screenshot was written");
    // To look at it: RINGFENCE_KEEP_SCREENSHOT=DIR cargo test … the_page
    if let Some(keep) = std::env::var_os("RINGFENCE_KEEP_SCREENSHOT") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("analysis.html")).unwrap();
        std::fs::copy(&png, keep.join("analysis.png")).unwrap();
    }

    // A blank page the same size, for comparison.
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_png = dir.path().join("blank.png");
    screenshot(&blank, &blank_png, &dir.path().join("profile"));
    let blank_bytes = std::fs::read(&blank_png).unwrap();
    assert!(
        bytes.len() > 10 * blank_bytes.len(),
        "{} bytes, a blank page {}",
        bytes.len(),
        blank_bytes.len()
    );

    let img = decode_png(&bytes);
    assert_eq!((img.width, img.height), (1280, 2000));
    let white = img.rgb.iter().filter(|p| **p == [255, 255, 255]).count();
    let inked = img.rgb.len() - white;
    assert!(
        inked * 100 > img.rgb.len() * 5,
        "only {inked} of {} pixels are not white",
        img.rgb.len()
    );
    let mut colours: Vec<[u8; 3]> = img.rgb.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 50, "{} colours", colours.len());
    // The cards' borders and the chart's bars in the outcome colours.
    for (o, rgb) in [
        (Outcome::Permitted, [0x2e, 0x7d, 0x32]),
        (Outcome::Escaped, [0xef, 0x6c, 0x00]),
        (Outcome::Rejected, [0xc6, 0x28, 0x28]),
        (Outcome::Misdropped, [0x6a, 0x1b, 0x9a]),
    ] {
        let n = img.rgb.iter().filter(|p| **p == rgb).count();
        assert!(n > 300, "{o}: {n} pixels of its colour");
    }

    // The DOM Chromium built holds the totals.
    let dom = dump_dom(&page, &dir.path().join("profile"));
    assert!(dom.contains("Policy analysis"), "{dom:.300}");
    assert!(dom.contains(&format!(
        "id=\"total-flows\">{}<",
        thousands(a.totals.all.flows)
    )));
    for (o, c) in &a.totals.outcomes {
        let needle = format!("id=\"total-{o}\">{}<", thousands(c.flows));
        assert!(dom.contains(&needle), "{needle} not in the DOM");
    }
    let changed = a.changes.as_ref().unwrap().conversations;
    assert!(changed > 0);
    assert!(dom.contains(&format!(
        "id=\"changed-conversations\">{}<",
        thousands(changed)
    )));
}

#[test]
fn text_names_what_matters() {
    let a = analysis();
    let text = a.to_string();
    assert!(
        text.starts_with("analysis of feature against main\n"),
        "{text}"
    );
    assert_contains(&text, "\nescaped (network allowed, policy would deny): ");
    assert!(
        text.contains("  lab/") || text.contains("other/o-1[Pod] -> lab/x-1[Pod] tcp/9999"),
        "{text}"
    );
    assert_contains(
        &text,
        "ingress: deny by lab/catch-all-ingress (catch-all) [analyze mode]",
    );
    assert_contains(&text, "\novershadowed: 1 polic(ies)\n  app/web-telnet");
    assert_contains(&text, "\nno traffic: ");
    assert_contains(&text, "\nbroad: ");
    assert_contains(&text, "\nchanges against main: ");
    assert_contains(
        &text,
        "      was allow (egress app/web-to-api, ingress app/web-to-api)",
    );
    assert_contains(
        &text,
        "      now deny (egress app/catch-all-egress, ingress app/catch-all-ingress)",
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["version"], "feature");
    assert_eq!(
        json["totals"]["outcomes"]["escaped"]["flows"],
        a.totals.outcomes[&Outcome::Escaped].flows
    );
    assert!(json["conversations"][0]["egress"]["managed"].is_boolean());
}

/// The analysis above, with its graph and conversations spread over 45
/// scopes (what a large cluster has): every conversation is renamed into a
/// scope pair, and the graph is rebuilt from them.
fn many_scopes() -> Analysis {
    let mut a = analysis();
    let scope = |i: usize| format!("team-{i:02}");
    let base = a.conversations.clone();
    a.conversations.clear();
    for i in 0..45 {
        for (k, c) in base.iter().enumerate() {
            let mut c = c.clone();
            c.from_scope = scope(i);
            c.to_scope = scope((i + 1 + k * 7) % 45);
            c.from = format!("{}/{}", c.from_scope, c.from);
            c.to = format!("{}/{}", c.to_scope, c.to);
            a.conversations.push(c);
        }
    }
    let mut graph: std::collections::BTreeMap<(String, String), Edge> = Default::default();
    for c in &a.conversations {
        let e = graph
            .entry((c.from_scope.clone(), c.to_scope.clone()))
            .or_insert_with(|| Edge {
                from: c.from_scope.clone(),
                to: c.to_scope.clone(),
                flows: Default::default(),
                bytes: 0,
            });
        for (o, n) in &c.outcomes {
            *e.flows.entry(*o).or_default() += n;
        }
        e.bytes += c.count.bytes;
    }
    a.graph = graph.into_values().collect();
    a
}

/// Row elements of a table in a DOM dump, with whether each is hidden.
fn table_rows<'a>(dom: &'a str, id: &str) -> Vec<(bool, &'a str)> {
    let start = dom
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let body = &dom[start..];
    let body = &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|r| (r.split('>').next().unwrap().contains("hidden"), r))
        .collect()
}

#[test]
fn past_forty_scopes_a_matrix_drills_down_to_conversations() {
    let a = many_scopes();
    let scopes: std::collections::BTreeSet<&str> =
        a.graph.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(scopes.len(), 45);
    assert!(scopes.len() > GRAPH_SCOPES);
    let html = render(&a);
    assert_self_contained(&html);
    assert!(html.contains("id=\"scope-matrix\"") && !html.contains("id=\"scope-graph\""));
    assert!(html.contains("id=\"table-workloads\"") && html.contains("id=\"table-conversations\""));
    assert!(
        chromium().is_some(),
        "chromium is needed: apt-get install chromium"
    );

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("analysis.html");
    std::fs::write(&page, &html).unwrap();
    let profile = dir.path().join("profile");

    // The matrix: one row and one column per scope, every edge a linked cell.
    let dom = dump_dom(&page, &profile);
    let matrix = &dom[dom.find("id=\"scope-matrix\"").unwrap()..];
    let matrix = &matrix[..matrix.find("</table>").unwrap()];
    assert_eq!(
        matrix.matches("<tr>").count(),
        46,
        "a header row and 45 scopes"
    );
    assert_eq!(
        matrix.matches("<a href=\"#t=table-conversations").count(),
        a.graph.len()
    );
    // Without a fragment nothing is hidden.
    let all = table_rows(&dom, "table-conversations");
    assert!(all.len() > 100, "{} conversations listed", all.len());
    assert!(all.iter().all(|(hidden, _)| !hidden));

    // An edge's link: only that scope pair's conversations stay.
    let edge = a.graph.iter().max_by_key(|e| e.bytes).unwrap();
    let expect = a
        .conversations
        .iter()
        .filter(|c| c.from_scope == edge.from && c.to_scope == edge.to)
        .count();
    assert!(expect > 0);
    let drilled = dir.path().join(format!(
        "analysis.html#t=table-conversations&fs={}&ts={}",
        edge.from, edge.to
    ));
    let dom = dump_dom(&drilled, &profile);
    let rows = table_rows(&dom, "table-conversations");
    let shown: Vec<&str> = rows.iter().filter(|(h, _)| !h).map(|(_, r)| *r).collect();
    assert_eq!(shown.len(), expect.min(ringfence_analyze::html::PER_PAIR));
    let pair = format!("data-fs=\"{}\" data-ts=\"{}\"", edge.from, edge.to);
    assert!(shown.iter().all(|r| r.contains(&pair)), "{:.300}", shown[0]);
    assert!(dom.contains(&format!(
        "id=\"table-conversations-shown\">{}<",
        shown.len()
    )));
    assert!(
        dom.contains(&format!("<b>{} → {}</b>", edge.from, edge.to)),
        "the drill is named"
    );

    // A workload pair, words typed in the filter, and a sort by flows.
    let c = &a.conversations[0];
    let by_workload = dir.path().join(format!(
        "analysis.html#t=table-conversations&fw={}&tw={}",
        urlencode(&c.from),
        urlencode(&c.to)
    ));
    let dom = dump_dom(&by_workload, &profile);
    let shown = table_rows(&dom, "table-conversations")
        .into_iter()
        .filter(|(h, _)| !h)
        .count();
    let expect = a
        .conversations
        .iter()
        .filter(|x| x.from == c.from && x.to == c.to)
        .count();
    assert_eq!(shown, expect);
    let sorted = dir
        .path()
        .join("analysis.html#t=table-workloads&sort=3&dir=asc&q=team-03");
    let dom = dump_dom(&sorted, &profile);
    let rows: Vec<&str> = table_rows(&dom, "table-workloads")
        .into_iter()
        .filter(|(h, _)| !h)
        .map(|(_, r)| r)
        .collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.contains("team-03")));
    let counts: Vec<u64> = rows
        .iter()
        .map(|r| {
            let cells: Vec<&str> = r.split("<td").collect();
            let n = cells[4]
                .split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            n.replace(',', "").parse().unwrap()
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(dom.contains("aria-sort=\"ascending\""));

    // The picture: the matrix in the outcome colours, not a blank page.
    let png = dir.path().join("matrix.png");
    screenshot(&page, &png, &profile);
    if let Some(keep) = std::env::var_os("RINGFENCE_KEEP_SCREENSHOT") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("matrix.html")).unwrap();
        std::fs::copy(&png, keep.join("matrix.png")).unwrap();
    }
    let img = decode_png(&std::fs::read(&png).unwrap());
    let inked = img.rgb.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(inked * 100 > img.rgb.len() * 5, "{inked} inked pixels");
}

/// Percent-encoding as the page's links do it.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
