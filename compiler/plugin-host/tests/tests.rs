//! Integration tests of the plugin host and the built-in backends, all
//! through the real `.wasm` files in `plugins/dist/`.

mod common;

mod golden;
mod host;
mod live;
mod nft_enforce;
mod node_return;
mod windows;
