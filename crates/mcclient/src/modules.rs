//! Ready-made managers for the resources every service talks to.

use crate::manager::ResourceManager;

/// Keystone (`identity`, `/v3`).
pub mod identity {
    use super::ResourceManager;

    const fn m(keyword: &'static str, plural: &'static str) -> ResourceManager {
        ResourceManager::new("identity", keyword, plural).with_version("v3")
    }

    pub const USERS: ResourceManager = m("user", "users");
    pub const PROJECTS: ResourceManager = m("project", "projects");
    pub const DOMAINS: ResourceManager = m("domain", "domains");
    pub const GROUPS: ResourceManager = m("group", "groups");
    pub const ROLES: ResourceManager = m("role", "roles");
    pub const ROLE_ASSIGNMENTS: ResourceManager = m("role_assignment", "role_assignments");
    pub const POLICIES: ResourceManager = m("policy", "policies");
    pub const ROLE_POLICIES: ResourceManager = m("rolepolicy", "rolepolicies");
    pub const SERVICES: ResourceManager = m("service", "services");
    pub const ENDPOINTS: ResourceManager = m("endpoint", "endpoints");
    pub const REGIONS: ResourceManager = m("region", "regions");
    pub const CREDENTIALS: ResourceManager = m("credential", "credentials");
}

/// The logger service (`log`).
pub mod logger {
    use super::ResourceManager;

    pub const ACTIONS: ResourceManager = ResourceManager::new("log", "action", "actions");
}

/// A service's own async tasks (`GET /tasks`).
pub const fn tasks(service_type: &'static str, version: Option<&'static str>) -> ResourceManager {
    ResourceManager { service_type, version, keyword: "task", plural: "tasks" }
}

/// A service's own operation log (`GET /events`).
pub const fn events(service_type: &'static str, version: Option<&'static str>) -> ResourceManager {
    ResourceManager { service_type, version, keyword: "event", plural: "events" }
}
