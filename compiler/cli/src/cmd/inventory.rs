//! `ringfence inventory pull`: reads a cluster through its API server and
//! writes the kubectl List that `--inventory` takes.

use std::io::Write;

use anyhow::Context;
use ringfence_kube::PullOptions;

use crate::Exit;
use crate::flags::PullArgs;

pub(crate) fn pull(args: PullArgs) -> anyhow::Result<Exit> {
    let options = PullOptions {
        context: args.context,
        kubeconfig: args.kubeconfig,
        cluster: args.cluster,
        ..PullOptions::default()
    };
    let json = ringfence_kube::pull(&options)?;
    let target = match &args.out {
        Some(path) => path.display().to_string(),
        None => "stdout".to_owned(),
    };
    // Refuse to write what `--inventory` would not take.
    let cluster = ringfence_inventory::parse_list(&json, &target)
        .context("the API server's objects do not make a usable inventory")?;
    match &args.out {
        Some(path) => std::fs::write(path, &json)
            .with_context(|| format!("{}: cannot write the inventory", path.display()))?,
        None => std::io::stdout().write_all(json.as_bytes())?,
    }
    #[allow(clippy::print_stderr)] // progress goes to stderr; the List is the result
    {
        eprintln!(
            "cluster {}: {} nodes, {} namespaces, {} pods, {} services written to {target}",
            cluster.name,
            cluster.nodes.len(),
            cluster.namespaces.len(),
            cluster.pods.len(),
            cluster.services.len()
        );
    }
    Ok(Exit::Clean)
}
