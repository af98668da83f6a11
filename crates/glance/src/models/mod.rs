//! glance's tables: `images` (a resource), `image_properties` and `image_subformats`.

pub mod images;
pub mod properties;
pub mod subformats;

use cloudcommon::db::Migration;

pub fn migrations() -> Vec<Migration> {
    vec![
        cloudcommon::resource::metadata::MIGRATION,
        cloudcommon::opslog::MIGRATION,
        cloudcommon::tasks::MIGRATION,
        images::MIGRATION,
        properties::MIGRATION,
        subformats::MIGRATION,
    ]
}
