//! Live inventory: reads nodes, namespaces, pods and services from a
//! Kubernetes API server and writes them as the kubectl `List` that
//! `ringfence_inventory::parse_list` reads.
//!
//! The only crate that talks to an API server (and so the only one with kube
//! and tokio). [`pull`] is synchronous: it runs its own current-thread runtime.
//! [`follow`] keeps following the cluster (kube-runtime's watcher) on a
//! thread, and delivers its changes over a std channel.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use ringfence_inventory::CLUSTER_ANNOTATION;

mod follow;
pub use follow::{FollowOptions, Following, follow};

/// What to read, and from where.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Kubeconfig context (default: the current context).
    pub context: Option<String>,
    /// Kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Cluster name recorded in the List (default: the context's cluster).
    pub cluster: Option<String>,
    /// Objects per list request (the API server's `limit`); pages are followed
    /// with `continue` until the list is complete.
    pub page_size: u32,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            context: None,
            kubeconfig: None,
            cluster: None,
            page_size: 500,
        }
    }
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The kubeconfig could not be read or parsed.
    #[error(
        "{file}: cannot load the kubeconfig: {reason}; pass --kubeconfig FILE, or set $KUBECONFIG"
    )]
    Kubeconfig {
        /// The file, or where it was looked for.
        file: String,
        /// Why.
        reason: String,
    },
    /// The context asked for (or the current one) is not in the kubeconfig.
    #[error("{problem}; {help}")]
    Context {
        /// What is wrong.
        problem: String,
        /// What to do.
        help: String,
    },
    /// The context's cluster or user cannot make a client.
    #[error(
        "context `{context}`: cannot configure a client: {message}; fix its cluster and user entries in the kubeconfig"
    )]
    Client {
        /// The context.
        context: String,
        /// Why.
        message: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(String),
    /// A list request failed.
    #[error("listing {resource} from {server}: {message}; {help}")]
    List {
        /// `nodes`, `namespaces`, `pods` or `services`.
        resource: &'static str,
        /// The API server's URL.
        server: String,
        /// What the server or the connection said.
        message: String,
        /// What to do.
        help: String,
    },
}

/// Reads the cluster and returns it as a pretty-printed kubectl `List`
/// (items sorted by kind, namespace and name; `managedFields` dropped, as
/// kubectl does) annotated with the cluster's name.
pub fn pull(opts: &PullOptions) -> Result<String, PullError> {
    let (kubeconfig, context, context_cluster) =
        load_kubeconfig(opts.kubeconfig.as_deref(), opts.context.as_deref())?;
    let cluster = match &opts.cluster {
        Some(c) => c.clone(),
        None => context_cluster,
    };
    if !ringfence_inventory::names::is_cluster_name(&cluster) {
        let from = match opts.cluster {
            Some(_) => "--cluster".to_owned(),
            None => format!("the cluster of context `{context}`"),
        };
        return Err(PullError::Context {
            problem: format!(
                "{from} is named {cluster:?}, which cannot name a cluster in the inventory"
            ),
            help: format!(
                "pass --cluster NAME ({})",
                ringfence_inventory::names::CLUSTER_NAME
            ),
        });
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PullError::Runtime(e.to_string()))?;
    let items = runtime.block_on(async {
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| PullError::Client {
                context: context.clone(),
                message: e.to_string(),
            })?;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| PullError::Client {
            context: context.clone(),
            message: e.to_string(),
        })?;
        let mut items = Vec::new();
        let page = opts.page_size.max(1);
        items.extend(list_all::<Node>(&client, "nodes", &server, &context, page).await?);
        items.extend(list_all::<Namespace>(&client, "namespaces", &server, &context, page).await?);
        items.extend(list_all::<Pod>(&client, "pods", &server, &context, page).await?);
        items.extend(list_all::<Service>(&client, "services", &server, &context, page).await?);
        Ok::<_, PullError>(items)
    })?;

    let list = json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {
            "annotations": { CLUSTER_ANNOTATION: cluster },
            "resourceVersion": "",
        },
    });
    let mut text = serde_json::to_string_pretty(&list).expect("a JSON value always serialises");
    text.push('\n');
    Ok(text)
}

/// The kubeconfig (`file`, else `$KUBECONFIG` or `~/.kube/config`), the
/// context to use (`wanted`, else the current one) and its cluster's name.
fn load_kubeconfig(
    file: Option<&Path>,
    wanted: Option<&str>,
) -> Result<(Kubeconfig, String, String), PullError> {
    let (kubeconfig, shown) = match file {
        Some(path) => (Kubeconfig::read_from(path), path.display().to_string()),
        None => (
            Kubeconfig::read(),
            "$KUBECONFIG or ~/.kube/config".to_owned(),
        ),
    };
    let kubeconfig = kubeconfig.map_err(|e| PullError::Kubeconfig {
        file: shown,
        reason: match e {
            KubeconfigError::ReadConfig(io, _) if file.is_some() => io.to_string(),
            KubeconfigError::ReadConfig(io, path) => {
                format!("{io} (looked for {})", path.display())
            }
            other => error_chain(&other),
        },
    })?;
    let (context, cluster) = resolve_context(&kubeconfig, wanted)?;
    Ok((kubeconfig, context, cluster))
}

/// The context to use and the name of its cluster.
fn resolve_context(
    kubeconfig: &Kubeconfig,
    wanted: Option<&str>,
) -> Result<(String, String), PullError> {
    let mut known: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    known.sort_unstable();
    if known.is_empty() {
        return Err(PullError::Context {
            problem: "the kubeconfig has no contexts".into(),
            help: "point --kubeconfig at a kubeconfig file (`kubectl config view` shows yours)"
                .into(),
        });
    }
    let choose = format!("pass --context with one of: {}", known.join(", "));
    let name = match wanted.or(kubeconfig.current_context.as_deref()) {
        Some(name) if !name.is_empty() => name,
        _ => {
            return Err(PullError::Context {
                problem: "the kubeconfig has no current context".into(),
                help: choose,
            });
        }
    };
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| PullError::Context {
            problem: format!("context `{name}` is not in the kubeconfig"),
            help: choose.clone(),
        })?;
    Ok((name.to_owned(), context.cluster.clone()))
}

/// Every object of one resource, following `continue` tokens page by page,
/// sorted by namespace and name, as kubectl would print them.
async fn list_all<K>(
    client: &Client,
    resource: &'static str,
    server: &str,
    context: &str,
    page_size: u32,
) -> Result<Vec<Value>, PullError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let failed = |message: String, help: String| PullError::List {
        resource,
        server: server.to_owned(),
        message,
        help,
    };
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(page_size);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|e| explain(e, resource, context, &failed))?;
        for object in page.items {
            let mut value = serde_json::to_value(&object)
                .map_err(|e| failed(e.to_string(), "report this as a bug".into()))?;
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            items.push(value);
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) if token.as_deref() == Some(next.as_str()) => {
                return Err(failed(
                    format!("the server returned the same continue token twice ({next:?})"),
                    "the server's pagination is broken; retry with a larger page".into(),
                ));
            }
            Some(next) => token = Some(next),
            None => break,
        }
    }
    items.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(items)
}

fn sort_key(item: &Value) -> (&str, &str) {
    let meta = |k: &str| {
        item.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    (meta("namespace"), meta("name"))
}

/// Turns a client error into a message that says what to do.
fn explain(
    e: kube::Error,
    resource: &str,
    context: &str,
    failed: &impl Fn(String, String) -> PullError,
) -> PullError {
    match e {
        kube::Error::Api(status) => {
            let help = match status.code {
                401 => format!(
                    "the API server refused the credentials of context `{context}`; refresh them \
                     (log in again or renew the token)"
                ),
                403 => format!(
                    "the user of context `{context}` may not list {resource} in all namespaces; \
                     grant get and list on nodes, namespaces, pods and services (a ClusterRole)"
                ),
                404 => "the server has no such API; is it a Kubernetes API server?".to_owned(),
                _ => "check the API server's health and retry".to_owned(),
            };
            let detail = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            failed(format!("{} {}: {detail}", status.code, status.reason), help)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => failed(
            error_chain(&e),
            format!("check that the server address of context `{context}` is right and reachable"),
        ),
        other => failed(
            error_chain(&other),
            "check the API server and retry".to_owned(),
        ),
    }
}

/// An error and its causes on one line (`a: b: c`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}
