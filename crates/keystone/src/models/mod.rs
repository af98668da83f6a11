//! keystone's resources: each is a spec plus hooks on the generic dispatcher.

pub mod catalog;
pub mod credentials;
pub mod domains;
pub mod groups;
pub mod policies;
pub mod projects;
pub mod roles;
pub mod users;

use std::sync::Arc;

use cloudcommon::resource::Resource;

use crate::Keystone;

pub const SERVICE: &str = "identity";

/// Every resource keystone serves through the dispatcher.
pub fn resources(ks: &Arc<Keystone>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(domains::Domains::new(ks.clone())),
        Arc::new(projects::Projects::new(ks.clone())),
        Arc::new(users::Users::new(ks.clone())),
        Arc::new(groups::Groups::new(ks.clone())),
        Arc::new(roles::Roles::new(ks.clone())),
        Arc::new(policies::Policies::new(ks.clone())),
        Arc::new(policies::RolePolicies::new(ks.clone())),
        Arc::new(catalog::Regions::new(ks.clone())),
        Arc::new(catalog::Services::new(ks.clone())),
        Arc::new(catalog::Endpoints::new(ks.clone())),
        Arc::new(credentials::Credentials::new(ks.clone())),
    ]
}

/// Adds the `domain` name beside each row's `domain_id`, when the caller asked for details.
pub async fn add_domain_names(
    ctx: &cloudcommon::resource::Ctx,
    rows: &mut [cloudcommon::resource::Row],
    details: bool,
) -> Result<(), apis::Error> {
    if !details {
        return Ok(());
    }
    let mut names = std::collections::HashMap::new();
    for row in rows.iter_mut() {
        let id = cloudcommon::resource::row_str(row, "domain_id").to_string();
        if id.is_empty() {
            continue;
        }
        if !names.contains_key(&id) {
            let n = cloudcommon::resource::store::get_by_id(ctx.db(), &domains::spec(), &id)
                .await?
                .map(|d| cloudcommon::resource::row_str(&d, "name").to_string())
                .unwrap_or_default();
            names.insert(id.clone(), n);
        }
        row.insert("domain".into(), names[&id].clone().into());
    }
    Ok(())
}
