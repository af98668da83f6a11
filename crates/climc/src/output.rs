//! Printing answers as tables, JSON or YAML. Pure functions returning the text.
//!
//! A list prints one row per object, with the command's columns (or every key), and a
//! `total: N` line. One object prints as a sorted key/value table. Column specs are a
//! field (`name`), a dotted path (`scope.project.name`), alternatives (`a|b`: the first
//! present), with an optional title (`scope=scope.project.name|scope.domain.name`).

use mcclient::ListResult;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Renders one page of a list.
pub fn render_list(list: &ListResult, columns: &[String], format: Format) -> String {
    match format {
        Format::Table => {
            let columns = if columns.is_empty() { all_keys(&list.data) } else { columns.to_vec() };
            let headers: Vec<String> = columns.iter().map(|c| title(c).to_string()).collect();
            let rows: Vec<Vec<String>> =
                list.data.iter().map(|obj| columns.iter().map(|c| cell(column_value(obj, c))).collect()).collect();
            let mut out = table(&headers, &rows);
            out.push_str(&format!("total: {}\n", list.total));
            out
        }
        _ => {
            let v = json!({"data": list.data, "total": list.total, "limit": list.limit, "offset": list.offset});
            render_value(&v, format)
        }
    }
}

/// Renders one object (or any JSON answer).
pub fn render_object(v: &Value, format: Format) -> String {
    match (format, v) {
        (_, Value::Null) => String::new(),
        (Format::Table, Value::Object(o)) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![k.to_string(), cell(o.get(*k))]).collect();
            table(&["Field".to_string(), "Value".to_string()], &rows)
        }
        (Format::Table, Value::String(s)) => format!("{s}\n"),
        (Format::Table, other) => render_value(other, Format::Json),
        (f, other) => render_value(other, f),
    }
}

fn render_value(v: &Value, format: Format) -> String {
    match format {
        Format::Yaml => serde_yaml::to_string(v).unwrap_or_else(|_| v.to_string()),
        _ => {
            let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
            s.push('\n');
            s
        }
    }
}

/// Every key of these objects, in order of first appearance.
fn all_keys(data: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for obj in data.iter().filter_map(Value::as_object) {
        for k in obj.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

fn title(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(t, _)| t)
}

/// The value a column spec picks from an object.
pub fn column_value<'a>(obj: &'a Value, spec: &str) -> Option<&'a Value> {
    let expr = spec.split_once('=').map_or(spec, |(_, e)| e);
    expr.split('|').find_map(|path| {
        let v =
            path.split('.').try_fold(obj, |cur, key| cur.as_object().and_then(|o: &Map<String, Value>| o.get(key)))?;
        (!v.is_null() && v != &Value::String(String::new())).then_some(v)
    })
}

fn cell(v: Option<&Value>) -> String {
    let s = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    s.replace(['\n', '\r'], " ")
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// A boxed text table.
pub fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let rule: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let line = |cells: &[String]| -> String {
        let mut s: String =
            widths.iter().zip(cells).map(|(w, c)| format!("| {c}{} ", " ".repeat(w - width(c)))).collect();
        s.push_str("|\n");
        s
    };
    let mut out = String::new();
    out.push_str(&rule);
    out.push_str(&line(headers));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row));
    }
    if !rows.is_empty() {
        out.push_str(&rule);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file.
    fn golden(name: &str, actual: &str) {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{path}: {e}"));
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(actual, expected, "{name} differs; run with UPDATE_GOLDEN=1 to accept");
    }

    fn users() -> ListResult {
        let body = json!({"users": [
            {"id": "u1", "name": "alice", "domain": "Default", "enabled": true, "email": "alice@example.com"},
            {"id": "u2", "name": "bob", "domain": "Default", "enabled": false, "extra": {"a": 1}}
        ], "total": 12, "limit": 2, "offset": 0});
        ListResult::parse("users", &body).unwrap_or_default()
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn list_table() {
        golden("users.table.txt", &render_list(&users(), &cols(&["id", "name", "enabled", "email"]), Format::Table));
        golden("users.allkeys.table.txt", &render_list(&users(), &[], Format::Table));
        golden("empty.table.txt", &render_list(&ListResult::default(), &cols(&["id", "name"]), Format::Table));
    }

    #[test]
    fn list_json_yaml() {
        let c = cols(&["id"]);
        golden("users.json", &render_list(&users(), &c, Format::Json));
        golden("users.yaml", &render_list(&users(), &c, Format::Yaml));
    }

    #[test]
    fn object() {
        let user = json!({"name": "alice", "id": "u1", "enabled": true, "domain": {"id": "default"}, "note": null});
        golden("user.table.txt", &render_object(&user, Format::Table));
        golden("user.json", &render_object(&user, Format::Json));
        golden("user.yaml", &render_object(&user, Format::Yaml));
        assert_eq!(render_object(&Value::Null, Format::Table), "");
        assert_eq!(render_object(&json!("v1.0"), Format::Table), "v1.0\n");
    }

    #[test]
    fn column_specs() {
        let ra = json!({"role": {"id": "r1", "name": "admin"}, "user": {"id": "u1"},
                        "scope": {"project": {"id": "p1", "name": "system"}}});
        assert_eq!(column_value(&ra, "role=role.name|role.id"), Some(&json!("admin")));
        assert_eq!(column_value(&ra, "user=user.name|user.id"), Some(&json!("u1")));
        assert_eq!(column_value(&ra, "group=group.name|group.id"), None);
        assert_eq!(column_value(&ra, "scope=scope.project.name|scope.domain.name"), Some(&json!("system")));
        let list = ListResult { data: vec![ra], total: 1, ..Default::default() };
        let c =
            cols(&["role=role.name|role.id", "user=user.name|user.id", "group=group.name", "scope=scope.project.name"]);
        golden("role_assignments.table.txt", &render_list(&list, &c, Format::Table));
    }
}
