//! Integration tests of the test harness itself.

#[path = "all/simhost.rs"]
mod simhost;
