//! Helpers the resource hooks share: scope checks, references by id or name, field parsing.

use apis::Error;
use cloudcommon::auth::Scope;
use cloudcommon::resource::dispatch::{authorize, fetch_authorized};
use cloudcommon::resource::{Ctx, Resource, Row, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use serde_json::Value;

/// Infrastructure (regions, zones, wires, hosts, storages) is changed with system rights only.
pub fn require_system(ctx: &Ctx, r: &dyn Resource, action: &str) -> Result<(), Error> {
    let scope = authorize(r, &ctx.cred, action, None)?;
    if scope < Scope::System {
        return Err(Error::Forbidden(format!(
            "{} may not {action} {}: that needs system rights",
            ctx.cred.user,
            r.spec().plural
        )));
    }
    Ok(())
}

/// The row of `plural` named by `key` (id or name) that the caller may see; a 404 naming
/// the object otherwise.
pub async fn lookup(ctx: &Ctx, plural: &str, key: &str) -> Result<Row, Error> {
    let r = ctx.svc.resource(plural)?;
    fetch_authorized(ctx, r.as_ref(), key, "get", None).await
}

/// The reference in `input[a]` or `input[b]` (e.g. `wire` or `wire_id`), if any.
pub fn reference(input: &Row, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| input.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string))
}

/// Resolves `input[keys]` to the id of a visible `plural` row and stores it in `keys[1]`.
pub async fn resolve_ref(
    ctx: &Ctx,
    input: &mut Row,
    raw: &Row,
    keys: [&str; 2],
    plural: &str,
) -> Result<Option<Row>, Error> {
    let Some(key) = reference(raw, &keys).or_else(|| reference(input, &keys)) else { return Ok(None) };
    let row = lookup(ctx, plural, &key).await?;
    input.insert(keys[1].into(), row_str(&row, "id").into());
    Ok(Some(row))
}

/// An integer field within `min..=max`, if present.
pub fn int_field(input: &Row, field: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::invalid(field, format!("must be an integer from {min} to {max}"))),
            }
        }
    }
}

/// A positive number field (commit bounds), if present.
pub fn float_field(input: &Row, field: &str) -> Result<Option<f64>, Error> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(n) if n > 0.0 && n.is_finite() => Ok(Some(n)),
            _ => Err(Error::invalid(field, "must be a positive number")),
        },
    }
}

/// A string field that must be one of `allowed`, if present; stored lower-cased.
pub fn one_of(input: &mut Row, field: &str, allowed: &[&str]) -> Result<Option<String>, Error> {
    let Some(v) = input.get(field).and_then(Value::as_str).map(|s| s.trim().to_ascii_lowercase()) else {
        return Ok(None);
    };
    if !allowed.contains(&v.as_str()) {
        return Err(Error::invalid(field, format!("{v:?} is not one of {}", allowed.join(", "))));
    }
    input.insert(field.into(), v.clone().into());
    Ok(Some(v))
}

/// How many undeleted rows of `table` have `col = value`.
pub async fn count_where(ctx: &Ctx, table: &str, col: &str, value: &str) -> Result<i64, Error> {
    let mut q = Query::select();
    q.from(Alias::new(table))
        .expr(Expr::col(Alias::new("id")).count())
        .and_where(Expr::col(Alias::new(col)).eq(value))
        .and_where(Expr::col(Alias::new("deleted")).eq(false));
    Ok(ctx.db().query_one(&q).await?.and_then(|r| r.try_get_by_index::<i64>(0).ok()).unwrap_or(0))
}

/// Refuses deleting a row that others still point at.
pub async fn refuse_if_used(
    ctx: &Ctx,
    row: &Row,
    what: &str,
    table: &str,
    col: &str,
    users: &str,
) -> Result<(), Error> {
    let n = count_where(ctx, table, col, row_str(row, "id")).await?;
    if n > 0 {
        return Err(Error::Conflict(format!("{what} {} still has {n} {users}", row_str(row, "name"))));
    }
    Ok(())
}

/// `col = value` on a table, for context lists.
pub fn eq(table: &str, col: &str, value: &str) -> Condition {
    Condition::all().add(Expr::col((Alias::new(table.to_string()), Alias::new(col.to_string()))).eq(value))
}

/// Names of the rows of `spec` with these ids, for views.
pub async fn names(
    ctx: &Ctx,
    spec: &cloudcommon::resource::ResourceSpec,
    ids: Vec<String>,
) -> Result<std::collections::HashMap<String, String>, Error> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // Only the two columns, distinct ids: a page of 1000 servers on 10 hosts reads 10 rows.
    let mut ids = ids;
    ids.sort_unstable();
    ids.dedup();
    let mut q = Query::select();
    q.from(Alias::new(spec.table))
        .column(Alias::new("id"))
        .column(Alias::new("name"))
        .and_where(Expr::col(Alias::new("id")).is_in(ids));
    Ok(ctx
        .db()
        .query_all(&q)
        .await?
        .iter()
        .filter_map(|r| Some((r.try_get_by_index::<String>(0).ok()?, r.try_get_by_index::<String>(1).ok()?)))
        .collect())
}

/// Fills `<key>` (a name) from `<key>_id` in each row.
pub async fn add_names(
    ctx: &Ctx,
    rows: &mut [Row],
    spec: &cloudcommon::resource::ResourceSpec,
    key: &str,
) -> Result<(), Error> {
    let id_col = format!("{key}_id");
    let ids: Vec<String> = rows.iter().map(|r| row_str(r, &id_col).to_string()).filter(|s| !s.is_empty()).collect();
    let names = names(ctx, spec, ids).await?;
    for r in rows {
        let n = names.get(row_str(r, &id_col)).cloned().unwrap_or_default();
        r.insert(key.into(), n.into());
    }
    Ok(())
}

/// The row of `spec` named by `key` (id or name), whoever may see it: for references the
/// region resolves on a caller's behalf (a member's disk on a storage it cannot list).
pub async fn lookup_internal(ctx: &Ctx, spec: &cloudcommon::resource::ResourceSpec, key: &str) -> Result<Row, Error> {
    store::get_by_id_or_name(ctx.db(), spec, key, Condition::all()).await
}

/// `table.col IN (values)`.
pub fn col_in(table: &str, col: &str, values: Vec<String>) -> sea_orm::sea_query::SimpleExpr {
    Expr::col((Alias::new(table.to_string()), Alias::new(col.to_string()))).is_in(values)
}

/// Column `i` of a result row as an integer, whatever the database made of it (SQLite
/// integers, MySQL's BIGINT from `CAST(... AS SIGNED)`, or a float).
pub fn int_at(r: &sea_orm::QueryResult, i: usize) -> Option<i64> {
    r.try_get_by_index::<i64>(i)
        .ok()
        .or_else(|| r.try_get_by_index::<i32>(i).ok().map(i64::from))
        .or_else(|| r.try_get_by_index::<f64>(i).ok().map(|f| f as i64))
}

/// `SUM(sum_col)` of undeleted rows of `table` grouped by `key_col`, for these keys.
pub async fn sum_by(
    ctx: &Ctx,
    table: &str,
    key_col: &str,
    sum_col: &str,
    keys: Vec<String>,
) -> Result<std::collections::HashMap<String, i64>, Error> {
    let mut out = std::collections::HashMap::new();
    for chunk in keys.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT {key_col}, CAST(COALESCE(SUM({sum_col}), 0) AS SIGNED) FROM {table} \
             WHERE deleted = ? AND {key_col} IN ({marks}) GROUP BY {key_col}"
        );
        let mut args: Vec<sea_orm::Value> = vec![false.into()];
        args.extend(chunk.iter().map(|k| k.clone().into()));
        for r in ctx.db().raw_query(&sql, args).await? {
            if let (Ok(k), Some(n)) = (r.try_get_by_index::<String>(0), int_at(&r, 1)) {
                out.insert(k, n);
            }
        }
    }
    Ok(out)
}
