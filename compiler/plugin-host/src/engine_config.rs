//! The engine settings that change compiled code; `build.rs` precompiles the
//! built-in backends with them and `slots.rs` builds the host's engine on them.

/// Fuel metering always; epoch interruption when renders have a timeout.
pub(crate) fn code(timeout: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(timeout);
    config
}
