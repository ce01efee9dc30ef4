//! An example third-party backend: every rule of the node as one CSV row.
//!
//! It shows the whole of what a backend needs: a name and capabilities,
//! a render function from [`NodeIr`] to files, and [`export_backend!`].
//! Build it with `plugins/build.sh`, pin it in intent with
//! `plugin "example-csv" path="…" sha256="…"` (see `plugins/README.md`).
//!
//! [`export_backend!`]: ringfence_plugin_sdk::export_backend

use ringfence_plugin_sdk::Backend;
use ringfence_plugin_sdk::schema::ir::{Direction, Mode, NodeIr, Os};
use ringfence_plugin_sdk::schema::plugin::{
    Artifact, Capabilities, PLUGIN_ABI, PluginInfo, RenderOutput,
};

struct Csv;

impl Backend for Csv {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "example-csv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: PLUGIN_ABI,
            os: Os::Linux,
            capabilities: Capabilities {
                ipv6: true,
                port_ranges: true,
                logging: true,
                analyze_mode: true,
                first_match: true,
                exposures: false,
                max_rules: None,
                live_membership: false,
            },
            description: "Example: the node's rules as CSV, for audits".into(),
        }
    }

    fn render(ir: &NodeIr) -> Result<RenderOutput, String> {
        let mut csv =
            String::from("chain,direction,mode,position,rule,policy,action,peer,proto,ports,log\n");
        for c in &ir.chains {
            for (i, r) in c.rules.iter().enumerate() {
                let ports: Vec<String> = r.ports.iter().map(|p| p.to_string()).collect();
                csv.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{}\n",
                    c.id,
                    match c.direction {
                        Direction::Ingress => "ingress",
                        Direction::Egress => "egress",
                    },
                    match c.mode {
                        Mode::Enforce => "enforce",
                        Mode::Analyze => "analyze",
                    },
                    i + 1,
                    r.id,
                    r.policy,
                    r.action,
                    r.peer.as_deref().unwrap_or("*"),
                    r.proto,
                    ports.join(" "),
                    r.log,
                ));
            }
        }
        Ok(RenderOutput {
            artifacts: vec![Artifact {
                name: "rules.csv".into(),
                content: csv,
            }],
            warnings: Vec::new(),
        })
    }
}

ringfence_plugin_sdk::export_backend!(Csv);
