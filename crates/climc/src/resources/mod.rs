//! The command table: every resource climc knows, grouped by service.
//!
//! To add a resource, write a `const` [`ResourceSpec`] in the service's module and list it
//! in that module's `RESOURCES`; for a new service, add a module and list its `RESOURCES`
//! in [`all`]. See `docs/adding-a-resource.md` in the climc crate.

pub mod compute;
pub mod identity;
pub mod image;
pub mod scheduler;
pub mod services;

use crate::spec::ResourceSpec;

/// Every resource, in help order.
pub fn all() -> Vec<&'static ResourceSpec> {
    [identity::RESOURCES, image::RESOURCES, compute::RESOURCES, scheduler::RESOURCES, services::RESOURCES]
        .into_iter()
        .flatten()
        .collect()
}
