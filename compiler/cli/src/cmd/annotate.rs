//! `check`'s diagnostics for CI systems, made from the JSON document `check
//! -o json` prints (so all formats say the same thing):
//!
//! - GitHub Actions workflow commands (`::error file=…,line=…::…`), which a
//!   pull request shows as annotations on the lines;
//! - SARIF 2.1.0, the static-analysis interchange format code scanning reads.

use serde_json::{Value, json};

/// One workflow command per diagnostic.
pub(crate) fn github(doc: &Value) -> String {
    let mut out = String::new();
    for d in diagnostics(doc) {
        let level = if d["severity"] == "error" {
            "error"
        } else {
            "warning"
        };
        let mut props = Vec::new();
        if let Some(file) = d["file"].as_str() {
            props.push(format!("file={}", property(file)));
            props.push(format!("line={}", d["line"]));
            props.push(format!("col={}", d["column"]));
        }
        props.push(format!("title={}", property(str_of(&d["code"]))));
        out.push_str(&format!(
            "::{level} {}::{}\n",
            props.join(","),
            data(&message(d))
        ));
    }
    out
}

/// A SARIF log with one run: the rules seen, one result per diagnostic.
pub(crate) fn sarif(doc: &Value) -> Value {
    let mut rules: Vec<&str> = diagnostics(doc).map(|d| str_of(&d["code"])).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = diagnostics(doc)
        .map(|d| {
            let mut r = json!({
                "ruleId": str_of(&d["code"]),
                "level": if d["severity"] == "error" { "error" } else { "warning" },
                "message": { "text": message(d) },
            });
            if let Some(file) = d["file"].as_str() {
                r["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file },
                        "region": { "startLine": d["line"], "startColumn": d["column"] },
                    }
                }]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ringfence",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| json!({ "id": r })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

fn diagnostics(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["diagnostics"].as_array().into_iter().flatten()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The message, its label and its help, as one text.
fn message(d: &Value) -> String {
    let mut m = str_of(&d["message"]).to_string();
    if let Some(l) = d["label"].as_str().filter(|l| !l.is_empty()) {
        m.push_str(&format!(" ({l})"));
    }
    if let Some(h) = d["help"].as_str() {
        m.push_str(&format!("\nhelp: {h}"));
    }
    m
}

/// Escaping of a workflow command's message.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_locations() {
        let doc = json!({"diagnostics": [
            {"severity": "error", "code": "E0101", "message": "50% bad,\nreally",
             "file": "a:b,c.kdl", "line": 3, "column": 7, "help": "fix it"},
            {"severity": "warning", "code": "W0002", "message": "no file"},
        ]});
        assert_eq!(
            github(&doc),
            "::error file=a%3Ab%2Cc.kdl,line=3,col=7,title=E0101::50%25 bad,%0Areally%0Ahelp: fix it\n\
             ::warning title=W0002::no file\n"
        );
        let s = sarif(&doc);
        assert_eq!(s["version"], "2.1.0");
        let r = &s["runs"][0]["results"];
        assert_eq!(
            r[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            3
        );
        assert_eq!(r[1]["level"], "warning");
        assert!(r[1].get("locations").is_none());
        assert_eq!(
            s["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
