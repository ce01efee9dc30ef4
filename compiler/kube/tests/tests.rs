//! The Kubernetes API client against real HTTP servers on 127.0.0.1.

mod follow;
mod pull;
