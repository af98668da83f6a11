//! List query parameters and the `filter=<col>.<op>(args)` language.
//!
//! Operators: equals, notequals, in, notin, contains, startswith, endswith, like, ge, gt, le,
//! lt, between, isnull, isnotnull, isempty, isnotempty, isnullorempty. Several `filter`
//! parameters are ANDed; `filter_any` ones are ORed. Only columns the spec marks
//! filterable may be used, so a filter can never reach a hidden column.

use apis::Error;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, LikeExpr, SimpleExpr};

use super::spec::{ColType, ResourceSpec};
use crate::auth::Scope;

pub const DEFAULT_LIMIT: u64 = 2048;
pub const MAX_LIMIT: u64 = 2048;

/// Parsed list parameters. Unknown keys stay in `extra` for resource hooks and for
/// equality filters on filterable columns (`?status=ready`).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: u64,
    pub offset: u64,
    pub order_by: Vec<String>,
    pub desc: Option<bool>,
    pub details: bool,
    pub search: Option<String>,
    pub filters: Vec<String>,
    pub filter_any: Vec<String>,
    pub scope: Option<Scope>,
    pub pending_delete: Option<String>,
    pub extra: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListQuery, Error> {
        let mut q = ListQuery { limit: DEFAULT_LIMIT, details: true, ..Default::default() };
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => {
                    let n: u64 = v.parse().map_err(|_| Error::invalid("limit", "must be a non-negative integer"))?;
                    q.limit = if n == 0 { MAX_LIMIT } else { Ord::min(n, MAX_LIMIT) };
                }
                "offset" => {
                    q.offset = v.parse().map_err(|_| Error::invalid("offset", "must be a non-negative integer"))?
                }
                "order_by" | "order_by.0" => q.order_by.extend(v.split(',').map(str::to_string)),
                "order" => {
                    q.desc = Some(match v.as_str() {
                        "desc" => true,
                        "asc" => false,
                        _ => return Err(Error::invalid("order", "must be asc or desc")),
                    })
                }
                "details" => {
                    q.details = parse_bool(v).ok_or_else(|| Error::invalid("details", "must be true or false"))?
                }
                "search" => q.search = Some(v.clone()).filter(|s| !s.is_empty()),
                "filter" | "filter.0" => q.filters.push(v.clone()),
                "filter_any" => q.filter_any.push(v.clone()),
                "scope" => q.scope = Some(v.parse()?),
                "pending_delete" => q.pending_delete = Some(v.clone()),
                _ => q.extra.push((k.clone(), v.clone())),
            }
        }
        Ok(q)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// One parsed filter clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub col: String,
    pub op: String,
    pub args: Vec<String>,
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, Error> {
        let bad = || Error::invalid("filter", format!("{s:?} is not <column>.<op>(args)"));
        let open = s.find('(').ok_or_else(bad)?;
        if !s.ends_with(')') {
            return Err(bad());
        }
        let head = &s[..open];
        let dot = head.rfind('.').ok_or_else(bad)?;
        let (col, op) = (&head[..dot], &head[dot + 1..]);
        if col.is_empty() || op.is_empty() {
            return Err(bad());
        }
        let inner = &s[open + 1..s.len() - 1];
        let args = if inner.is_empty() { vec![] } else { split_args(inner) };
        Ok(Filter { col: col.to_string(), op: op.to_ascii_lowercase(), args })
    }

    /// The SQL condition for this filter on `spec`'s table.
    pub fn condition(&self, spec: &ResourceSpec) -> Result<SimpleExpr, Error> {
        let col = spec
            .column(&self.col)
            .filter(|c| c.filter)
            .ok_or_else(|| Error::invalid("filter", format!("unknown column {}", self.col)))?;
        let c = Expr::col((Alias::new(spec.table), Alias::new(col.name)));
        let arg = |i: usize| -> Result<sea_orm::Value, Error> {
            let a =
                self.args.get(i).ok_or_else(|| Error::invalid("filter", format!("{} needs an argument", self.op)))?;
            typed_value(col.ty, a)
        };
        let all =
            || -> Result<Vec<sea_orm::Value>, Error> { self.args.iter().map(|a| typed_value(col.ty, a)).collect() };
        let like = |p: String| c.clone().like(p);
        let literal = |p: String| c.clone().like(escaped_like(p));
        Ok(match self.op.as_str() {
            "equals" | "eq" => c.eq(arg(0)?),
            "notequals" | "ne" => c.ne(arg(0)?),
            "in" => c.is_in(all()?),
            "notin" => c.is_not_in(all()?),
            "contains" => literal(format!("%{}%", escape_like(&self.args.join(",")))),
            "startswith" => literal(format!("{}%", escape_like(&self.args.join(",")))),
            "endswith" => literal(format!("%{}", escape_like(&self.args.join(",")))),
            "like" => like(self.args.join(",")),
            "ge" => c.gte(arg(0)?),
            "gt" => c.gt(arg(0)?),
            "le" => c.lte(arg(0)?),
            "lt" => c.lt(arg(0)?),
            "between" => c.between(arg(0)?, arg(1)?),
            "isnull" => c.is_null(),
            "isnotnull" => c.is_not_null(),
            "isempty" => c.eq(""),
            "isnotempty" => c.ne(""),
            "isnullorempty" => c.clone().is_null().or(c.eq("")),
            other => {
                return Err(Error::invalid("filter", format!("unknown operator {other}")));
            }
        })
    }
}

/// The escape character of LIKE patterns built from plain text. Not a backslash: SQLite has
/// no default escape character and MySQL treats backslashes in literals specially.
const LIKE_ESCAPE: char = '!';

/// Escapes `%`, `_` and the escape character so that `s` matches only itself.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_') || ch == LIKE_ESCAPE {
            out.push(LIKE_ESCAPE);
        }
        out.push(ch);
    }
    out
}

/// A LIKE pattern made with [`escape_like`], with its ESCAPE clause.
fn escaped_like(pattern: String) -> LikeExpr {
    LikeExpr::new(pattern).escape(LIKE_ESCAPE)
}

fn split_args(s: &str) -> Vec<String> {
    s.split(',').map(|a| a.trim().trim_matches(|c| c == '"' || c == '\'').to_string()).collect()
}

/// Converts a text argument into the column's SQL value.
pub fn typed_value(ty: ColType, s: &str) -> Result<sea_orm::Value, Error> {
    Ok(match ty {
        ColType::Int => {
            s.parse::<i64>().map_err(|_| Error::invalid("filter", format!("{s:?} is not an integer")))?.into()
        }
        ColType::Bool => {
            parse_bool(s).ok_or_else(|| Error::invalid("filter", format!("{s:?} is not a boolean")))?.into()
        }
        _ => s.to_string().into(),
    })
}

/// Builds the WHERE conditions from `filter`, `filter_any`, `search` and `?col=value`.
pub fn conditions(spec: &ResourceSpec, q: &ListQuery) -> Result<Condition, Error> {
    let mut cond = Condition::all();
    for f in &q.filters {
        cond = cond.add(Filter::parse(f)?.condition(spec)?);
    }
    if !q.filter_any.is_empty() {
        let mut any = Condition::any();
        for f in &q.filter_any {
            any = any.add(Filter::parse(f)?.condition(spec)?);
        }
        cond = cond.add(any);
    }
    if let Some(s) = &q.search {
        let mut any = Condition::any();
        for c in spec.cols.iter().filter(|c| c.search) {
            let pattern = escaped_like(format!("%{}%", escape_like(s)));
            any = any.add(Expr::col((Alias::new(spec.table), Alias::new(c.name))).like(pattern));
        }
        cond = cond.add(any);
    }
    for (k, v) in &q.extra {
        let Some(col) = spec.column(k).filter(|c| c.filter && c.name != "deleted") else {
            continue;
        };
        let e = Expr::col((Alias::new(spec.table), Alias::new(col.name)));
        if v.contains(',') && !matches!(col.ty, ColType::Bool | ColType::Int) {
            cond = cond.add(e.is_in(v.split(',').map(|s| s.to_string())));
        } else {
            cond = cond.add(e.eq(typed_value(col.ty, v)?));
        }
    }
    Ok(cond)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters() {
        let f = Filter::parse("name.in(a,b, c)").unwrap();
        assert_eq!(f, Filter { col: "name".into(), op: "in".into(), args: vec!["a".into(), "b".into(), "c".into()] });
        let f = Filter::parse("deleted_at.isnull()").unwrap();
        assert!(f.args.is_empty());
        assert!(Filter::parse("name").is_err());
        assert!(Filter::parse("name.in(a").is_err());
        assert!(Filter::parse(".eq(a)").is_err());
    }

    #[test]
    fn like_patterns_from_text_match_only_the_text() {
        assert_eq!(escape_like("50%_off!"), "50!%!_off!!");
        assert_eq!(escape_like("plain\\text"), "plain\\text");
    }

    #[test]
    fn parses_list_query() {
        let pairs: Vec<(String, String)> =
            [("limit", "5"), ("order", "asc"), ("filter", "name.eq(x)"), ("status", "ready")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let q = ListQuery::parse(&pairs).unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.desc, Some(false));
        assert_eq!(q.filters, vec!["name.eq(x)"]);
        assert_eq!(q.get("status"), Some("ready"));
        let bad = vec![("limit".to_string(), "x".to_string())];
        assert!(ListQuery::parse(&bad).is_err());
    }
}
