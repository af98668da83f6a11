//! Keystone's resources (service type `identity`, `/v3`).

use mcclient::Method;

use crate::spec::{Action, Arg, Fixed, Kind, Output, ResourceSpec, Std};

const fn identity(keyword: &'static str, plural: &'static str) -> ResourceSpec {
    ResourceSpec::new("identity", keyword, plural).version("v3")
}

const ENABLED: Arg = Arg::opt("enabled", "Enable it").kind(Kind::FlagPair("disabled"));
const DESCRIPTION: Arg = Arg::opt("description", "Description");
const NEW_NAME: Arg = Arg::opt("name", "New name");
const DOMAIN_FILTER: Arg = Arg::opt("domain", "Only in this domain (name or id)").field("domain_id").lookup("domains");
const DOMAIN: Arg = Arg::opt("domain", "Domain (name or id) it belongs to").field("domain_id").lookup("domains");

const USER_COLUMNS: &[&str] = &["id", "name", "domain", "enabled", "displayname", "email", "mobile"];

pub const USER: ResourceSpec = identity("user", "users")
    .columns(USER_COLUMNS)
    .list_filters(&[DOMAIN_FILTER])
    .create_args(&[
        Arg::pos("name", "Name of the user"),
        Arg::opt("password", "Password"),
        Arg::opt("displayname", "Display name"),
        Arg::opt("email", "Email address"),
        Arg::opt("mobile", "Mobile phone number"),
        DOMAIN,
        ENABLED,
        DESCRIPTION,
    ])
    .update_args(&[
        NEW_NAME,
        Arg::opt("password", "New password"),
        Arg::opt("displayname", "Display name"),
        Arg::opt("email", "Email address"),
        Arg::opt("mobile", "Mobile phone number"),
        ENABLED,
        DESCRIPTION,
    ])
    .actions(&[
        Action::perform("enable", "enable", "Enable a user"),
        Action::perform("disable", "disable", "Disable a user"),
        Action::perform("join-project", "join", "Add a user to projects with roles").args(&[
            Arg::opt("project", "Project (name or id); repeatable").kind(Kind::List).field("projects").required(),
            Arg::opt("role", "Role (name or id); repeatable").kind(Kind::List).field("roles").required(),
        ]),
        Action::perform("leave-project", "leave", "Remove a user from projects").args(&[Arg::opt(
            "project",
            "Project (name or id); repeatable",
        )
        .kind(Kind::List)
        .field("projects")
        .required()]),
        Action::custom("join-group", Method::Put, "groups/{group}/users/{user}", "Add a user to a group").args(&[
            Arg::pos("user", "User (name or id)").lookup("users"),
            Arg::opt("group", "Group (name or id)").required().lookup("groups"),
        ]),
        Action::update("password", &[], "Set a user's password")
            .args(&[Arg::opt("password", "New password").required()]),
    ]);

pub const PROJECT: ResourceSpec = identity("project", "projects")
    .columns(&["id", "name", "domain", "description"])
    .list_filters(&[DOMAIN_FILTER])
    .create_args(&[Arg::pos("name", "Name of the project"), DOMAIN, DESCRIPTION])
    .update_args(&[NEW_NAME, DESCRIPTION])
    .actions(&[
        Action::custom(
            "add-user",
            Method::Put,
            "projects/{project}/users/{user}/roles/{role}",
            "Grant a role in a project to a user",
        )
        .args(PROJECT_USER_ROLE),
        Action::custom(
            "remove-user",
            Method::Delete,
            "projects/{project}/users/{user}/roles/{role}",
            "Revoke a user's role in a project",
        )
        .args(PROJECT_USER_ROLE),
        Action::custom("user-list", Method::Get, "projects/{project}/users", "List the users of a project")
            .args(&[Arg::pos("project", "Project (name or id)").lookup("projects")])
            .output(Output::List { key: "users", columns: USER_COLUMNS }),
    ]);

const PROJECT_USER_ROLE: &[Arg] = &[
    Arg::pos("project", "Project (name or id)").lookup("projects"),
    Arg::pos("user", "User (name or id)").lookup("users"),
    Arg::pos("role", "Role (name or id)").lookup("roles"),
];

pub const DOMAIN_RES: ResourceSpec = identity("domain", "domains")
    .columns(&["id", "name", "enabled", "description"])
    .create_args(&[Arg::pos("name", "Name of the domain"), ENABLED, DESCRIPTION])
    .update_args(&[NEW_NAME, ENABLED, DESCRIPTION])
    .actions(&[
        Action::update("enable", &[("enabled", Fixed::Bool(true))], "Enable a domain"),
        Action::update("disable", &[("enabled", Fixed::Bool(false))], "Disable a domain"),
    ]);

const GROUP_USER: &[Arg] =
    &[Arg::pos("group", "Group (name or id)").lookup("groups"), Arg::pos("user", "User (name or id)").lookup("users")];

pub const GROUP: ResourceSpec = identity("group", "groups")
    .columns(&["id", "name", "domain", "description"])
    .list_filters(&[DOMAIN_FILTER])
    .create_args(&[Arg::pos("name", "Name of the group"), DOMAIN, DESCRIPTION])
    .update_args(&[NEW_NAME, DESCRIPTION])
    .actions(&[
        Action::custom("add-user", Method::Put, "groups/{group}/users/{user}", "Add a user to a group")
            .args(GROUP_USER),
        Action::custom("remove-user", Method::Delete, "groups/{group}/users/{user}", "Remove a user from a group")
            .args(GROUP_USER),
        Action::custom("user-list", Method::Get, "groups/{group}/users", "List the users of a group")
            .args(&[Arg::pos("group", "Group (name or id)").lookup("groups")])
            .output(Output::List { key: "users", columns: USER_COLUMNS }),
    ]);

const ROLE_POLICY_ARGS: &[Arg] = &[
    Arg::opt("policy", "Policy (name or id)").field("policy_id").required().lookup("policies"),
    Arg::opt("project", "Only in this project (name or id)").field("project_id").lookup("projects"),
];

pub const ROLE: ResourceSpec = identity("role", "roles")
    .columns(&["id", "name", "domain", "description", "is_public"])
    .list_filters(&[DOMAIN_FILTER])
    .create_args(&[Arg::pos("name", "Name of the role"), DOMAIN, DESCRIPTION])
    .update_args(&[NEW_NAME, DESCRIPTION])
    .actions(&[
        Action::perform("add-policy", "add-policy", "Bind a policy to a role").args(ROLE_POLICY_ARGS),
        Action::perform("remove-policy", "remove-policy", "Unbind a policy from a role").args(ROLE_POLICY_ARGS),
        Action::custom("assignments", Method::Get, "role_assignments", "List role assignments")
            .args(&[
                Arg::opt("user", "Of this user (name or id)").field("user.id").lookup("users"),
                Arg::opt("group", "Of this group (name or id)").field("group.id").lookup("groups"),
                Arg::opt("project", "In this project (name or id)").field("scope.project.id").lookup("projects"),
                Arg::opt("domain", "In this domain (name or id)").field("scope.domain.id").lookup("domains"),
                Arg::opt("role", "Of this role (name or id)").field("role.id").lookup("roles"),
                Arg::opt("effective", "Expand group memberships").kind(Kind::Flag),
                Arg::opt("include-names", "Include names").kind(Kind::Flag),
                Arg::opt("system", "Only system-scoped assignments").kind(Kind::Const("all")).field("scope.system"),
                Arg::opt("limit", "Page size").kind(Kind::Int),
                Arg::opt("offset", "Page offset").kind(Kind::Int),
            ])
            .output(Output::List {
                key: "role_assignments",
                columns: &[
                    "role=role.name|role.id",
                    "user=user.name|user.id",
                    "group=group.name|group.id",
                    "scope=scope.project.name|scope.project.id|scope.domain.name|scope.domain.id|scope.system",
                ],
            }),
    ]);

const POLICY_SCOPE: Arg = Arg::opt("scope", "Scope of the policy: system, domain or project");
const POLICY_FILE: Arg =
    Arg::opt("file", "Read the policy from this YAML or JSON file").kind(Kind::JsonFile).field("blob");
const POLICY_JSON: Arg = Arg::opt("policy", "The policy as a JSON document").kind(Kind::Json).field("blob");

pub const POLICY: ResourceSpec = identity("policy", "policies")
    .columns(&["id", "name", "type", "scope", "enabled", "is_system", "domain"])
    .create_args(&[
        Arg::pos("name", "Name of the policy").field("name,type"),
        POLICY_SCOPE.required(),
        POLICY_FILE,
        POLICY_JSON,
        ENABLED,
        DESCRIPTION,
        DOMAIN,
    ])
    .update_args(&[NEW_NAME, POLICY_SCOPE, POLICY_FILE, POLICY_JSON, ENABLED, DESCRIPTION]);

pub const SERVICE: ResourceSpec = identity("service", "services")
    .columns(&["id", "name", "type", "enabled", "description"])
    .create_args(&[
        Arg::pos("type", "Service type, e.g. compute_v2"),
        Arg::pos("name", "Service name, e.g. region"),
        ENABLED,
        DESCRIPTION,
    ])
    .update_args(&[NEW_NAME, Arg::opt("type", "Service type"), ENABLED, DESCRIPTION])
    .actions(&[
        Action::spec("config-show", "config", "Show a service's configuration")
            .output(Output::Unwrap("config.default")),
        Action::perform("config-edit", "config", "Change options of a service's configuration")
            .args(&[Arg::opt("set", "Option to set, as key=value; repeatable")
                .kind(Kind::KeyValues)
                .field("config.default")
                .required()])
            .raw_body()
            .output(Output::Unwrap("config.default")),
    ]);

pub const ENDPOINT: ResourceSpec = identity("endpoint", "endpoints")
    .columns(&["id", "name", "service_name", "service_type", "region_id", "interface", "url", "enabled"])
    .list_filters(&[
        Arg::opt("service", "Of this service (name or id)").field("service_id").lookup("services"),
        Arg::opt("region", "In this region").field("region_id"),
        Arg::opt("interface", "With this interface: public, internal, admin"),
    ])
    .create_args(&[
        Arg::pos("service", "Service (name or id)").field("service_id").lookup("services"),
        Arg::pos("region", "Region id").field("region_id"),
        Arg::pos("interface", "public, internal or admin"),
        Arg::pos("url", "URL of the endpoint"),
        Arg::opt("name", "Name of the endpoint"),
        ENABLED,
    ])
    .update_args(&[
        Arg::opt("url", "URL of the endpoint"),
        NEW_NAME,
        Arg::opt("interface", "public, internal or admin"),
        ENABLED,
    ]);

pub const REGION: ResourceSpec = identity("region", "regions")
    .columns(&["id", "name", "description"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Update, Std::Delete])
    .create_args(&[Arg::pos("id", "Region id, e.g. RegionOne"), Arg::opt("name", "Name of the region"), DESCRIPTION])
    .update_args(&[NEW_NAME, DESCRIPTION]);

pub const CREDENTIAL: ResourceSpec = identity("credential", "credentials")
    .columns(&["id", "type", "user_id", "project_id"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Delete])
    .list_filters(&[
        Arg::opt("user", "Of this user (name or id)").field("user_id").lookup("users"),
        Arg::opt("type", "Of this type, e.g. aksk"),
    ])
    .create_args(&[
        Arg::opt("type", "Credential type, e.g. aksk, totp, enc_key").required(),
        Arg::opt("blob", "The credential's content").required(),
        Arg::opt("user", "Owner (name or id)").field("user_id").required().lookup("users"),
        Arg::opt("project", "Project (name or id)").field("project_id").lookup("projects"),
    ]);

/// Identity's resources, in help order.
pub const RESOURCES: &[ResourceSpec] =
    &[USER, PROJECT, DOMAIN_RES, GROUP, ROLE, POLICY, SERVICE, ENDPOINT, REGION, CREDENTIAL];
