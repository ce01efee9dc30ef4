//! End-to-end tests of ringfence: the binaries, real nftables in network
//! namespaces, real Git repositories. The tests live in `tests/tests/`.
