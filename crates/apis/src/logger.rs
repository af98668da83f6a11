//! The logger service's action records (`POST /actions`, `GET /actions`).

use serde::{Deserialize, Serialize};

/// One operation a service performed on behalf of a user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ActionRecord {
    pub obj_type: String,
    pub obj_id: String,
    pub obj_name: String,
    pub action: String,
    #[serde(default)]
    pub notes: String,
    pub success: bool,
    pub service: String,
    pub user_id: String,
    pub user: String,
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub domain_id: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub owner_tenant_id: String,
    #[serde(default)]
    pub owner_domain_id: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub roles: String,
    /// When the operation started, RFC 3339.
    #[serde(default)]
    pub start_time: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub kind: String,
}
