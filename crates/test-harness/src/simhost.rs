//! The simulated host agent ([`cloudpods::simhost`]), pointed at a [`TestCloud`].

pub use cloudpods::simhost::*;

use crate::TestCloud;

impl TestCloud {
    /// Where a [`SimHost`] registers for this cloud.
    pub fn sim_target(&self) -> SimTarget {
        SimTarget {
            auth_url: self.auth_url.clone(),
            admin_password: self.admin_password.clone(),
            region_url: self.region_url(),
        }
    }
}
