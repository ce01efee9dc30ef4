//! The intent language from outside: the fixture corpus and property tests.

mod fixtures;
mod props;
