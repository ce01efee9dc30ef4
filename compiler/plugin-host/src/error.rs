//! What can go wrong loading or running a plugin. Every message names the
//! plugin; render errors also name the node.

use std::path::PathBuf;

/// A plugin could not be loaded, or failed to render a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's SHA-256 is not the pinned one.
    #[error(
        "plugin {path} has sha256 {actual}, but intent pins {expected}: refusing to load it (update the pin if the new file is trusted)"
    )]
    Digest {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// Not a valid WebAssembly module, or the engine could not compile it.
    #[error("plugin {plugin} is not a valid WebAssembly module: {message}")]
    Compile {
        /// Plugin name (or file).
        plugin: String,
        /// Why.
        message: String,
    },
    /// The module imports something; plugins must import nothing.
    #[error(
        "plugin {plugin} imports {}: a backend plugin must import nothing (no WASI, no host functions)",
        imports.join(", ")
    )]
    Imports {
        /// Plugin name (or file).
        plugin: String,
        /// `module::name (kind)` of each import.
        imports: Vec<String>,
    },
    /// A required export is missing or has the wrong type.
    #[error("plugin {plugin} does not follow the plugin ABI: {message}")]
    Exports {
        /// Plugin name (or file).
        plugin: String,
        /// What is missing or wrong.
        message: String,
    },
    /// `ringfence_abi` returned another version.
    #[error(
        "plugin {plugin} speaks plugin ABI {found}, this ringfence speaks {expected}: rebuild it against this version's SDK"
    )]
    Abi {
        /// Plugin name (or file).
        plugin: String,
        /// What it reported.
        found: i64,
        /// [`ringfence_schema::plugin::PLUGIN_ABI`].
        expected: u32,
    },
    /// `ringfence_info` returned something unusable.
    #[error("plugin {plugin} describes itself badly: {message}")]
    Info {
        /// Plugin name (or file).
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// The plugin used up its fuel budget.
    #[error(
        "plugin {plugin} used more than {fuel} fuel rendering node {node} (raise the fuel limit if the node is genuinely that large)"
    )]
    OutOfFuel {
        /// Plugin name.
        plugin: String,
        /// The budget.
        fuel: u64,
        /// The node being rendered (empty when loading).
        node: String,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin {plugin} tried to use more than {limit} bytes of memory rendering node {node}")]
    Memory {
        /// Plugin name.
        plugin: String,
        /// The cap, bytes.
        limit: usize,
        /// The node being rendered.
        node: String,
    },
    /// The wall-clock backstop fired.
    #[error("plugin {plugin} ran longer than {seconds:.1} s rendering node {node}")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// The limit, seconds.
        seconds: f64,
        /// The node being rendered.
        node: String,
    },
    /// The plugin trapped (a panic is a trap).
    #[error("plugin {plugin} crashed rendering node {node}: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The node being rendered.
        node: String,
        /// The trap, as wasmtime reports it.
        message: String,
    },
    /// The plugin returned something that is not a valid response.
    #[error("plugin {plugin} returned bad output for node {node}: {message}")]
    BadOutput {
        /// Plugin name.
        plugin: String,
        /// The node being rendered.
        node: String,
        /// What is wrong with it.
        message: String,
    },
    /// The plugin refused the IR (a clean `Error` response).
    #[error("plugin {plugin} cannot render node {node}: {message}")]
    Refused {
        /// Plugin name.
        plugin: String,
        /// The node being rendered.
        node: String,
        /// The plugin's explanation.
        message: String,
    },
    /// The engine could not be set up, or the IR could not be serialised.
    #[error("plugin host: {0}")]
    Host(String),
}

impl PluginError {
    /// The node this error is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            PluginError::OutOfFuel { node, .. }
            | PluginError::Memory { node, .. }
            | PluginError::Timeout { node, .. }
            | PluginError::Trap { node, .. }
            | PluginError::BadOutput { node, .. }
            | PluginError::Refused { node, .. } => Some(node.as_str()).filter(|n| !n.is_empty()),
            _ => None,
        }
    }
}
