//! The vocabulary of the command table.
//!
//! Every climc command comes from a [`ResourceSpec`]: a resource of one service, the
//! standard commands it has ([`Std`]), the flags of its list/create/update commands
//! ([`Arg`]) and its extra commands ([`Action`]). The table itself lives in
//! `crate::resources`; `crate::cli` turns it into clap commands and `crate::plan` turns a
//! parsed command line into HTTP requests.
//!
//! Everything here is `const`, so a resource is one `const` item built with the builder
//! functions below.

use mcclient::{Method, ResourceManager};

/// The standard commands a resource can have: `<prefix>-list`, `-show`, `-create`,
/// `-update`, `-delete`, and `-metadata` + `-set-metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Std {
    List,
    Show,
    Create,
    Update,
    Delete,
    Metadata,
}

/// Every standard command.
pub const ALL_STD: &[Std] = &[Std::List, Std::Show, Std::Create, Std::Update, Std::Delete, Std::Metadata];
/// List and show only.
pub const READ_ONLY: &[Std] = &[Std::List, Std::Show];

/// How an argument is given and what JSON it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One string.
    Str,
    /// One integer (a JSON number).
    Int,
    /// Repeatable; a JSON array of strings (repeated query keys in a query).
    List,
    /// `--x` present: `true`.
    Flag,
    /// `--x` gives `true`, the paired `--<name>` gives `false`; absent, nothing.
    FlagPair(&'static str),
    /// `--x` present: this fixed string.
    Const(&'static str),
    /// Repeatable `k=v`; merged into the object at the field (`""`: the body itself).
    KeyValues,
    /// A JSON (or YAML) document given inline.
    Json,
    /// The path of a JSON or YAML file, whose content is sent.
    JsonFile,
}

/// One argument of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// clap id and long flag (`--name`); upper-cased as a positional's value name.
    pub name: &'static str,
    /// Body field or query key; `None`: the name with `-` turned into `_`. Several fields
    /// separated by `,` all get the value. Dots in a body field make nested objects.
    pub field: Option<&'static str>,
    pub kind: Kind,
    pub required: bool,
    pub positional: bool,
    /// Resolve the given names to ids with `GET /<plural>/<name>` (same service) first.
    pub lookup: Option<&'static str>,
    pub help: &'static str,
}

impl Arg {
    /// An optional `--name VALUE` flag.
    pub const fn opt(name: &'static str, help: &'static str) -> Arg {
        Arg { name, field: None, kind: Kind::Str, required: false, positional: false, lookup: None, help }
    }

    /// A required positional argument.
    pub const fn pos(name: &'static str, help: &'static str) -> Arg {
        Arg { required: true, positional: true, ..Arg::opt(name, help) }
    }

    pub const fn field(self, field: &'static str) -> Arg {
        Arg { field: Some(field), ..self }
    }

    pub const fn kind(self, kind: Kind) -> Arg {
        Arg { kind, ..self }
    }

    pub const fn required(self) -> Arg {
        Arg { required: true, ..self }
    }

    pub const fn optional(self) -> Arg {
        Arg { required: false, ..self }
    }

    pub const fn lookup(self, plural: &'static str) -> Arg {
        Arg { lookup: Some(plural), ..self }
    }

    /// The body fields or query keys this argument fills.
    pub fn fields(&self) -> Vec<String> {
        match self.field {
            Some(f) => f.split(',').map(str::to_string).collect(),
            None => vec![self.name.replace('-', "_")],
        }
    }

    /// True when the argument may be given several times.
    pub fn is_multiple(&self) -> bool {
        matches!(self.kind, Kind::List | Kind::KeyValues)
    }
}

/// A fixed body value of an [`ActionKind::Update`] command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixed {
    Bool(bool),
    Str(&'static str),
}

/// What request an extra command sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    /// `POST /<plural>/<ID>/<action>` with the arguments as body.
    Perform(&'static str),
    /// `POST /<plural>/<action>`.
    PerformClass(&'static str),
    /// `GET /<plural>/<ID>/<spec>` with the arguments as query.
    Spec(&'static str),
    /// `PUT /<plural>/<ID>` with these fixed fields plus the arguments.
    Update(&'static [(&'static str, Fixed)]),
    /// Any method on a path template relative to the service, such as
    /// `projects/{project}/users/{user}/roles/{role}`. `{x}` is the value of argument `x`;
    /// arguments used in the path are not sent again in the body or query. No ID
    /// positional is added: declare every argument.
    Custom { method: Method, path: &'static str },
}

/// How the arguments of a command become the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyShape {
    /// `{"<keyword>": {...}}`, the Cloudpods convention.
    Keyword,
    /// The object as is.
    Raw,
}

/// How the answer is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One object (unwrapped from the resource keyword when wrapped).
    Object,
    /// The object found at this dotted path of the answer.
    Unwrap(&'static str),
    /// A list envelope with the list under `key`, printed with these columns.
    List { key: &'static str, columns: &'static [&'static str] },
}

/// An extra command, named `<prefix>-<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: ActionKind,
    pub args: &'static [Arg],
    pub body: BodyShape,
    pub output: Output,
    /// The object positional takes several names or ids: one call each, as Cloudpods' climc
    /// does for `server-start a b c` (the object of a custom path is its first placeholder).
    pub batch: bool,
}

impl Action {
    const fn new(name: &'static str, kind: ActionKind, help: &'static str) -> Action {
        Action { name, help, kind, args: &[], body: BodyShape::Keyword, output: Output::Object, batch: false }
    }

    /// `<prefix>-<name> ID ...` sending `POST /<plural>/<ID>/<action>`.
    pub const fn perform(name: &'static str, action: &'static str, help: &'static str) -> Action {
        Action::new(name, ActionKind::Perform(action), help)
    }

    /// `<prefix>-<name> ...` sending `POST /<plural>/<action>`.
    pub const fn perform_class(name: &'static str, action: &'static str, help: &'static str) -> Action {
        Action::new(name, ActionKind::PerformClass(action), help)
    }

    /// `<prefix>-<name> ID` sending `GET /<plural>/<ID>/<spec>`.
    pub const fn spec(name: &'static str, spec: &'static str, help: &'static str) -> Action {
        Action::new(name, ActionKind::Spec(spec), help)
    }

    /// `<prefix>-<name> ID ...` sending `PUT /<plural>/<ID>` with fixed fields.
    pub const fn update(name: &'static str, fixed: &'static [(&'static str, Fixed)], help: &'static str) -> Action {
        Action::new(name, ActionKind::Update(fixed), help)
    }

    /// `<prefix>-<name> ...` sending `method` to a path template.
    pub const fn custom(name: &'static str, method: Method, path: &'static str, help: &'static str) -> Action {
        Action::new(name, ActionKind::Custom { method, path }, help)
    }

    pub const fn args(self, args: &'static [Arg]) -> Action {
        Action { args, ..self }
    }

    pub const fn raw_body(self) -> Action {
        Action { body: BodyShape::Raw, ..self }
    }

    pub const fn output(self, output: Output) -> Action {
        Action { output, ..self }
    }

    pub const fn batch(self) -> Action {
        Action { batch: true, ..self }
    }

    /// The positional a batch action repeats: `id`, or the first placeholder of a custom path.
    pub fn batch_arg(&self) -> Option<&'static str> {
        if !self.batch {
            return None;
        }
        match self.kind {
            ActionKind::Custom { path, .. } => {
                path.split('/').find_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            }
            _ if self.takes_id() => Some("id"),
            _ => None,
        }
    }

    /// True when the command takes the resource's ID as first positional argument.
    pub fn takes_id(&self) -> bool {
        matches!(self.kind, ActionKind::Perform(_) | ActionKind::Spec(_) | ActionKind::Update(_))
    }
}

/// One resource of one service, and every command generated for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Catalog service type.
    pub service: &'static str,
    /// Version segment of the service URL (`v3` for identity).
    pub version: Option<&'static str>,
    pub keyword: &'static str,
    pub plural: &'static str,
    /// Command prefix; `None`: the keyword with `_` turned into `-`.
    pub prefix: Option<&'static str>,
    /// Columns of the list table (`field`, `a.b` paths, `Title=a|b` alternatives); empty: all keys.
    pub columns: &'static [&'static str],
    pub ops: &'static [Std],
    /// Resource-specific list flags, sent as query parameters.
    pub list_filters: &'static [Arg],
    pub create_args: &'static [Arg],
    pub update_args: &'static [Arg],
    pub actions: &'static [Action],
}

impl ResourceSpec {
    pub const fn new(service: &'static str, keyword: &'static str, plural: &'static str) -> ResourceSpec {
        ResourceSpec {
            service,
            version: None,
            keyword,
            plural,
            prefix: None,
            columns: &[],
            ops: ALL_STD,
            list_filters: &[],
            create_args: &[],
            update_args: &[],
            actions: &[],
        }
    }

    pub const fn version(self, version: &'static str) -> ResourceSpec {
        ResourceSpec { version: Some(version), ..self }
    }

    pub const fn prefix(self, prefix: &'static str) -> ResourceSpec {
        ResourceSpec { prefix: Some(prefix), ..self }
    }

    pub const fn columns(self, columns: &'static [&'static str]) -> ResourceSpec {
        ResourceSpec { columns, ..self }
    }

    pub const fn ops(self, ops: &'static [Std]) -> ResourceSpec {
        ResourceSpec { ops, ..self }
    }

    pub const fn list_filters(self, list_filters: &'static [Arg]) -> ResourceSpec {
        ResourceSpec { list_filters, ..self }
    }

    pub const fn create_args(self, create_args: &'static [Arg]) -> ResourceSpec {
        ResourceSpec { create_args, ..self }
    }

    pub const fn update_args(self, update_args: &'static [Arg]) -> ResourceSpec {
        ResourceSpec { update_args, ..self }
    }

    pub const fn actions(self, actions: &'static [Action]) -> ResourceSpec {
        ResourceSpec { actions, ..self }
    }

    pub fn manager(&self) -> ResourceManager {
        ResourceManager {
            service_type: self.service,
            version: self.version,
            keyword: self.keyword,
            plural: self.plural,
        }
    }

    /// The command prefix, e.g. `user` or `identity-task`.
    pub fn command_prefix(&self) -> String {
        match self.prefix {
            Some(p) => p.to_string(),
            None => self.keyword.replace('_', "-"),
        }
    }

    pub fn has(&self, op: Std) -> bool {
        self.ops.contains(&op)
    }
}
