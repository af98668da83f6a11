//! Integration tests of the host agent (one binary, modules inside). They need root: every
//! one creates its own network namespace and removes it (and every QEMU it started) at the end.

#[path = "all/common.rs"]
mod common;
#[path = "all/direct_deploy.rs"]
mod direct_deploy;
#[path = "all/e2e.rs"]
mod e2e;
#[path = "all/real_vm.rs"]
mod real_vm;
#[path = "all/registration.rs"]
mod registration;
