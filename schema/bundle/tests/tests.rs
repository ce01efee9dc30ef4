//! Bundles and membership documents: attacks, golden files and random input.

mod attacks;
mod common;
mod golden;
mod membership;
mod random;
