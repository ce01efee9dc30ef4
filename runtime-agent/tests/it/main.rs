//! The agent's integration tests. Those touching nftables create their own
//! network namespaces (root needed) and delete them when done.

mod deps;
mod fixture;
mod hostile;
mod http;
mod linux;
mod membership;
mod refusals;
mod support;
mod swap;
mod tls;
