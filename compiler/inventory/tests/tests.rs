//! Inventories from outside: files, and live ones from watch events.

mod events;
mod files;
mod glob;
