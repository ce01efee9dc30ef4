//! Following a cluster live: kube-runtime's watcher over nodes, namespaces,
//! pods and services, on a thread of its own, its events delivered as
//! [`Incoming`] over a std channel (so that the publisher needs neither
//! kube nor tokio).
//!
//! Each kind's watcher lists (`Init`, `InitApply`…, `InitDone`: a
//! [`Change::Relist`] … [`Change::Listed`] of that kind), then watches from
//! the list's resource version. A dropped connection resumes the watch from
//! the last version seen; a `410 Gone` (the version left the server's
//! history) lists again, and whatever that relist lacks is gone. Failures
//! are retried with kube-runtime's default backoff (0.8 s doubling to 30 s)
//! and reported as [`Incoming::Problem`].

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use ringfence_inventory::events::{Change, Incoming, Kind, Object};

use crate::{PullError, error_chain, explain, load_kubeconfig};

/// Where to follow a cluster from.
#[derive(Clone, Debug, Default)]
pub struct FollowOptions {
    /// Kubeconfig context (default: the current context).
    pub context: Option<String>,
    /// Kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

/// A cluster being followed.
#[derive(Debug)]
pub struct Following {
    /// Its changes, in order within each kind.
    pub changes: Receiver<Incoming>,
    /// The API server's URL.
    pub server: String,
    /// The name of the context's cluster in the kubeconfig (`None`: in a
    /// pod, with its service account).
    pub cluster: Option<String>,
}

/// Start following the cluster of `opts`: the kubeconfig is read and the
/// client made now (errors say what to fix); lists and watches run on a
/// thread until the receiver is dropped. In a pod without a kubeconfig
/// (`$KUBERNETES_SERVICE_HOST` set, no flag), the pod's service account.
pub fn follow(opts: &FollowOptions) -> Result<Following, PullError> {
    let loaded = load_kubeconfig(opts.kubeconfig.as_deref(), opts.context.as_deref());
    let in_pod = opts.kubeconfig.is_none()
        && opts.context.is_none()
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && matches!(loaded, Err(PullError::Kubeconfig { .. }));
    let (kubeconfig, context, cluster) = if in_pod {
        (None, "in-cluster".to_owned(), None)
    } else {
        let (k, context, cluster) = loaded?;
        (Some(k), context, Some(cluster))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PullError::Runtime(e.to_string()))?;
    let client_error = |message: String| PullError::Client {
        context: context.clone(),
        message,
    };
    // The client's tasks are spawned on `runtime`, which the thread drives.
    let (client, server) = runtime.block_on(async {
        let options = kube::config::KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        let config = match kubeconfig {
            Some(k) => Config::from_custom_kubeconfig(k, &options)
                .await
                .map_err(|e| client_error(e.to_string()))?,
            None => Config::incluster().map_err(|e| client_error(e.to_string()))?,
        };
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| client_error(e.to_string()))?;
        Ok::<_, PullError>((client, server))
    })?;
    let (tx, changes) = mpsc::channel();
    let s = server.clone();
    let ctx = context.clone();
    std::thread::Builder::new()
        .name("kube-follow".into())
        .spawn(move || {
            runtime.block_on(async move {
                let tasks = [
                    tokio::spawn(watch::<Node>(
                        client.clone(),
                        Kind::Node,
                        tx.clone(),
                        s.clone(),
                        ctx.clone(),
                    )),
                    tokio::spawn(watch::<Namespace>(
                        client.clone(),
                        Kind::Namespace,
                        tx.clone(),
                        s.clone(),
                        ctx.clone(),
                    )),
                    tokio::spawn(watch::<Pod>(
                        client.clone(),
                        Kind::Pod,
                        tx.clone(),
                        s.clone(),
                        ctx.clone(),
                    )),
                    tokio::spawn(watch::<Service>(client, Kind::Service, tx, s, ctx)),
                ];
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .map_err(|e| PullError::Runtime(e.to_string()))?;
    Ok(Following {
        changes,
        server,
        cluster,
    })
}

/// Follow one kind until the receiver is gone.
async fn watch<K>(client: Client, kind: Kind, tx: Sender<Incoming>, server: String, context: String)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let object = |o: &K| -> Option<Object> {
            let mut v = serde_json::to_value(o).ok()?;
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            Some(match kind {
                Kind::Node => Object::Node(v),
                Kind::Namespace => Object::Namespace(v),
                Kind::Pod => Object::Pod(v),
                Kind::Service => Object::Service(v),
            })
        };
        let incoming = match event {
            Ok(Event::Init) => Incoming::Change(Change::Relist(Some(kind))),
            Ok(Event::InitDone) => Incoming::Change(Change::Listed(Some(kind))),
            Ok(Event::InitApply(o) | Event::Apply(o)) => match object(&o) {
                Some(o) => Incoming::Change(Change::Put(o)),
                None => continue,
            },
            Ok(Event::Delete(o)) => match object(&o) {
                Some(o) => Incoming::Change(Change::Delete(o)),
                None => continue,
            },
            Err(e) => Incoming::Problem(problem(e, kind.resource(), &server, &context)),
        };
        if tx.send(incoming).is_err() {
            return;
        }
    }
}

/// A watcher's error in one line that says what happens next or what to do.
fn problem(e: watcher::Error, resource: &'static str, server: &str, context: &str) -> String {
    let failed = |message: String, help: String| PullError::List {
        resource,
        server: server.to_owned(),
        message,
        help,
    };
    match e {
        watcher::Error::InitialListFailed(e) => explain(e, resource, context, &failed).to_string(),
        watcher::Error::WatchStartFailed(e) => format!(
            "watching {resource} from {server}: {}; retrying",
            error_chain(&e)
        ),
        watcher::Error::WatchError(status) if status.code == 410 => format!(
            "watching {resource} from {server}: {} {}: {}; listing them again",
            status.code, status.reason, status.message
        ),
        watcher::Error::WatchError(status) => format!(
            "watching {resource} from {server}: {} {}: {}; retrying",
            status.code, status.reason, status.message
        ),
        watcher::Error::WatchFailed(e) => format!(
            "watching {resource} from {server}: {}; reconnecting",
            error_chain(&e)
        ),
        other => format!("watching {resource} from {server}: {other}; listing them again"),
    }
}
