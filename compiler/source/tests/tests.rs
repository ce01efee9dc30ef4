//! Reading intent from real Git repositories, and the GitOps helpers.

mod git;
mod repo;
