//! keystone's schema, in versions. A released version is never edited: changes are new
//! versions (`ALTER TABLE ...`).

use cloudcommon::db::{Db, Migration};

use crate::models::{catalog, credentials, domains, groups, policies, projects, roles, users};

fn v1(db: &Db) -> Vec<String> {
    let mut sql = vec![];
    for spec in [
        domains::spec(),
        projects::spec(),
        users::spec(),
        groups::spec(),
        roles::spec(),
        policies::spec(),
        policies::rolepolicy_spec(),
        catalog::region_spec(),
        catalog::service_spec(),
        catalog::endpoint_spec(),
        credentials::spec(),
    ] {
        sql.extend(spec.create_table_sql(db));
    }
    sql.extend(
        [
            // Who holds which role where: type is UserProject, GroupProject, UserDomain,
            // GroupDomain, UserSystem or GroupSystem; target is a project, domain or `system`.
            "CREATE TABLE IF NOT EXISTS assignments_tbl (type VARCHAR(16) NOT NULL, actor_id VARCHAR(128) NOT NULL, \
             target_id VARCHAR(128) NOT NULL, role_id VARCHAR(128) NOT NULL, created_at VARCHAR(32) NOT NULL, \
             PRIMARY KEY (type, actor_id, target_id, role_id))",
            "CREATE INDEX ix_assignments_target ON assignments_tbl (target_id)",
            "CREATE TABLE IF NOT EXISTS usergroup_tbl (user_id VARCHAR(128) NOT NULL, group_id VARCHAR(128) NOT NULL, \
             created_at VARCHAR(32) NOT NULL, PRIMARY KEY (user_id, group_id))",
            "CREATE TABLE IF NOT EXISTS passwords_tbl (id VARCHAR(64) NOT NULL PRIMARY KEY, user_id VARCHAR(128) NOT NULL, \
             password_hash VARCHAR(128) NOT NULL, created_at VARCHAR(32) NOT NULL, expires_at VARCHAR(32))",
            "CREATE INDEX ix_passwords_user ON passwords_tbl (user_id)",
            // Tokens are stored by the SHA-256 of the id handed to the client.
            "CREATE TABLE IF NOT EXISTS tokens_tbl (token_hash VARCHAR(64) NOT NULL PRIMARY KEY, \
             user_id VARCHAR(128) NOT NULL, project_id VARCHAR(128), domain_id VARCHAR(128), system_scoped BOOLEAN NOT NULL, \
             methods VARCHAR(64) NOT NULL, audit_id VARCHAR(64) NOT NULL, issued_at VARCHAR(32) NOT NULL, \
             expires_at VARCHAR(32) NOT NULL, valid BOOLEAN NOT NULL, revoked_at VARCHAR(32), source VARCHAR(16), ip VARCHAR(64))",
            "CREATE INDEX ix_tokens_user ON tokens_tbl (user_id)",
            "CREATE INDEX ix_tokens_revoked ON tokens_tbl (revoked_at)",
            // A single row tells whether the first-start bootstrap has run.
            "CREATE TABLE IF NOT EXISTS bootstrap_tbl (id INTEGER NOT NULL PRIMARY KEY, done_at VARCHAR(32) NOT NULL)",
        ]
        .map(str::to_string),
    );
    sql
}

pub fn all() -> Vec<Migration> {
    vec![
        cloudcommon::resource::metadata::MIGRATION,
        cloudcommon::opslog::MIGRATION,
        cloudcommon::tasks::MIGRATION,
        Migration { version: 10, name: "identity", up: v1 },
    ]
}
