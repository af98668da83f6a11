//! The datastore layer of the generic dispatcher: SQL and nothing else.

use apis::Error;
use sea_orm::QueryResult;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func, Order, Query, SelectStatement};
use serde_json::Value;

use super::spec::{ColType, NameScope, OwnerScope, ResourceSpec};
use super::{Row, row_str};
use crate::auth::{Scope, UserCred};
use crate::db::{Db, Txn, now};

fn col(spec: &ResourceSpec, name: &str) -> Expr {
    Expr::col((Alias::new(spec.table), Alias::new(name.to_string())))
}

/// Converts a row read from the database into JSON by the spec's column types.
pub fn read_row(spec: &ResourceSpec, r: &QueryResult) -> Row {
    // Rows come from `base_select`, which selects the spec's columns in order: read them by
    // position (no lookup by name per cell).
    let mut row = Row::new();
    for (i, c) in spec.cols.iter().enumerate() {
        let v = match c.ty {
            ColType::Str(_) | ColType::Text | ColType::Time => {
                r.try_get_by_index::<Option<String>>(i).ok().flatten().map(Value::String)
            }
            ColType::Int => r.try_get_by_index::<Option<i64>>(i).ok().flatten().map(Value::from),
            ColType::Bool => r
                .try_get_by_index::<Option<bool>>(i)
                .ok()
                .flatten()
                .or_else(|| r.try_get_by_index::<Option<i64>>(i).ok().flatten().map(|n| n != 0))
                .map(Value::Bool),
            ColType::Json => r
                .try_get_by_index::<Option<String>>(i)
                .ok()
                .flatten()
                .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s))),
        };
        row.insert(c.name.to_string(), v.unwrap_or(Value::Null));
    }
    row
}

/// Converts a JSON value into the column's SQL value, checking its type.
pub fn sql_value(spec: &ResourceSpec, name: &str, v: &Value) -> Result<sea_orm::Value, Error> {
    let c = spec.column(name).ok_or_else(|| Error::invalid(name, "unknown field"))?;
    let wrong = |what: &str| Error::invalid(name, format!("must be {what}"));
    Ok(match (c.ty, v) {
        (ColType::Int, Value::Null) => Option::<i64>::None.into(),
        (ColType::Bool, Value::Null) => Option::<bool>::None.into(),
        (_, Value::Null) => Option::<String>::None.into(),
        (ColType::Str(n), Value::String(s)) => {
            if s.chars().count() > n as usize {
                return Err(Error::invalid(name, format!("longer than {n} characters")));
            }
            s.clone().into()
        }
        (ColType::Str(_) | ColType::Text | ColType::Time, Value::Number(n)) => n.to_string().into(),
        (ColType::Text | ColType::Time, Value::String(s)) => s.clone().into(),
        (ColType::Str(_) | ColType::Text | ColType::Time, _) => return Err(wrong("a string")),
        (ColType::Int, Value::Number(n)) => n.as_i64().ok_or_else(|| wrong("an integer"))?.into(),
        (ColType::Int, Value::String(s)) => s.parse::<i64>().map_err(|_| wrong("an integer"))?.into(),
        (ColType::Int, _) => return Err(wrong("an integer")),
        (ColType::Bool, Value::Bool(b)) => (*b).into(),
        (ColType::Bool, Value::String(s)) => super::query::parse_bool(s).ok_or_else(|| wrong("a boolean"))?.into(),
        (ColType::Bool, _) => return Err(wrong("a boolean")),
        (ColType::Json, v) => v.to_string().into(),
    })
}

/// Rows visible in `scope` to `cred`; sharable rows shared widely enough are visible too.
pub fn scope_condition(spec: &ResourceSpec, cred: &UserCred, scope: Scope) -> Condition {
    let mut own = Condition::all();
    match (spec.owner, scope) {
        (_, Scope::System) | (OwnerScope::System, _) => return Condition::all(),
        (OwnerScope::Domain | OwnerScope::Project, Scope::Domain) => {
            own = own.add(col(spec, "domain_id").eq(cred.project_domain_id.clone()));
        }
        (OwnerScope::Project, Scope::Project | Scope::User) => {
            own = own.add(col(spec, "tenant_id").eq(cred.project_id.clone()));
        }
        (OwnerScope::Domain, Scope::Project | Scope::User) => {
            // A project-scoped caller owns nothing of a domain's, but may see what is shared.
            own = own.add(Expr::val(1).eq(0));
        }
    }
    if !spec.sharable {
        return own;
    }
    let shared = Condition::all().add(col(spec, "is_public").eq(true)).add(
        Condition::any().add(col(spec, "public_scope").eq("system")).add(
            Condition::all()
                .add(col(spec, "public_scope").eq("domain"))
                .add(col(spec, "domain_id").eq(cred.project_domain_id.clone())),
        ),
    );
    Condition::any().add(own).add(shared)
}

/// Whether `row` lies inside `scope` for `cred` (ownership only, not sharing).
pub fn row_in_scope(spec: &ResourceSpec, cred: &UserCred, scope: Scope, row: &Row) -> bool {
    match (spec.owner, scope) {
        (_, Scope::System) => true,
        (OwnerScope::System, _) => false,
        (_, Scope::Domain) => row_str(row, "domain_id") == cred.project_domain_id,
        (OwnerScope::Project, _) => row_str(row, "tenant_id") == cred.project_id,
        (OwnerScope::Domain, _) => false,
    }
}

/// Whether `row` is shared with `cred`'s domain or everyone.
pub fn row_shared(spec: &ResourceSpec, cred: &UserCred, row: &Row) -> bool {
    spec.sharable
        && super::row_bool(row, "is_public")
        && match row_str(row, "public_scope") {
            "system" => true,
            "domain" => row_str(row, "domain_id") == cred.project_domain_id,
            _ => false,
        }
}

fn base_select(spec: &ResourceSpec) -> SelectStatement {
    let mut q = Query::select();
    q.from(Alias::new(spec.table));
    for c in &spec.cols {
        q.column((Alias::new(spec.table), Alias::new(c.name)));
    }
    q.and_where(col(spec, "deleted").eq(false));
    q
}

/// A page of rows matching `cond`, and the total count.
pub async fn list(
    db: &Db,
    spec: &ResourceSpec,
    cond: Condition,
    order: &[(String, bool)],
    limit: u64,
    offset: u64,
) -> Result<(Vec<Row>, u64), Error> {
    let mut count = Query::select();
    count
        .from(Alias::new(spec.table))
        .expr(Func::count(Expr::col(Alias::new("id"))))
        .and_where(col(spec, "deleted").eq(false))
        .cond_where(cond.clone());
    let total = db.query_one(&count).await?.and_then(|r| r.try_get_by_index::<i64>(0).ok()).unwrap_or(0) as u64;
    let mut q = base_select(spec);
    q.cond_where(cond);
    for (c, desc) in order {
        q.order_by((Alias::new(spec.table), Alias::new(c.clone())), if *desc { Order::Desc } else { Order::Asc });
    }
    q.order_by((Alias::new(spec.table), Alias::new("id")), Order::Asc);
    q.limit(limit).offset(offset);
    let rows = db.query_all(&q).await?.iter().map(|r| read_row(spec, r)).collect();
    Ok((rows, total))
}

/// All rows matching `cond` (internal use: bounded by what the caller asks).
pub async fn select(db: &Db, spec: &ResourceSpec, cond: Condition) -> Result<Vec<Row>, Error> {
    let mut q = base_select(spec);
    q.cond_where(cond);
    Ok(db.query_all(&q).await?.iter().map(|r| read_row(spec, r)).collect())
}

pub async fn get_by_id(db: &Db, spec: &ResourceSpec, id: &str) -> Result<Option<Row>, Error> {
    let mut q = base_select(spec);
    q.and_where(col(spec, "id").eq(id));
    Ok(db.query_one(&q).await?.map(|r| read_row(spec, &r)))
}

/// Finds a row by id, or else by name among the rows `visible` selects.
pub async fn get_by_id_or_name(db: &Db, spec: &ResourceSpec, key: &str, visible: Condition) -> Result<Row, Error> {
    if let Some(row) = get_by_id(db, spec, key).await? {
        return Ok(row);
    }
    let mut q = base_select(spec);
    q.and_where(col(spec, "name").eq(key)).cond_where(visible).limit(2);
    let rows: Vec<Row> = db.query_all(&q).await?.iter().map(|r| read_row(spec, r)).collect();
    match rows.len() {
        0 => Err(Error::not_found(spec.keyword, key)),
        1 => Ok(rows.into_iter().next().unwrap_or_default()),
        _ => Err(Error::Duplicate(format!("more than one {} is named {key}; use its id", spec.keyword))),
    }
}

/// Whether an undeleted row already uses `name` where names must be unique.
pub async fn name_taken(
    db: &Db,
    spec: &ResourceSpec,
    name: &str,
    owner: &super::Owner,
    except_id: Option<&str>,
) -> Result<bool, Error> {
    match name_query(spec, name, owner, except_id) {
        Some(q) => Ok(db.query_one(&q).await?.is_some()),
        None => Ok(false),
    }
}

/// The query [`name_taken`] runs, for a caller that must run it inside its own transaction:
/// a read on a second pooled connection while a transaction holds one can starve the pool
/// when as many requests as it has connections do the same at once.
pub fn name_query(
    spec: &ResourceSpec,
    name: &str,
    owner: &super::Owner,
    except_id: Option<&str>,
) -> Option<SelectStatement> {
    let mut q = Query::select();
    q.from(Alias::new(spec.table))
        .column(Alias::new("id"))
        .and_where(col(spec, "deleted").eq(false))
        .and_where(col(spec, "name").eq(name));
    match spec.name_scope {
        NameScope::None => return None,
        NameScope::Global => {}
        NameScope::Domain => {
            q.and_where(col(spec, "domain_id").eq(owner.domain_id.clone()));
        }
        NameScope::Project => {
            q.and_where(col(spec, "tenant_id").eq(owner.project_id.clone()));
        }
    }
    if let Some(id) = except_id {
        q.and_where(col(spec, "id").ne(id));
    }
    q.limit(1);
    Some(q)
}

/// Inserts a complete row inside a transaction.
pub async fn insert(txn: &Txn<'_>, spec: &ResourceSpec, row: &Row) -> Result<(), Error> {
    let mut q = Query::insert();
    q.into_table(Alias::new(spec.table));
    let mut cols = vec![];
    let mut vals = vec![];
    for (k, v) in row {
        if spec.column(k).is_some() {
            cols.push(Alias::new(k.clone()));
            vals.push(Expr::val(sql_value(spec, k, v)?));
        }
    }
    q.columns(cols);
    q.values(vals).map_err(|e| Error::Internal(e.to_string()))?;
    txn.execute(&q).await?;
    Ok(())
}

/// Applies `patch` to the row `id`, bumping `update_version` and `updated_at`.
pub async fn update(db: &Db, spec: &ResourceSpec, id: &str, patch: &Row) -> Result<(), Error> {
    let txn = db.begin().await?;
    update_in(&txn, spec, id, patch).await?;
    txn.commit().await
}

pub async fn update_in(txn: &Txn<'_>, spec: &ResourceSpec, id: &str, patch: &Row) -> Result<(), Error> {
    let mut q = Query::update();
    q.table(Alias::new(spec.table));
    for (k, v) in patch {
        if spec.column(k).is_some() && k != "id" {
            q.value(Alias::new(k.clone()), sql_value(spec, k, v)?);
        }
    }
    q.value(Alias::new("updated_at"), now());
    q.value(Alias::new("update_version"), Expr::col(Alias::new("update_version")).add(1));
    q.and_where(Expr::col(Alias::new("id")).eq(id));
    txn.execute(&q).await?;
    Ok(())
}

/// Marks the row deleted and forgets its metadata, in one transaction.
pub async fn soft_delete(db: &Db, spec: &ResourceSpec, row: &Row) -> Result<(), Error> {
    let mut patch = Row::new();
    patch.insert("deleted".into(), true.into());
    patch.insert("deleted_at".into(), now().into());
    let id = row_str(row, "id");
    let txn = db.begin().await?;
    update_in(&txn, spec, id, &patch).await?;
    super::metadata::remove_all(&txn, spec.keyword, id).await?;
    txn.commit().await
}

/// Removes hidden columns: what is left may be shown to the caller.
pub fn to_view(spec: &ResourceSpec, mut row: Row) -> Row {
    for c in spec.cols.iter().filter(|c| c.hidden) {
        row.remove(c.name);
    }
    row.remove("deleted_at");
    row.remove("deleted");
    row
}
