//! Which service owns a resource: plural name -> catalog service type.
//!
//! Anything not named here belongs to the region (`compute_v2`): servers, disks, hosts,
//! storages, zones, wires, networks, vpcs, keypairs, secgroups, cachedimages, tasks, events...
//! A caller that needs another service's `events` or `tasks` uses the raw proxy
//! `/api/s/<service-type>/<path>`.

pub const COMPUTE: &str = "compute_v2";

const IDENTITY: &[&str] = &[
    "users",
    "projects",
    "domains",
    "roles",
    "groups",
    "role_assignments",
    "policies",
    "rolepolicies",
    "services",
    "endpoints",
    "regions",
    "credentials",
    "identity_providers",
];

/// The catalog service type owning `plural`.
pub fn service_type(plural: &str) -> &'static str {
    if IDENTITY.contains(&plural) {
        return apis::identity::SERVICE_TYPE_IDENTITY;
    }
    match plural {
        "images" => apis::image::SERVICE_TYPE,
        "actions" => apis::identity::SERVICE_TYPE_LOG,
        "scheduler" => "scheduler",
        _ => COMPUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(service_type("users"), "identity");
        assert_eq!(service_type("images"), "image");
        assert_eq!(service_type("actions"), "log");
        assert_eq!(service_type("servers"), "compute_v2");
        assert_eq!(service_type("networks"), "compute_v2");
    }
}
