//! [`Pipeline`]: intent at a revision to signed bundles, in four stages —
//! [`check`](Pipeline::check), [`compile`](Pipeline::compile),
//! [`render`](Pipeline::render), [`seal`](Pipeline::seal) — that every
//! command and `watch` run the same way.
//!
//! Each stage returns its value with what it found, in the manner of typst's
//! `Warned<SourceResult<T>>`: a [`Warned`] holds the value (`None` when an
//! error diagnostic stopped the stage), the diagnostics and the files they
//! point into. `Err(DriverError)` is the third outcome: the stage could not
//! run (unreadable repository or inventory, no plugin runtime, a write that
//! failed). `compile` carries check's warnings on, so its list says
//! everything about the intent; `render` and `seal` report their own.
//!
//! The pipeline keeps the plugin runtime with the built-in backends, started
//! on the first render and reused by every later one, under the default
//! [`Limits`]; third-party plugins an intent pins are loaded per render.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ringfence_core::Compiled;
use ringfence_intent::model::{Intent, SourceFile};
use ringfence_intent::{Diagnostics, Severity};
use ringfence_inventory::model::Inventory;
use ringfence_plugin_host::{Host, Limits, PluginError};
use ringfence_schema::bundle::SourceRef;
use ringfence_schema::ir::NodeIr;
use ringfence_source::{Selector, Snapshot};

use crate::bundles::{
    BundleWriteError, NodeOutput, Output, Sealer, WriteOptions, WriteSummary, write_bundles,
    write_bundles_keeping,
};
use crate::render::{self, Backends};

/// What a stage made and what it found.
#[derive(Clone, Debug)]
#[must_use]
pub struct Warned<T> {
    /// The value; `None` exactly when `diagnostics` has an error.
    pub output: Option<T>,
    /// Warnings, and the errors that stopped the stage; sorted.
    pub diagnostics: Diagnostics,
    /// The intent files the diagnostics point into.
    pub files: Vec<SourceFile>,
}

impl<T> Warned<T> {
    /// `value` unless `diagnostics` has an error.
    fn new(value: T, mut diagnostics: Diagnostics, files: Vec<SourceFile>) -> Warned<T> {
        diagnostics.sort();
        let output = (!diagnostics.has_errors()).then_some(value);
        Warned {
            output,
            diagnostics,
            files,
        }
    }

    /// No value: the errors in `diagnostics` stopped the stage.
    fn stopped(mut diagnostics: Diagnostics, files: Vec<SourceFile>) -> Warned<T> {
        diagnostics.sort();
        debug_assert!(diagnostics.has_errors());
        Warned {
            output: None,
            diagnostics,
            files,
        }
    }
}

/// Where intent is read from.
#[derive(Clone, Debug)]
pub enum IntentFrom<'a> {
    /// A directory (possibly inside a Git repository) in some state.
    Dir(&'a Path, Selector),
    /// A directory of a repository (bare or not) at a revision.
    Repo {
        /// The repository.
        repo: &'a Path,
        /// The intent directory inside it (`""` or `.` for the root).
        subdir: &'a str,
        /// The revision.
        rev: &'a str,
    },
}

impl IntentFrom<'_> {
    fn describe(&self) -> String {
        match self {
            IntentFrom::Dir(dir, Selector::WorkingTree) => dir.display().to_string(),
            IntentFrom::Dir(dir, Selector::Rev(rev)) => {
                format!("{} at revision {rev}", dir.display())
            }
            IntentFrom::Dir(dir, Selector::Index) => format!("{} in the Git index", dir.display()),
            IntentFrom::Repo { repo, subdir, rev } => {
                format!("{}:{subdir} at revision {rev}", repo.display())
            }
        }
    }
}

/// Intent that checks, and where it came from.
#[derive(Clone, Debug)]
pub struct CheckedIntent {
    /// The intent.
    pub intent: Intent,
    /// Where it came from.
    pub source: SourceRef,
    /// The intent directory on disk, when read from the working tree
    /// (third-party plugins load from there only).
    pub dir: Option<PathBuf>,
}

/// The inventory and the digest of its files.
#[derive(Clone, Debug)]
pub struct LoadedInventory {
    /// The inventory.
    pub inventory: Inventory,
    /// Hex SHA-256 of its files, as bundles record it.
    pub sha256: String,
}

/// A successful compile.
pub struct Session {
    /// The intent files, sorted by path (diagnostic spans point into them).
    pub files: Vec<SourceFile>,
    /// Where intent came from.
    pub source: SourceRef,
    /// The intent.
    pub intent: Intent,
    /// The inventory.
    pub inventory: Inventory,
    /// Digest of the inventory files (as recorded in bundles).
    pub inventory_sha256: String,
    /// The compiled policy.
    pub compiled: Compiled,
    /// The node IRs to render instead of the compile's, in its node order
    /// (`watch` with a live inventory: live IRs for backends that take
    /// membership, shared with its live state and render cache); `None`
    /// renders [`Compiled::nodes`].
    pub irs: Option<Vec<Arc<NodeIr>>>,
    /// Warnings of checking and compiling (never errors).
    pub warnings: Diagnostics,
    /// The intent directory on disk, when intent was read from the working tree.
    pub dir: Option<PathBuf>,
}

impl Session {
    /// The node IRs rendered: [`Session::irs`] if set, else the compile's.
    pub fn nodes(&self) -> Vec<&NodeIr> {
        match &self.irs {
            Some(irs) => irs.iter().map(|ir| &**ir).collect(),
            None => self.compiled.nodes().iter().collect(),
        }
    }
}

/// How to seal a session's rendered nodes.
pub struct Seal<'a> {
    /// Where, who signs, times and generation.
    pub output: Output<'a>,
    /// The repository to record in the bundles' source, if known.
    pub repository: Option<String>,
    /// A previous output directory whose bundles of unchanged nodes are kept
    /// as they are instead of re-sealed.
    pub keep_from: Option<&'a Path>,
}

/// Why a stage could not run (invalid intent is not an error: see [`Warned`]).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Intent could not be read.
    #[error("reading intent from {what}: {source}")]
    Source {
        /// Where from.
        what: String,
        /// Why.
        #[source]
        source: ringfence_source::SourceError,
    },
    /// There is no intent there.
    #[error("{0}: no *.kdl intent files (give the intent directory)")]
    Empty(String),
    /// The inventory could not be loaded.
    #[error(transparent)]
    Inventory(#[from] ringfence_inventory::InventoryError),
    /// An inventory file could not be read for its digest.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The plugin runtime could not start.
    #[error("the plugin runtime: {0}")]
    Plugins(PluginError),
    /// Bundles could not be written.
    #[error(transparent)]
    Bundles(#[from] BundleWriteError),
}

/// The pipeline: its stages, and the plugin runtime they share.
#[derive(Default)]
pub struct Pipeline {
    host: OnceLock<Host>,
    will_render: bool,
    follow: bool,
}

impl Pipeline {
    /// A pipeline; the plugin runtime starts on the first render.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// A pipeline that will render what it compiles: its plugin runtime
    /// starts while [`session`](Pipeline::session) reads and compiles.
    pub fn rendering() -> Pipeline {
        Pipeline {
            will_render: true,
            ..Pipeline::default()
        }
    }

    /// This pipeline, its compiles keeping what following a live inventory
    /// needs ([`ringfence_core::compile_live`]).
    pub fn following(self) -> Pipeline {
        Pipeline {
            follow: true,
            ..self
        }
    }

    /// The plugin runtime, started on first use.
    fn host(&self) -> Result<&Host, DriverError> {
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let h = Host::new(Limits::default()).map_err(DriverError::Plugins)?;
        Ok(self.host.get_or_init(|| h))
    }

    /// Read and check intent.
    pub fn check(&self, from: &IntentFrom<'_>) -> Result<Warned<CheckedIntent>, DriverError> {
        let what = from.describe();
        let snap: Snapshot = match from {
            IntentFrom::Dir(dir, sel) => ringfence_source::read(dir, sel),
            IntentFrom::Repo { repo, subdir, rev } => {
                ringfence_source::read_repo(repo, subdir, rev)
            }
        }
        .map_err(|source| DriverError::Source {
            what: what.clone(),
            source,
        })?;
        if snap.files.is_empty() {
            return Err(DriverError::Empty(what));
        }
        let files: Vec<SourceFile> = snap
            .files
            .into_iter()
            .map(|f| SourceFile {
                path: f.path,
                text: Arc::from(f.text),
            })
            .collect();
        let dir = match from {
            IntentFrom::Dir(dir, Selector::WorkingTree) => Some(dir.to_path_buf()),
            _ => None,
        };
        Ok(self.check_files(files, snap.source, dir))
    }

    /// Check intent files already read (`check -` reads one from standard
    /// input): `source` is where they came from, `dir` the intent directory
    /// on disk if there is one.
    pub fn check_files(
        &self,
        files: Vec<SourceFile>,
        source: SourceRef,
        dir: Option<PathBuf>,
    ) -> Warned<CheckedIntent> {
        let checked = ringfence_intent::load(files.clone());
        match checked.intent {
            Some(intent) => Warned::new(
                CheckedIntent {
                    intent,
                    source,
                    dir,
                },
                checked.diagnostics,
                files,
            ),
            None => Warned::stopped(checked.diagnostics, files),
        }
    }

    /// Load the inventory and its digest.
    pub fn inventory(
        &self,
        paths: &[PathBuf],
        trivy: &[PathBuf],
    ) -> Result<LoadedInventory, DriverError> {
        let (inventory, sha256) = ringfence_inventory::load_digested(paths, trivy)?;
        Ok(LoadedInventory { inventory, sha256 })
    }

    /// Compile checked intent against the inventory; check's diagnostics
    /// come along.
    pub fn compile(
        &self,
        checked: Warned<CheckedIntent>,
        inventory: LoadedInventory,
    ) -> Warned<Session> {
        let Warned {
            output,
            mut diagnostics,
            files,
        } = checked;
        let Some(CheckedIntent {
            intent,
            source,
            dir,
        }) = output
        else {
            return Warned::stopped(diagnostics, files);
        };
        let compile = match self.follow {
            true => ringfence_core::compile_live,
            false => ringfence_core::compile,
        };
        let (compiled, d) = compile(&intent, &inventory.inventory);
        diagnostics.extend(d);
        diagnostics.sort();
        let Some(compiled) = compiled.filter(|_| !diagnostics.has_errors()) else {
            return Warned::stopped(diagnostics, files);
        };
        debug_assert!(
            diagnostics
                .0
                .iter()
                .all(|d| d.severity == Severity::Warning)
        );
        let session = Session {
            files: files.clone(),
            source,
            intent,
            inventory: inventory.inventory,
            inventory_sha256: inventory.sha256,
            compiled,
            irs: None,
            warnings: diagnostics.clone(),
            dir,
        };
        Warned::new(session, diagnostics, files)
    }

    /// [`check`](Pipeline::check), load the inventory files, and
    /// [`compile`](Pipeline::compile): the session of `from`.
    pub fn session(
        &self,
        from: &IntentFrom<'_>,
        inventory: &[PathBuf],
        trivy: &[PathBuf],
    ) -> Result<Warned<Session>, DriverError> {
        // Intent and inventory are read side by side, and the plugin runtime
        // of a pipeline that will render starts beside them.
        let ((checked, inventory), ()) = rayon::join(
            || rayon::join(|| self.check(from), || self.inventory(inventory, trivy)),
            || {
                if self.will_render {
                    // A failure is reported by the render that needs it.
                    let _ = self.host();
                }
            },
        );
        Ok(self.compile(checked?, inventory?))
    }

    /// The backends `session` may use: the built-ins and the plugins its
    /// intent pins (read from its directory). A pinned plugin that cannot be
    /// loaded, has another digest, or calls itself by another name is an
    /// error diagnostic at its `plugin` node.
    pub fn backends(&self, session: &Session) -> Result<Warned<Backends<'_>>, DriverError> {
        let host = self.host()?;
        let (backends, diagnostics) = Backends::load(host, &session.intent, session.dir.as_deref());
        Ok(Warned::new(backends, diagnostics, session.files.clone()))
    }

    /// Render every node of `session` with its backend (each node's files:
    /// its artifacts and `ir.json`). An error (a pinned plugin unusable, no
    /// such backend, a capability it lacks, a plugin failure) means nothing
    /// may be published.
    pub fn render(&self, session: &Session) -> Result<Warned<Vec<NodeOutput>>, DriverError> {
        let backends = self.backends(session)?;
        let Some(backends) = backends.output else {
            return Ok(Warned::stopped(backends.diagnostics, backends.files));
        };
        let (nodes, diagnostics) = render::render_some(session, &backends, |_| true);
        Ok(Warned::new(nodes, diagnostics, session.files.clone()))
    }

    /// [`render`](Pipeline::render) and [`seal`](Pipeline::seal) in one
    /// pass: each node is sealed as soon as it is rendered and its files are
    /// dropped once its bundle is written, so memory does not grow with the
    /// cluster. The bundles are the same bytes. If any node fails to render
    /// or seal, nothing is put in place (temporary files are removed).
    pub fn render_seal(
        &self,
        session: &Session,
        how: &Seal<'_>,
    ) -> Result<Warned<WriteSummary>, DriverError> {
        let backends = self.backends(session)?;
        let Some(backends) = backends.output else {
            return Ok(Warned::stopped(backends.diagnostics, backends.files));
        };
        let opts = seal_options(session, how);
        let sealer = Sealer::new(
            &opts,
            how.keep_from,
            session.nodes().into_iter().map(|ir| ir.node.as_str()),
        )?;
        let (sealed, diagnostics) =
            render::render_each(session, &backends, |_| true, |n| sealer.seal(&n));
        if diagnostics.has_errors() {
            sealer.abandon(sealed);
            return Ok(Warned::stopped(diagnostics, session.files.clone()));
        }
        let summary = sealer.finish(sealed)?;
        Ok(Warned::new(summary, diagnostics, session.files.clone()))
    }

    /// Seal `nodes`, rendered from `session`, into signed bundles and a
    /// signed index (see [`crate::bundles`]).
    pub fn seal(
        &self,
        session: &Session,
        nodes: &[NodeOutput],
        how: &Seal<'_>,
    ) -> Result<Warned<WriteSummary>, DriverError> {
        let opts = seal_options(session, how);
        let summary = match how.keep_from {
            Some(previous) => write_bundles_keeping(nodes, &opts, previous)?,
            None => write_bundles(nodes, &opts)?,
        };
        Ok(Warned::new(
            summary,
            Diagnostics::default(),
            session.files.clone(),
        ))
    }
}

/// The bundle writer's options for sealing `session` as `how` says.
fn seal_options<'a>(session: &Session, how: &Seal<'a>) -> WriteOptions<'a> {
    let mut source = session.source.clone();
    if let Some(r) = &how.repository {
        source.repository = Some(r.clone());
    }
    WriteOptions {
        output: how.output,
        source,
        inventory_sha256: session.inventory_sha256.clone(),
    }
}
