//! From a parsed command line to the HTTP calls it makes: a pure function, testable
//! without a server.
//!
//! ```text
//! CommandDef + Values ──plan()──> Plan { calls: [Call..], show }
//!                                    │
//!   exec: resolve each Lookup (GET /<plural>/<name> -> id), send the calls, print per `show`
//! ```
//!
//! A [`Call`] may name objects that must be turned into ids first ([`Lookup`]): in its
//! path, its query, or inside its body (by JSON pointer).

use std::fmt;

use mcclient::Method;
use serde_json::{Map, Value};

use crate::cli::{CommandDef, Op, Values};
use crate::spec::{ActionKind, Arg, BodyShape, Fixed, Kind, Output};

/// A mistake on the command line that clap cannot see (bad `k=v`, unreadable file, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// A name to turn into an id with `GET /<plural>/<name>` on the call's service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub plural: &'static str,
    pub name: String,
}

/// A path segment or query value: literal, or an id still to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Lookup(Lookup),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Lit(s) => f.write_str(s),
            Part::Lookup(l) => write!(f, "{{{}:{}}}", l.plural, l.name),
        }
    }
}

/// One HTTP call to a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub service: &'static str,
    pub version: Option<&'static str>,
    pub method: Method,
    pub path: Vec<Part>,
    pub query: Vec<(String, Part)>,
    pub body: Option<Value>,
    /// Ids to look up and write into the body at these JSON pointers.
    pub body_lookups: Vec<(String, Lookup)>,
}

impl fmt::Display for Call {
    /// `METHOD path?query`, lookups shown as `{plural:name}`; for tests and `--debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.method)?;
        for (i, p) in self.path.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{p}")?;
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// How to print the answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Show {
    /// A list envelope with the list under `key`.
    List { key: String, columns: Vec<String> },
    /// One object, found at the dotted path `unwrap` when the answer has it.
    Object { unwrap: Option<String> },
}

/// Everything a command does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub calls: Vec<Call>,
    pub show: Show,
}

/// Reads a file named on the command line.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<String>;

/// Plans the calls of `cmd` with these argument values. A batch action given several objects
/// is one call per object, in order.
pub fn plan(cmd: &CommandDef, values: &Values, read_file: ReadFile<'_>) -> Result<Plan, UsageError> {
    if let Op::Action(a) = cmd.op
        && let Some(name) = a.batch_arg()
        && let Some(many) = values.get(name).filter(|v| v.len() > 1)
    {
        let mut calls = Vec::with_capacity(many.len());
        let mut show = None;
        for v in many {
            let mut one = values.clone();
            one.insert(name.to_string(), vec![v.clone()]);
            let p = plan_one(cmd, &one, read_file)?;
            calls.extend(p.calls);
            show = Some(p.show);
        }
        return Ok(Plan { calls, show: show.unwrap_or(Show::Object { unwrap: None }) });
    }
    plan_one(cmd, values, read_file)
}

fn plan_one(cmd: &CommandDef, values: &Values, read_file: ReadFile<'_>) -> Result<Plan, UsageError> {
    let r = cmd.resource;
    let call = |method: Method, path: Vec<Part>| Call {
        service: r.service,
        version: r.version,
        method,
        path,
        query: Vec::new(),
        body: None,
        body_lookups: Vec::new(),
    };
    let lit = |s: &str| Part::Lit(s.to_string());
    let id = || -> Result<Part, UsageError> { first(values, "id").map(lit) };
    let object = Show::Object { unwrap: Some(r.keyword.to_string()) };
    let args = cmd.args();
    let single = |c: Call, show: Show| Ok(Plan { calls: vec![c], show });

    match cmd.op {
        Op::List => {
            let mut c = call(Method::Get, vec![lit(r.plural)]);
            c.query = build_query(&args, values, &[], read_file)?;
            let columns = match values.get("field") {
                Some(fields) => fields.clone(),
                None => r.columns.iter().map(|c| c.to_string()).collect(),
            };
            single(c, Show::List { key: r.plural.to_string(), columns })
        }
        Op::Show => single(call(Method::Get, vec![lit(r.plural), id()?]), object),
        Op::Metadata => {
            single(call(Method::Get, vec![lit(r.plural), id()?, lit("metadata")]), Show::Object { unwrap: None })
        }
        Op::Create => {
            let mut c = call(Method::Post, vec![lit(r.plural)]);
            set_body(&mut c, &args, values, &[], BodyShape::Keyword, r.keyword, read_file)?;
            single(c, object)
        }
        Op::Update => {
            let mut c = call(Method::Put, vec![lit(r.plural), id()?]);
            set_body(&mut c, &args[1..], values, &[], BodyShape::Keyword, r.keyword, read_file)?;
            if c.body.as_ref().and_then(|b| b.get(r.keyword)).and_then(Value::as_object).is_some_and(Map::is_empty) {
                return Err(usage("nothing to update: give at least one field to change"));
            }
            single(c, object)
        }
        Op::Delete => {
            let ids = values.get("id").filter(|v| !v.is_empty()).ok_or_else(|| usage("missing ID"))?;
            let calls = ids.iter().map(|i| call(Method::Delete, vec![lit(r.plural), lit(i)])).collect();
            Ok(Plan { calls, show: object })
        }
        Op::SetMetadata => {
            let mut c = call(Method::Post, vec![lit(r.plural), id()?, lit("metadata")]);
            set_body(&mut c, &args[1..], values, &[], BodyShape::Raw, r.keyword, read_file)?;
            single(c, Show::Object { unwrap: None })
        }
        Op::Action(a) => {
            let show = match a.output {
                Output::Object => object,
                Output::Unwrap(path) => Show::Object { unwrap: Some(path.to_string()) },
                Output::List { key, columns } => {
                    Show::List { key: key.to_string(), columns: columns.iter().map(|c| c.to_string()).collect() }
                }
            };
            let own = if a.takes_id() { &args[1..] } else { &args[..] };
            let mut c = match a.kind {
                ActionKind::Perform(action) => call(Method::Post, vec![lit(r.plural), id()?, lit(action)]),
                ActionKind::PerformClass(action) => call(Method::Post, vec![lit(r.plural), lit(action)]),
                ActionKind::Spec(spec) => call(Method::Get, vec![lit(r.plural), id()?, lit(spec)]),
                ActionKind::Update(_) => call(Method::Put, vec![lit(r.plural), id()?]),
                ActionKind::Custom { method, path } => call(method, template(path, own, values)?),
            };
            let in_path: Vec<&str> = match a.kind {
                ActionKind::Custom { path, .. } => placeholders(path).collect(),
                _ => Vec::new(),
            };
            if matches!(c.method, Method::Get | Method::Delete | Method::Head) {
                c.query = build_query(own, values, &in_path, read_file)?;
            } else {
                set_body(&mut c, own, values, &in_path, a.body, r.keyword, read_file)?;
                let empty = |b: &Value| match a.body {
                    BodyShape::Keyword => b.get(r.keyword).and_then(Value::as_object).is_some_and(Map::is_empty),
                    BodyShape::Raw => b.as_object().is_some_and(Map::is_empty),
                };
                // a path template says everything: send no body rather than an empty object
                if matches!(a.kind, ActionKind::Custom { .. }) && c.body.as_ref().is_some_and(empty) {
                    c.body = None;
                }
            }
            if let ActionKind::Update(fixed) = a.kind
                && let Some(o) = c.body.as_mut().and_then(|b| b.get_mut(r.keyword)).and_then(Value::as_object_mut)
            {
                // fields given on the command line win over fixed ones
                for (k, v) in fixed {
                    let v = match v {
                        Fixed::Bool(b) => Value::Bool(*b),
                        Fixed::Str(s) => Value::String(s.to_string()),
                    };
                    o.entry(k.to_string()).or_insert(v);
                }
            }
            single(c, show)
        }
    }
}

/// The first value of argument `name`.
fn first<'v>(values: &'v Values, name: &str) -> Result<&'v str, UsageError> {
    values
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .ok_or_else(|| usage(format!("missing {}", name.to_uppercase())))
}

/// Names used as `{name}` in a path template.
pub fn placeholders(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

fn template(path: &str, args: &[Arg], values: &Values) -> Result<Vec<Part>, UsageError> {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            None => Ok(Part::Lit(seg.to_string())),
            Some(name) => {
                let v = first(values, name)?.to_string();
                let lookup = args.iter().find(|a| a.name == name).and_then(|a| a.lookup);
                Ok(match lookup {
                    Some(plural) => Part::Lookup(Lookup { plural, name: v }),
                    None => Part::Lit(v),
                })
            }
        })
        .collect()
}

fn part(a: &Arg, v: &str) -> Part {
    match a.lookup {
        Some(plural) => Part::Lookup(Lookup { plural, name: v.to_string() }),
        None => Part::Lit(v.to_string()),
    }
}

/// A JSON or YAML document.
fn parse_doc(text: &str, what: &str) -> Result<Value, UsageError> {
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    serde_yaml::from_str::<Value>(text).map_err(|e| usage(format!("{what} is neither JSON nor YAML: {e}")))
}

fn key_value(s: &str) -> Result<(&str, &str), UsageError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(usage(format!("{s:?} is not key=value"))),
    }
}

fn document(a: &Arg, raw: &str, read_file: ReadFile<'_>) -> Result<Value, UsageError> {
    match a.kind {
        Kind::JsonFile => {
            let text = read_file(raw).map_err(|e| usage(format!("cannot read {raw}: {e}")))?;
            parse_doc(&text, raw)
        }
        _ => parse_doc(raw, &format!("--{}", a.name)),
    }
}

fn build_query(
    args: &[Arg],
    values: &Values,
    skip: &[&str],
    read_file: ReadFile<'_>,
) -> Result<Vec<(String, Part)>, UsageError> {
    let mut q = Vec::new();
    for a in args.iter().filter(|a| !skip.contains(&a.name)) {
        let Some(vals) = values.get(a.name) else { continue };
        for field in a.fields() {
            match a.kind {
                Kind::KeyValues => {
                    for kv in vals {
                        let (k, v) = key_value(kv)?;
                        q.push((k.to_string(), Part::Lit(v.to_string())));
                    }
                }
                Kind::Const(c) => q.push((field, Part::Lit(c.to_string()))),
                Kind::Json | Kind::JsonFile => {
                    let raw = vals.first().map(String::as_str).unwrap_or_default();
                    q.push((field, Part::Lit(document(a, raw, read_file)?.to_string())));
                }
                _ => q.extend(vals.iter().map(|v| (field.clone(), part(a, v)))),
            }
        }
    }
    Ok(q)
}

/// Sets `value` at a dotted path of `obj`; objects at the path are merged.
fn set_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    if path.is_empty() {
        if let Value::Object(m) = value {
            obj.extend(m);
        }
        return;
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    if rest.is_empty() {
        match (obj.get_mut(head), value) {
            (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
            (_, value) => {
                obj.insert(head.to_string(), value);
            }
        }
        return;
    }
    let child = obj.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(m) = child {
        set_path(m, rest, value);
    }
}

fn pointer(path: &str) -> String {
    path.split('.').map(|s| format!("/{s}")).collect()
}

fn set_body(
    c: &mut Call,
    args: &[Arg],
    values: &Values,
    skip: &[&str],
    shape: BodyShape,
    keyword: &str,
    read_file: ReadFile<'_>,
) -> Result<(), UsageError> {
    let mut obj = Map::new();
    let mut lookups = Vec::new();
    for a in args.iter().filter(|a| !skip.contains(&a.name)) {
        let Some(vals) = values.get(a.name) else { continue };
        let one = vals.first().map(String::as_str).unwrap_or_default();
        let value = match a.kind {
            Kind::Str => Value::String(one.to_string()),
            Kind::Int => {
                let n: i64 = one.parse().map_err(|_| usage(format!("--{}: {one:?} is not an integer", a.name)))?;
                Value::from(n)
            }
            Kind::List => Value::Array(vals.iter().map(|v| Value::String(v.clone())).collect()),
            Kind::Flag | Kind::FlagPair(_) => Value::Bool(one == "true"),
            Kind::Const(s) => Value::String(s.to_string()),
            Kind::KeyValues => {
                let mut m = Map::new();
                for kv in vals {
                    let (k, v) = key_value(kv)?;
                    m.insert(k.to_string(), Value::String(v.to_string()));
                }
                Value::Object(m)
            }
            Kind::Json | Kind::JsonFile => document(a, one, read_file)?,
        };
        for field in a.fields() {
            if let Some(plural) = a.lookup {
                match a.kind {
                    Kind::List => lookups.extend(
                        vals.iter()
                            .enumerate()
                            .map(|(i, v)| (format!("{}/{i}", pointer(&field)), Lookup { plural, name: v.clone() })),
                    ),
                    Kind::Str => lookups.push((pointer(&field), Lookup { plural, name: one.to_string() })),
                    _ => {}
                }
            }
            set_path(&mut obj, &field, value.clone());
        }
    }
    let (body, prefix) = match shape {
        BodyShape::Keyword => (serde_json::json!({ keyword: obj }), format!("/{keyword}")),
        BodyShape::Raw => (Value::Object(obj), String::new()),
    };
    c.body = Some(body);
    c.body_lookups = lookups.into_iter().map(|(p, l)| (format!("{prefix}{p}"), l)).collect();
    Ok(())
}
