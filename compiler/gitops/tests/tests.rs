//! Integration tests of ringfence-gitops against real Git repositories made
//! with the `git` binary in temp dirs.

mod git;
mod plan;
mod serve;
mod watch;
