//! From the command table to clap, and from clap's matches back to plain values.
//!
//! [`commands`] expands every [`ResourceSpec`] into its commands ([`CommandDef`]);
//! [`build`] makes one clap subcommand per command; [`values`] reads a parsed command line
//! into a [`Values`] map, the input of `crate::plan::plan`.

use std::collections::BTreeMap;

use clap::{ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::output::Format;
use crate::spec::{Action, Arg, Kind, ResourceSpec, Std};

// Options shared by every command, with their environment variables.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Keystone v3 URL, e.g. http://127.0.0.1:30500/v3
    #[arg(long, env = "OS_AUTH_URL", global = true)]
    pub os_auth_url: Option<String>,
    /// User name
    #[arg(long, env = "OS_USERNAME", global = true)]
    pub os_username: Option<String>,
    /// Password
    #[arg(long, env = "OS_PASSWORD", global = true, hide_env_values = true)]
    pub os_password: Option<String>,
    /// Domain of the user
    #[arg(long, env = "OS_DOMAIN_NAME", global = true, default_value = "Default")]
    pub os_domain_name: String,
    /// Project to scope the token to
    #[arg(long, env = "OS_PROJECT_NAME", global = true)]
    pub os_project_name: Option<String>,
    /// Domain of the project
    #[arg(long, env = "OS_PROJECT_DOMAIN", global = true, default_value = "Default")]
    pub os_project_domain: String,
    /// Region whose endpoints to use
    #[arg(long, env = "OS_REGION_NAME", global = true)]
    pub os_region_name: Option<String>,
    /// Endpoint interface: internalURL, publicURL or adminURL
    #[arg(long, env = "OS_ENDPOINT_TYPE", global = true, default_value = "internalURL")]
    pub os_endpoint_type: String,
    /// Log in with this token instead of a password
    #[arg(long, env = "OS_AUTH_TOKEN", global = true, hide_env_values = true)]
    pub os_auth_token: Option<String>,
    /// Output format
    #[arg(long, env = "CLIMC_OUTPUT_FORMAT", global = true, value_enum, default_value_t = Format::Table)]
    pub output_format: Format,
    /// Print every HTTP request to stderr (without tokens or passwords)
    #[arg(long, global = true)]
    pub debug: bool,
    /// Timeout of each HTTP request, in seconds
    #[arg(long, global = true, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Which command of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    List,
    Show,
    Create,
    Update,
    Delete,
    Metadata,
    SetMetadata,
    Action(&'static Action),
}

/// One generated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandDef {
    pub name: String,
    pub resource: &'static ResourceSpec,
    pub op: Op,
}

/// Flags of every `*-list` command, sent as query parameters.
pub const LIST_ARGS: &[Arg] = &[
    Arg::opt("limit", "Page size").kind(Kind::Int),
    Arg::opt("offset", "Page offset").kind(Kind::Int),
    Arg::opt("order-by", "Sort by this field"),
    Arg::opt("order", "Sort order: asc or desc"),
    Arg::opt("details", "Ask for details").kind(Kind::Flag),
    Arg::opt("search", "Search by name"),
    Arg::opt("filter", "Filter clause like 'name.contains(x)'; repeatable").kind(Kind::List),
    Arg::opt("filter-any", "Match any filter instead of all").kind(Kind::Flag),
    Arg::opt("scope", "View scope: system, domain, project or user"),
    Arg::opt("project", "Only of this project (name or id)"),
    Arg::opt("field", "Show only these fields; repeatable").kind(Kind::List),
];

/// The positional ID argument of commands on one object.
pub const ID_ARG: Arg = Arg::pos("id", "Name or id");
const IDS_ARG: Arg = Arg::pos("id", "Names or ids").kind(Kind::List);
const TAGS_ARG: Arg = Arg::pos("tags", "Metadata to set, as key=value").kind(Kind::KeyValues).field("");

impl CommandDef {
    /// Every argument of the command, in order.
    pub fn args(&self) -> Vec<Arg> {
        let r = self.resource;
        match self.op {
            Op::List => LIST_ARGS.iter().chain(r.list_filters).copied().collect(),
            Op::Show | Op::Metadata => vec![ID_ARG],
            Op::Create => r.create_args.to_vec(),
            Op::Update => std::iter::once(ID_ARG).chain(r.update_args.iter().copied()).collect(),
            Op::Delete => vec![IDS_ARG],
            Op::SetMetadata => vec![ID_ARG, TAGS_ARG],
            Op::Action(a) if a.takes_id() => {
                let id = if a.batch { IDS_ARG } else { ID_ARG };
                std::iter::once(id).chain(a.args.iter().copied()).collect()
            }
            // A batch custom action's object takes several values.
            Op::Action(a) => a
                .args
                .iter()
                .map(|x| if a.batch_arg() == Some(x.name) { x.kind(Kind::List).required() } else { *x })
                .collect(),
        }
    }

    pub fn about(&self) -> String {
        let r = self.resource;
        let (kw, plural) = (r.keyword.replace('_', " "), r.plural.replace('_', " "));
        match self.op {
            Op::List => format!("List {plural}"),
            Op::Show => format!("Show a {kw}"),
            Op::Create => format!("Create a {kw}"),
            Op::Update => format!("Update a {kw}"),
            Op::Delete => format!("Delete {plural}"),
            Op::Metadata => format!("Show the metadata of a {kw}"),
            Op::SetMetadata => format!("Set metadata of a {kw}"),
            Op::Action(a) => a.help.to_string(),
        }
    }
}

/// Every command of these resources, in table order.
pub fn commands(resources: &[&'static ResourceSpec]) -> Vec<CommandDef> {
    let mut out = Vec::new();
    for &r in resources {
        let prefix = r.command_prefix();
        let mut add =
            |suffix: &str, op: Op| out.push(CommandDef { name: format!("{prefix}-{suffix}"), resource: r, op });
        for std in r.ops {
            match std {
                Std::List => add("list", Op::List),
                Std::Show => add("show", Op::Show),
                Std::Create => add("create", Op::Create),
                Std::Update => add("update", Op::Update),
                Std::Delete => add("delete", Op::Delete),
                Std::Metadata => {
                    add("metadata", Op::Metadata);
                    add("set-metadata", Op::SetMetadata);
                }
            }
        }
        for a in r.actions {
            add(a.name, Op::Action(a));
        }
    }
    out
}

/// The clap command: global options plus one subcommand per command.
pub fn build(commands: &[CommandDef]) -> Command {
    let root = GlobalOpts::augment_args(Command::new("climc"))
        .about("Command line client of cloudpods-rs")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true);
    root.subcommands(commands.iter().map(subcommand))
}

fn subcommand(cmd: &CommandDef) -> Command {
    let mut c = Command::new(cmd.name.clone()).about(cmd.about());
    for a in cmd.args() {
        for arg in clap_args(&a, cmd.resource.keyword) {
            c = c.arg(arg);
        }
    }
    c
}

fn value_name(a: &Arg, keyword: &str) -> String {
    match (a.name, a.kind) {
        ("id", _) => keyword.to_uppercase(),
        (_, Kind::KeyValues) => "KEY=VALUE".to_string(),
        (_, Kind::Int) => "N".to_string(),
        (_, Kind::JsonFile) => "FILE".to_string(),
        (name, _) => name.replace('-', "_").to_uppercase(),
    }
}

fn clap_args(a: &Arg, keyword: &str) -> Vec<clap::Arg> {
    let mut c = clap::Arg::new(a.name).help(a.help).required(a.required);
    if a.positional {
        c = c.value_name(value_name(a, keyword));
        if a.is_multiple() {
            c = c.num_args(1..).action(ArgAction::Append);
        }
        return vec![c];
    }
    c = c.long(a.name);
    match a.kind {
        Kind::Flag | Kind::Const(_) => vec![c.action(ArgAction::SetTrue)],
        Kind::FlagPair(neg) => vec![
            c.action(ArgAction::SetTrue).conflicts_with(neg),
            clap::Arg::new(neg).long(neg).action(ArgAction::SetTrue).help(format!("The opposite of --{}", a.name)),
        ],
        Kind::Int => vec![c.value_name(value_name(a, keyword)).value_parser(clap::value_parser!(i64))],
        Kind::List | Kind::KeyValues => vec![c.value_name(value_name(a, keyword)).action(ArgAction::Append)],
        Kind::Str | Kind::Json | Kind::JsonFile => vec![c.value_name(value_name(a, keyword))],
    }
}

/// The values given on the command line, by argument name. Flags hold `"true"` or `"false"`.
pub type Values = BTreeMap<String, Vec<String>>;

/// Reads the values of `cmd`'s arguments from clap's matches.
pub fn values(cmd: &CommandDef, m: &ArgMatches) -> Values {
    let mut out = Values::new();
    for a in cmd.args() {
        let got: Option<Vec<String>> = match a.kind {
            Kind::Flag | Kind::Const(_) => m.get_flag(a.name).then(|| vec!["true".to_string()]),
            Kind::FlagPair(neg) => {
                if m.get_flag(a.name) {
                    Some(vec!["true".to_string()])
                } else {
                    m.get_flag(neg).then(|| vec!["false".to_string()])
                }
            }
            Kind::Int => m.get_one::<i64>(a.name).map(|n| vec![n.to_string()]),
            _ => m.get_many::<String>(a.name).map(|vs| vs.cloned().collect()),
        };
        if let Some(v) = got {
            out.insert(a.name.to_string(), v);
        }
    }
    out
}

/// Global options from the root matches.
pub fn global_opts(m: &ArgMatches) -> Result<GlobalOpts, clap::Error> {
    GlobalOpts::from_arg_matches(m)
}
