//! climc's integration tests: one test binary, one module per area.

mod fake_keystone;
mod real;
