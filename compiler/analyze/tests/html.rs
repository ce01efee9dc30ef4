//! The HTML page in a real browser: it fetches nothing, it renders (the
//! screenshot has the chart's and the cards' colours, and is not a blank
//! page), and the totals are in the DOM Chromium builds from it.

use ringfence_analyze::html::{render, thousands};
use ringfence_analyze::{Analysis, Outcome};
use ringfence_intent::model::Proto::Tcp;
use ringfence_schema::flow::NetworkVerdict::{Allowed, Dropped};

use crate::browser::{chromium, decode_png, dump_dom, screenshot};
use crate::common::*;

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

/// Nothing in the page is fetched: no scripts, stylesheets, images, frames
/// or fonts, and no attribute or CSS `url()` pointing anywhere but the page.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<script",
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
    assert!(
        text.contains("\nescaped (network allowed, policy would deny): "),
        "{text}"
    );
    assert!(
        text.contains("  lab/") || text.contains("other/o-1[Pod] -> lab/x-1[Pod] tcp/9999"),
        "{text}"
    );
    assert!(
        text.contains("ingress: deny by lab/catch-all-ingress (catch-all) [analyze mode]"),
        "{text}"
    );
    assert!(
        text.contains("\novershadowed: 1 polic(ies)\n  app/web-telnet"),
        "{text}"
    );
    assert!(text.contains("\nno traffic: "), "{text}");
    assert!(text.contains("\nbroad: "), "{text}");
    assert!(text.contains("\nchanges against main: "), "{text}");
    assert!(
        text.contains("      was allow (egress app/web-to-api, ingress app/web-to-api)"),
        "{text}"
    );
    assert!(
        text.contains(
            "      now deny (egress app/catch-all-egress, ingress app/catch-all-ingress)"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["version"], "feature");
    assert_eq!(
        json["totals"]["outcomes"]["escaped"]["flows"],
        a.totals.outcomes[&Outcome::Escaped].flows
    );
    assert!(json["conversations"][0]["egress"]["managed"].is_boolean());
}
