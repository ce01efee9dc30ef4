//! Live inventories from watch events: the example cluster replayed as
//! `kubectl … --watch --output-watch-events -o json` prints it, then pods
//! created, moved, deleted, and an address handed to a new pod before its
//! old owner's DELETE arrives.

use std::path::Path;

use ringfence_inventory::Scores;
use ringfence_inventory::events::{Change, Kind, LiveCluster, Object, parse_event, read_stream};
use ringfence_inventory::parse_list;
use serde_json::{Value, json};

fn example() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies-example/inventory/prod-eu1.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn line(kind: &str, object: &Value) -> String {
    json!({"type": kind, "object": object}).to_string()
}

fn items(list: &Value) -> &[Value] {
    list["items"].as_array().unwrap()
}

/// The list replayed as `ADDED` events, one a line.
fn replay(list: &Value) -> String {
    items(list)
        .iter()
        .map(|o| line("ADDED", o) + "\n")
        .collect()
}

/// The live cluster the replayed list builds.
fn replayed(list: &Value) -> LiveCluster {
    read_stream(&replay(list), "prod-eu1", "stdin", Scores::default()).unwrap()
}

fn pod<'a>(list: &'a Value, name: &str) -> &'a Value {
    items(list)
        .iter()
        .find(|o| o["kind"] == "Pod" && o["metadata"]["name"].as_str().unwrap().starts_with(name))
        .unwrap()
}

/// A copy of pod `p` named `name` (uid `uid-<name>`) on `node` with address `ip`.
fn with_ip(p: &Value, name: &str, node: &str, ip: &str) -> Value {
    let mut p = p.clone();
    p["metadata"]["name"] = name.into();
    p["metadata"]["uid"] = format!("uid-{name}").into();
    p["spec"]["nodeName"] = node.into();
    p["status"]["podIP"] = ip.into();
    p["status"]["podIPs"] = json!([{ "ip": ip }]);
    p
}

fn apply(c: &mut LiveCluster, text: &str) -> ringfence_inventory::events::Applied {
    let ch = parse_event(text, "stdin", 1).unwrap().unwrap();
    c.apply(ch).unwrap()
}

#[test]
fn a_replayed_list_is_the_cluster_the_file_gives() {
    let list = example();
    let live = read_stream(&replay(&list), "prod-eu1", "stdin", Scores::default()).unwrap();
    let file = parse_list(&list.to_string(), "prod-eu1.json").unwrap();
    let mut got = live.cluster();
    got.source = file.source.clone();
    assert_eq!(got, file);
}

#[test]
fn pods_come_and_go_and_rules_changes_are_told_apart() {
    let list = example();
    let mut c = replayed(&list);
    let fe = pod(&list, "frontend");
    let new = with_ip(fe, "frontend-new", "prod-eu1-linux-a", "10.244.1.99");
    let a = apply(&mut c, &line("ADDED", &new));
    assert!(!a.structural);
    assert_eq!(
        a.pods["shop/frontend-new"].as_ref().unwrap().ips,
        ["10.244.1.99".parse::<std::net::IpAddr>().unwrap()]
    );
    // A status update that changes nothing the compiler reads: nothing.
    let mut same = new.clone();
    same["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert!(apply(&mut c, &line("MODIFIED", &same)).is_empty());
    // Rescheduled with a new address.
    let moved = with_ip(fe, "frontend-new", "prod-eu1-linux-b", "10.244.2.99");
    let a = apply(&mut c, &line("MODIFIED", &moved));
    assert_eq!(
        a.pods["shop/frontend-new"]
            .as_ref()
            .unwrap()
            .node
            .as_deref(),
        Some("prod-eu1-linux-b")
    );
    let a = apply(&mut c, &line("DELETED", &moved));
    assert_eq!(a.pods["shop/frontend-new"], None);
    // A service or a node changes rules.
    let svc = items(&list)
        .iter()
        .find(|o| o["kind"] == "Service")
        .unwrap();
    let mut svc2 = svc.clone();
    svc2["spec"]["selector"] = json!({"app": "other"});
    assert!(apply(&mut c, &line("MODIFIED", &svc2)).structural);
    // Bookmarks and kinds the inventory does not read are nothing.
    assert!(
        parse_event(
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}"#,
            "stdin",
            1
        )
        .unwrap()
        .is_none()
    );
    assert!(
        parse_event(
            &line(
                "ADDED",
                &json!({"kind": "ConfigMap", "metadata": {"name": "x"}})
            ),
            "stdin",
            1
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn an_address_taken_by_a_new_pod_is_not_given_back_by_late_events() {
    let list = example();
    let mut c = replayed(&list);
    let fe = pod(&list, "frontend");
    let ca = pod(&list, "cart");
    let old = with_ip(fe, "frontend-old", "prod-eu1-linux-a", "10.244.1.99");
    apply(&mut c, &line("ADDED", &old));
    // The address goes to a cart pod before frontend-old's DELETE arrives:
    // one step takes it from the old owner and gives it to the new one.
    let reuse = with_ip(ca, "cart-reuse", "prod-eu1-linux-a", "10.244.1.99");
    let a = apply(&mut c, &line("ADDED", &reuse));
    assert!(a.pods["shop/frontend-old"].as_ref().unwrap().ips.is_empty());
    assert_eq!(a.pods["shop/cart-reuse"].as_ref().unwrap().ips.len(), 1);
    // A late status of the old pod still listing the address: no change.
    let mut late = old.clone();
    late["status"]["phase"] = "Running".into();
    late["metadata"]["labels"]["late"] = "yes".into();
    let a = apply(&mut c, &line("MODIFIED", &late));
    assert!(
        a.pods
            .get("shop/frontend-old")
            .is_none_or(|p| p.as_ref().unwrap().ips.is_empty())
    );
    // Its DELETE removes the old pod, not the new owner's address.
    let a = apply(&mut c, &line("DELETED", &old));
    assert_eq!(a.pods["shop/frontend-old"], None);
    let cluster = c.cluster();
    let owner = cluster
        .pods
        .iter()
        .find(|p| p.ips.contains(&"10.244.1.99".parse().unwrap()))
        .unwrap();
    assert_eq!(owner.name, "cart-reuse");
}

#[test]
fn a_relist_removes_what_it_does_not_list_again() {
    let list = example();
    let mut c = replayed(&list);
    let pods_before = c.pod_count();
    // The watch expires; the relist misses one pod and one service.
    let gone = parse_event(
        r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"too old resource version"}}"#,
        "stdin",
        9,
    )
    .unwrap()
    .unwrap();
    assert!(matches!(gone, Change::Expired(ref m) if m.contains("410")));
    c.apply(gone).unwrap();
    let (mut pod_skipped, mut svc_skipped) = (false, false);
    for o in items(&list) {
        if o["kind"] == "Pod" && !pod_skipped {
            pod_skipped = true;
            continue;
        }
        if o["kind"] == "Service" && !svc_skipped {
            svc_skipped = true;
            continue;
        }
        c.apply(
            parse_event(&line("ADDED", o), "stdin", 10)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
    }
    let a = c.end_relist(None);
    assert!(a.structural, "a service went");
    assert_eq!(a.pods.len(), 1);
    assert_eq!(c.pod_count(), pods_before - 1);
    // Per-kind relists (as a Kubernetes watcher does them) touch one kind.
    c.apply(Change::Relist(Some(Kind::Pod))).unwrap();
    let a = c.apply(Change::Listed(Some(Kind::Pod))).unwrap();
    assert_eq!(a.pods.len(), pods_before - 1);
    assert!(!a.structural);
    let _ = Object::Pod(Value::Null);
}

#[test]
fn bad_lines_say_where_and_what() {
    let e = parse_event("{\"type\": \"ADDED\", \"object\": ", "events.jsonl", 7).unwrap_err();
    assert!(e.to_string().starts_with("events.jsonl:7:"), "{e}");
    let e = parse_event(r#"{"type":"CHANGED","object":{}}"#, "events.jsonl", 8).unwrap_err();
    assert!(
        e.to_string().contains("events.jsonl:8") && e.to_string().contains("CHANGED"),
        "{e}"
    );
    let mut c = LiveCluster::new("c", "events.jsonl", Scores::default());
    let bad = parse_event(
        r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"x","namespace":"n","uid":"u"},"status":{"podIP":"10.0.0.300"}}}"#,
        "events.jsonl",
        9,
    )
    .unwrap()
    .unwrap();
    let e = c.apply(bad).unwrap_err().to_string();
    assert!(
        e.contains("events.jsonl event 1") && e.contains("status.podIP"),
        "{e}"
    );
}
