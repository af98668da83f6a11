//! Identity (keystone) constants shared by services and clients.

/// The default domain every installation has.
pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const DEFAULT_DOMAIN_NAME: &str = "Default";
/// The project that holds the system administrators and service accounts.
pub const SYSTEM_PROJECT: &str = "system";
pub const ADMIN_ROLE: &str = "admin";
pub const MEMBER_ROLE: &str = "member";
pub const READER_ROLE: &str = "reader";

/// Catalog service types.
pub const SERVICE_TYPE_IDENTITY: &str = "identity";
pub const SERVICE_TYPE_LOG: &str = "log";
