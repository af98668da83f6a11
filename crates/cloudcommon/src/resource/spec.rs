//! What a resource is made of: its names, its owner scope and its columns.
//!
//! A spec lists every column, including the base columns Cloudpods layers on every model
//! (standalone: id, name, description, created/updated, soft `deleted`; optionally status,
//! enabled, domain/project ownership and sharing). The dispatcher reads, filters, sorts and
//! writes rows through the spec, and the first migration of a resource creates its table
//! from it.

use sea_orm::sea_query::{Alias, ColumnDef, Index, Table};

use crate::db::Db;

/// Who owns rows of a resource, which decides how lists are scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerScope {
    /// Owned by the whole system (regions, services, domains).
    System,
    /// Owned by a domain: rows carry `domain_id`.
    Domain,
    /// Owned by a project: rows carry `tenant_id` and `domain_id`.
    Project,
}

/// Where a name must be unique among undeleted rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScope {
    Global,
    Domain,
    Project,
    /// Names may repeat.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// A bounded string.
    Str(u32),
    /// Long text.
    Text,
    Int,
    Bool,
    /// Arbitrary JSON, stored as text.
    Json,
    /// A time, stored as fixed-width RFC 3339 text.
    Time,
}

/// One column and what the API may do with it.
#[derive(Debug, Clone)]
pub struct Col {
    pub name: &'static str,
    pub ty: ColType,
    /// Accepted in create input.
    pub create: bool,
    /// Accepted in update input.
    pub update: bool,
    /// Usable in `filter=` and as an equality query parameter.
    pub filter: bool,
    /// Matched by `search=`.
    pub search: bool,
    /// Never shown in views (secrets, internal state).
    pub hidden: bool,
    pub index: bool,
    pub nullable: bool,
    pub default: Option<serde_json::Value>,
}

impl Col {
    pub fn new(name: &'static str, ty: ColType) -> Col {
        Col {
            name,
            ty,
            create: false,
            update: false,
            filter: true,
            search: false,
            hidden: false,
            index: false,
            nullable: true,
            default: None,
        }
    }
    pub fn str(name: &'static str, len: u32) -> Col {
        Col::new(name, ColType::Str(len))
    }
    pub fn text(name: &'static str) -> Col {
        Col::new(name, ColType::Text)
    }
    pub fn int(name: &'static str) -> Col {
        Col::new(name, ColType::Int)
    }
    pub fn bool(name: &'static str) -> Col {
        Col::new(name, ColType::Bool)
    }
    pub fn json(name: &'static str) -> Col {
        Col::new(name, ColType::Json)
    }
    pub fn time(name: &'static str) -> Col {
        Col::new(name, ColType::Time)
    }
    /// Settable at create and update.
    pub fn rw(mut self) -> Col {
        self.create = true;
        self.update = true;
        self
    }
    /// Settable at create only.
    pub fn create(mut self) -> Col {
        self.create = true;
        self
    }
    pub fn search(mut self) -> Col {
        self.search = true;
        self
    }
    pub fn hidden(mut self) -> Col {
        self.hidden = true;
        self.filter = false;
        self
    }
    pub fn index(mut self) -> Col {
        self.index = true;
        self
    }
    pub fn not_null(mut self, default: serde_json::Value) -> Col {
        self.nullable = false;
        self.default = Some(default);
        self
    }
}

/// A resource kind: names, owner scope and columns.
#[derive(Debug, Clone)]
pub struct ResourceSpec {
    /// The policy service name, e.g. `identity`, `compute`, `log`.
    pub service: &'static str,
    pub keyword: &'static str,
    pub plural: &'static str,
    pub table: &'static str,
    pub owner: OwnerScope,
    pub name_scope: NameScope,
    pub has_status: bool,
    pub has_enabled: bool,
    pub sharable: bool,
    pub cols: Vec<Col>,
    /// Column order for lists when `order_by` is absent.
    pub default_order: (&'static str, bool),
}

impl ResourceSpec {
    /// A standalone resource with Cloudpods' base columns.
    pub fn new(service: &'static str, keyword: &'static str, plural: &'static str, table: &'static str) -> Self {
        let cols = vec![
            // Ids are made by the service; a resource that lets callers name them (keystone
            // regions) reads `id` from the raw input in its hook.
            Col::str("id", 128),
            Col::str("name", 128).rw().search().index(),
            Col::str("description", 256).rw().search(),
            Col::time("created_at"),
            Col::time("updated_at"),
            Col::int("update_version").not_null(0.into()),
            Col::bool("deleted").not_null(false.into()),
            Col::time("deleted_at"),
        ];
        ResourceSpec {
            service,
            keyword,
            plural,
            table,
            owner: OwnerScope::System,
            name_scope: NameScope::Global,
            has_status: false,
            has_enabled: false,
            sharable: false,
            cols,
            default_order: ("created_at", true),
        }
    }

    pub fn owner(mut self, owner: OwnerScope) -> Self {
        self.owner = owner;
        match owner {
            OwnerScope::System => {}
            OwnerScope::Domain => self.cols.push(Col::str("domain_id", 64).create().index()),
            OwnerScope::Project => {
                self.cols.push(Col::str("domain_id", 64).create().index());
                self.cols.push(Col::str("tenant_id", 64).create().index());
            }
        }
        self.name_scope = match owner {
            OwnerScope::System => NameScope::Global,
            OwnerScope::Domain => NameScope::Domain,
            OwnerScope::Project => NameScope::Project,
        };
        self
    }

    pub fn name_scope(mut self, scope: NameScope) -> Self {
        self.name_scope = scope;
        self
    }

    pub fn status(mut self, default: &'static str) -> Self {
        self.has_status = true;
        self.cols.push(Col::str("status", 36).not_null(default.into()).index());
        self
    }

    pub fn enabled(mut self) -> Self {
        self.has_enabled = true;
        self.cols.push(Col::bool("enabled").rw().not_null(true.into()));
        self
    }

    pub fn sharable(mut self) -> Self {
        self.sharable = true;
        self.cols.push(Col::bool("is_public").create().not_null(false.into()));
        self.cols.push(Col::str("public_scope", 16).create().not_null("none".into()));
        self
    }

    pub fn col(mut self, col: Col) -> Self {
        self.cols.push(col);
        self
    }

    pub fn order(mut self, col: &'static str, desc: bool) -> Self {
        self.default_order = (col, desc);
        self
    }

    pub fn column(&self, name: &str) -> Option<&Col> {
        self.cols.iter().find(|c| c.name == name)
    }

    /// `CREATE TABLE` and its indexes for `db`'s backend: the first migration of a resource.
    pub fn create_table_sql(&self, db: &Db) -> Vec<String> {
        let mut t = Table::create();
        t.table(Alias::new(self.table)).if_not_exists();
        for c in &self.cols {
            let mut def = ColumnDef::new(Alias::new(c.name));
            match c.ty {
                ColType::Str(n) => def.string_len(n),
                ColType::Text | ColType::Json => def.text(),
                ColType::Int => def.big_integer(),
                ColType::Bool => def.boolean(),
                ColType::Time => def.string_len(32),
            };
            if c.name == "id" {
                def.not_null().primary_key();
            } else if !c.nullable {
                def.not_null();
                if let Some(v) = &c.default {
                    match v {
                        serde_json::Value::Bool(b) => def.default(*b),
                        serde_json::Value::Number(n) => def.default(n.as_i64().unwrap_or(0)),
                        serde_json::Value::String(s) => def.default(s.clone()),
                        _ => &mut def,
                    };
                }
            }
            t.col(def);
        }
        let mut out = vec![db.build_schema(&t)];
        for c in self.cols.iter().filter(|c| c.index) {
            let idx = Index::create()
                .if_not_exists()
                .name(format!("ix_{}_{}", self.table, c.name))
                .table(Alias::new(self.table))
                .col(Alias::new(c.name))
                .to_owned();
            out.push(db.build_schema(&idx));
        }
        out
    }
}
