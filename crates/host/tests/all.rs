//! Integration tests of the host agent (one binary, modules inside).
mod real_vm;
