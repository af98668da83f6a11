//! Unit tests: the command table, command line -> requests, and printing.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::cli::{self, CommandDef, Op};
use crate::plan::{Plan, Show, UsageError, placeholders, plan};
use crate::resources;

fn commands() -> Vec<CommandDef> {
    cli::commands(&resources::all())
}

fn fake_file(path: &str) -> std::io::Result<String> {
    match path {
        "policy.yaml" => Ok("policy:\n  compute:\n    servers: allow\n".to_string()),
        "policy.json" => Ok(r#"{"policy": {"*": "deny"}}"#.to_string()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")),
    }
}

/// Parses `argv` as climc would and plans it.
fn try_plan(argv: &[&str]) -> Result<Plan, UsageError> {
    let cmds = commands();
    let m = cli::build(&cmds)
        .try_get_matches_from(std::iter::once("climc").chain(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (name, sub) = m.subcommand().unwrap_or_else(|| panic!("no subcommand"));
    let cmd = cmds.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no command {name}"));
    plan(cmd, &cli::values(cmd, sub), &fake_file)
}

fn plan_of(argv: &[&str]) -> Plan {
    try_plan(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// `METHOD path?query` of every call.
fn lines(p: &Plan) -> Vec<String> {
    p.calls.iter().map(|c| c.to_string()).collect()
}

fn body(p: &Plan) -> Value {
    p.calls[0].body.clone().unwrap_or_default()
}

// ---- the table ----

#[test]
fn command_names_are_unique() {
    let mut seen = HashSet::new();
    for c in commands() {
        assert!(seen.insert(c.name.clone()), "duplicate command {}", c.name);
    }
}

#[test]
fn clap_accepts_the_table() {
    cli::build(&commands()).debug_assert();
}

#[test]
fn every_command_is_consistent() {
    let cmds = commands();
    let all = resources::all();
    for c in &cmds {
        let args = c.args();
        let mut names = HashSet::new();
        for a in &args {
            assert!(names.insert(a.name), "{}: argument {} twice", c.name, a.name);
            if let crate::spec::Kind::FlagPair(neg) = a.kind {
                assert!(names.insert(neg), "{}: argument {neg} twice", c.name);
            }
            if let Some(plural) = a.lookup {
                assert!(
                    all.iter().any(|r| r.plural == plural && r.service == c.resource.service),
                    "{}: --{} looks up unknown {plural}",
                    c.name,
                    a.name
                );
            }
        }
        // positional arguments: required ones first, at most one taking many values, last
        let positionals: Vec<_> = args.iter().filter(|a| a.positional).collect();
        for w in positionals.windows(2) {
            assert!(w[0].required || !w[1].required, "{}: optional positional before a required one", c.name);
            assert!(!w[0].is_multiple(), "{}: a multi-value positional must be last", c.name);
        }
        match c.op {
            Op::Action(a) => {
                if let crate::spec::ActionKind::Custom { path, .. } = a.kind {
                    for p in placeholders(path) {
                        let arg = args.iter().find(|x| x.name == p);
                        assert!(arg.is_some_and(|x| x.required), "{}: {{{p}}} needs a required argument", c.name);
                    }
                }
            }
            Op::Show | Op::Update | Op::Metadata | Op::SetMetadata | Op::Delete => {
                assert_eq!(args.first().map(|a| a.name), Some("id"), "{}: no ID", c.name);
            }
            Op::List | Op::Create => {}
        }
    }
}

#[test]
fn required_commands_exist() {
    let names: HashSet<String> = commands().into_iter().map(|c| c.name).collect();
    let expected = [
        "user-list",
        "user-show",
        "user-create",
        "user-update",
        "user-delete",
        "user-enable",
        "user-disable",
        "user-join-project",
        "user-leave-project",
        "user-join-group",
        "user-password",
        "user-metadata",
        "user-set-metadata",
        "project-list",
        "project-show",
        "project-create",
        "project-update",
        "project-delete",
        "project-add-user",
        "project-remove-user",
        "project-set-metadata",
        "domain-list",
        "domain-create",
        "domain-enable",
        "domain-disable",
        "group-list",
        "group-create",
        "group-add-user",
        "group-remove-user",
        "group-user-list",
        "role-list",
        "role-create",
        "role-add-policy",
        "role-remove-policy",
        "role-assignments",
        "policy-list",
        "policy-create",
        "policy-update",
        "policy-delete",
        "service-list",
        "service-create",
        "service-config-show",
        "service-config-edit",
        "endpoint-list",
        "endpoint-create",
        "endpoint-delete",
        "region-list",
        "region-create",
        "region-delete",
        "credential-list",
        "credential-create",
        "credential-delete",
        "action-list",
        "action-show",
        "identity-task-list",
        "identity-task-show",
        "identity-event-list",
        "log-task-list",
        "log-event-list",
        "region-task-list",
        "region-task-show",
        "region-event-list",
        "image-task-list",
        "image-task-show",
        "image-event-list",
    ];
    for e in expected {
        assert!(names.contains(e), "missing command {e}");
    }
}

// ---- command line -> requests ----

#[test]
fn list_flags_become_query() {
    let p = plan_of(&[
        "user-list",
        "--limit",
        "10",
        "--details",
        "--filter",
        "name.contains(a)",
        "--filter",
        "enabled.equals(1)",
        "--domain",
        "d1",
        "--scope",
        "system",
    ]);
    assert_eq!(
        lines(&p),
        [
            "GET users?limit=10&details=true&filter=name.contains(a)&filter=enabled.equals(1)&scope=system&domain_id={domains:d1}"
        ]
    );
    assert_eq!(p.calls[0].service, "identity");
    assert_eq!(p.calls[0].version, Some("v3"));
    match &p.show {
        Show::List { key, columns } => {
            assert_eq!(key, "users");
            assert_eq!(columns[..2], ["id".to_string(), "name".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let p = plan_of(&["user-list", "--field", "id", "--field", "email"]);
    assert_eq!(p.show, Show::List { key: "users".into(), columns: vec!["id".into(), "email".into()] });
}

#[test]
fn create_and_update() {
    let p =
        plan_of(&["user-create", "alice", "--password", "pw", "--domain", "Default", "--enabled", "--email", "a@x"]);
    assert_eq!(lines(&p), ["POST users"]);
    assert_eq!(
        body(&p),
        json!({"user": {"name": "alice", "password": "pw", "email": "a@x", "domain_id": "Default", "enabled": true}})
    );
    let lookups: Vec<(String, String)> =
        p.calls[0].body_lookups.iter().map(|(ptr, l)| (ptr.clone(), format!("{}:{}", l.plural, l.name))).collect();
    assert_eq!(lookups, [("/user/domain_id".to_string(), "domains:Default".to_string())]);

    let p = plan_of(&["user-update", "alice", "--disabled", "--name", "alice2"]);
    assert_eq!(lines(&p), ["PUT users/alice"]);
    assert_eq!(body(&p), json!({"user": {"name": "alice2", "enabled": false}}));
    assert_eq!(p.show, Show::Object { unwrap: Some("user".into()) });

    let err = try_plan(&["user-update", "alice"]).err();
    assert_eq!(err.map(|e| e.0), Some("nothing to update: give at least one field to change".to_string()));
}

#[test]
fn delete_many() {
    let p = plan_of(&["user-delete", "a", "b c"]);
    assert_eq!(lines(&p), ["DELETE users/a", "DELETE users/b c"]);
}

#[test]
fn perform_actions() {
    let p = plan_of(&["user-enable", "alice"]);
    assert_eq!(lines(&p), ["POST users/alice/enable"]);
    assert_eq!(body(&p), json!({"user": {}}));

    let p = plan_of(&["user-join-project", "alice", "--project", "demo", "--role", "member", "--role", "admin"]);
    assert_eq!(lines(&p), ["POST users/alice/join"]);
    assert_eq!(body(&p), json!({"user": {"projects": ["demo"], "roles": ["member", "admin"]}}));

    let p = plan_of(&["user-leave-project", "alice", "--project", "demo"]);
    assert_eq!(lines(&p), ["POST users/alice/leave"]);
    assert_eq!(body(&p), json!({"user": {"projects": ["demo"]}}));

    let p = plan_of(&["user-password", "alice", "--password", "s3cret"]);
    assert_eq!(lines(&p), ["PUT users/alice"]);
    assert_eq!(body(&p), json!({"user": {"password": "s3cret"}}));

    let p = plan_of(&["domain-disable", "d1"]);
    assert_eq!(lines(&p), ["PUT domains/d1"]);
    assert_eq!(body(&p), json!({"domain": {"enabled": false}}));

    let p = plan_of(&["role-add-policy", "member", "--policy", "p-viewer", "--project", "demo"]);
    assert_eq!(lines(&p), ["POST roles/member/add-policy"]);
    assert_eq!(body(&p), json!({"role": {"policy_id": "p-viewer", "project_id": "demo"}}));
    assert_eq!(p.calls[0].body_lookups.len(), 2);
}

#[test]
fn joint_paths() {
    let p = plan_of(&["project-add-user", "demo", "alice", "member"]);
    assert_eq!(lines(&p), ["PUT projects/{projects:demo}/users/{users:alice}/roles/{roles:member}"]);
    assert_eq!(p.calls[0].body, None);
    let p = plan_of(&["project-remove-user", "demo", "alice", "member"]);
    assert_eq!(lines(&p), ["DELETE projects/{projects:demo}/users/{users:alice}/roles/{roles:member}"]);
    let p = plan_of(&["user-join-group", "alice", "--group", "devs"]);
    assert_eq!(lines(&p), ["PUT groups/{groups:devs}/users/{users:alice}"]);
    let p = plan_of(&["group-add-user", "devs", "alice"]);
    assert_eq!(lines(&p), ["PUT groups/{groups:devs}/users/{users:alice}"]);
    let p = plan_of(&["group-user-list", "devs"]);
    assert_eq!(lines(&p), ["GET groups/{groups:devs}/users"]);
    assert!(matches!(&p.show, Show::List { key, .. } if key == "users"));
}

#[test]
fn role_assignments() {
    let p = plan_of(&["role-assignments", "--user", "alice", "--project", "demo", "--effective", "--include-names"]);
    assert_eq!(
        lines(&p),
        [
            "GET role_assignments?user.id={users:alice}&scope.project.id={projects:demo}&effective=true&include_names=true"
        ]
    );
    let p = plan_of(&["role-assignments", "--system", "--role", "admin"]);
    assert_eq!(lines(&p), ["GET role_assignments?role.id={roles:admin}&scope.system=all"]);
}

#[test]
fn policies_and_config() {
    let p = plan_of(&["policy-create", "viewer", "--scope", "project", "--file", "policy.yaml"]);
    assert_eq!(lines(&p), ["POST policies"]);
    assert_eq!(
        body(&p),
        json!({"policy": {"name": "viewer", "type": "viewer", "scope": "project",
                          "blob": {"policy": {"compute": {"servers": "allow"}}}}})
    );
    let p = plan_of(&["policy-update", "viewer", "--policy", r#"{"policy":{"*":"allow"}}"#]);
    assert_eq!(body(&p), json!({"policy": {"blob": {"policy": {"*": "allow"}}}}));
    let err = try_plan(&["policy-create", "v", "--scope", "project", "--file", "missing.yaml"]).err();
    assert_eq!(err.map(|e| e.0), Some("cannot read missing.yaml: No such file or directory".to_string()));

    let p = plan_of(&["service-config-show", "region"]);
    assert_eq!(lines(&p), ["GET services/region/config"]);
    assert_eq!(p.show, Show::Object { unwrap: Some("config.default".into()) });
    let p = plan_of(&["service-config-edit", "region", "--set", "a=1", "--set", "b=x=y"]);
    assert_eq!(lines(&p), ["POST services/region/config"]);
    assert_eq!(body(&p), json!({"config": {"default": {"a": "1", "b": "x=y"}}}));
    let err = try_plan(&["service-config-edit", "region", "--set", "novalue"]).err();
    assert_eq!(err.map(|e| e.0), Some("\"novalue\" is not key=value".to_string()));
}

#[test]
fn catalog_resources() {
    let p = plan_of(&["endpoint-create", "keystone", "RegionOne", "public", "http://k:30500/v3", "--enabled"]);
    assert_eq!(
        body(&p),
        json!({"endpoint": {"service_id": "keystone", "region_id": "RegionOne", "interface": "public",
                            "url": "http://k:30500/v3", "enabled": true}})
    );
    let p = plan_of(&["service-create", "compute_v2", "region", "--description", "Region service"]);
    assert_eq!(body(&p), json!({"service": {"type": "compute_v2", "name": "region", "description": "Region service"}}));
    let p = plan_of(&["credential-create", "--type", "aksk", "--blob", "{}", "--user", "alice"]);
    assert_eq!(body(&p), json!({"credential": {"type": "aksk", "blob": "{}", "user_id": "alice"}}));
}

#[test]
fn metadata() {
    let p = plan_of(&["project-metadata", "demo"]);
    assert_eq!(lines(&p), ["GET projects/demo/metadata"]);
    let p = plan_of(&["project-set-metadata", "demo", "user:env=prod", "owner=ops"]);
    assert_eq!(lines(&p), ["POST projects/demo/metadata"]);
    assert_eq!(body(&p), json!({"user:env": "prod", "owner": "ops"}));
}

#[test]
fn other_services() {
    let p = plan_of(&["action-list", "--obj-type", "server", "--success", "true", "--limit", "5"]);
    assert_eq!(lines(&p), ["GET actions?limit=5&obj_type=server&success=true"]);
    assert_eq!((p.calls[0].service, p.calls[0].version), ("log", None));
    let p = plan_of(&[
        "scheduler-forecast",
        "--ncpu",
        "2",
        "--mem-spec",
        "2g",
        "--disk",
        "10g",
        "--net",
        "net0",
        "--count",
        "3",
    ]);
    assert_eq!(lines(&p), ["POST scheduler/forecast"]);
    assert_eq!(p.calls[0].service, "scheduler");
    assert_eq!(
        p.calls[0].body,
        Some(
            serde_json::json!({"scheduler": {"vcpu_count": 2, "vmem_size": "2g", "disks": ["10g"], "nets": ["net0"], "count": 3}})
        )
    );
    let p = plan_of(&[
        "server-create",
        "--ncpu",
        "2",
        "--mem-spec",
        "2g",
        "--disk",
        "img:10g",
        "--disk",
        "20g",
        "--net",
        "net0",
        "--password",
        "Passw0rd!",
        "--count",
        "2",
        "vm",
    ]);
    assert_eq!(lines(&p), ["POST servers"]);
    assert_eq!(
        body(&p),
        serde_json::json!({"server": {"name": "vm", "vcpu_count": 2, "vmem_size": "2g", "disks": ["img:10g", "20g"],
            "nets": ["net0"], "password": "Passw0rd!", "count": 2}})
    );
    let p = plan_of(&["server-delete", "vm1", "--override-pending-delete"]);
    assert_eq!(lines(&p), ["DELETE servers/{servers:vm1}?override_pending_delete=true"]);
    let p = plan_of(&["server-detach-disk", "vm1", "--disk", "d1", "--delete-disk"]);
    assert_eq!(lines(&p), ["POST servers/vm1/detachdisk"]);
    assert_eq!(body(&p), serde_json::json!({"server": {"disk_id": "d1", "keep_disk": "false"}}));
    let p = plan_of(&["server-stop", "vm1", "--force", "--shutdown-timeout", "10"]);
    assert_eq!(body(&p), serde_json::json!({"server": {"is_force": true, "timeout": 10}}));
    // Batch: one call per server, each with the same options, in the order given.
    let p = plan_of(&["server-stop", "vm1", "vm2", "--force"]);
    assert_eq!(lines(&p), ["POST servers/vm1/stop", "POST servers/vm2/stop"]);
    assert!(p.calls.iter().all(|c| c.body == Some(serde_json::json!({"server": {"is_force": true}}))));
    let p = plan_of(&["server-start", "vm1"]);
    assert_eq!(lines(&p), ["POST servers/vm1/start"]);
    let p = plan_of(&["server-delete", "vm1", "vm2", "--override-pending-delete"]);
    assert_eq!(
        lines(&p),
        [
            "DELETE servers/{servers:vm1}?override_pending_delete=true",
            "DELETE servers/{servers:vm2}?override_pending_delete=true"
        ]
    );
    let p = plan_of(&["server-change-config", "vm1", "--ncpu", "4"]);
    assert_eq!(body(&p), serde_json::json!({"server": {"vcpu_count": 4}}));
    let p = plan_of(&["region-task-list"]);
    assert_eq!((lines(&p)[0].as_str(), p.calls[0].service), ("GET tasks", "compute_v2"));
    let p = plan_of(&["image-task-show", "t1"]);
    assert_eq!((lines(&p)[0].as_str(), p.calls[0].service, p.calls[0].version), ("GET tasks/t1", "image", Some("v1")));
    let p = plan_of(&["identity-event-list", "--obj-type", "user", "--obj-type", "project"]);
    assert_eq!(lines(&p), ["GET events?obj_type=user&obj_type=project"]);
}

#[test]
fn global_options() {
    let cmds = commands();
    let m = cli::build(&cmds)
        .try_get_matches_from([
            "climc",
            "--os-username",
            "u",
            "user-list",
            "--os-auth-url",
            "http://k/v3",
            "--os-password",
            "p",
            "--os-project-name",
            "system",
            "--output-format",
            "json",
            "--os-domain-name",
            "Default",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let g = cli::global_opts(&m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.os_auth_url.as_deref(), Some("http://k/v3"));
    assert_eq!(g.output_format, crate::output::Format::Json);
    let params = crate::exec::auth_params(&g).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params, mcclient::AuthParams::password("u", "Default", "p").with_project("system", "Default"));
    let token = cli::GlobalOpts { os_auth_token: Some("t".into()), ..g.clone() };
    assert_eq!(crate::exec::auth_params(&token).map(|p| p.method), Ok(mcclient::AuthMethod::Token { id: "t".into() }));
    let nobody = cli::GlobalOpts { os_username: None, os_auth_token: None, ..g };
    assert!(crate::exec::auth_params(&nobody).is_err());
}

#[test]
fn no_command_argument_shadows_a_global_option() {
    // clap would only notice at run time, when the value is read with the wrong type.
    let cmds = commands();
    let root = cli::build(&cmds);
    let globals: HashSet<String> = root.get_arguments().map(|a| a.get_id().to_string()).collect();
    assert!(globals.contains("timeout"));
    for sub in root.get_subcommands() {
        for a in sub.get_arguments() {
            assert!(
                !globals.contains(a.get_id().as_str()),
                "{} --{} shadows a global option",
                sub.get_name(),
                a.get_id()
            );
        }
    }
}
