//! The climc binary against a real cloud (`test_harness::TestCloud`: keystone and logger
//! in-process): every request shape climc sends must be one the services accept.

use std::time::Duration;

use serde_json::Value;
use test_harness::{TestCloud, wait_for};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs climc with `env` (and nothing else of the caller's `OS_*`/`CLIMC_*`).
async fn climc(env: &[(String, String)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_climc"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k.starts_with("CLIMC_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.envs(env.iter().cloned()).args(args).output().await.unwrap_or_else(|e| panic!("run climc: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn names(list: &Value) -> Vec<&str> {
    list["data"].as_array().into_iter().flatten().filter_map(|o| o["name"].as_str()).collect()
}

#[tokio::test]
async fn identity_commands_against_keystone() -> anyhow::Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.os_env("sysadmin", &tc.admin_password, "system");

    let r = climc(&admin, &["user-list"]).await.ok();
    assert!(r.stdout.contains("| sysadmin "), "{}", r.stdout);
    assert!(r.stdout.contains("total: "), "{}", r.stdout);

    let r = climc(&admin, &["project-create", "demo2", "--description", "a demo"]).await.ok();
    assert!(r.stdout.contains("| name ") && r.stdout.contains("demo2"), "{}", r.stdout);
    let list = climc(&admin, &["project-list", "--output-format", "json"]).await.ok().json();
    let projects = names(&list);
    assert!(projects.contains(&"demo2") && projects.contains(&"system"), "{list}");
    assert_eq!(list["total"].as_u64(), Some(projects.len() as u64));
    let list = climc(&admin, &["project-list", "--search", "demo", "--output-format", "json"]).await.ok().json();
    assert_eq!(names(&list), ["demo2"]);
    let list = climc(&admin, &["project-list", "--filter", "name.equals(system)", "--output-format", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&list), ["system"]);

    climc(&admin, &["user-create", "alice", "--password", "alice-pw1", "--email", "alice@example.com"]).await.ok();
    let r = climc(&admin, &["project-add-user", "demo2", "alice", "member"]).await.ok();
    assert_eq!(r.stdout, "");
    let r = climc(&admin, &["role-assignments", "--user", "alice"]).await.ok();
    let row = r.stdout.lines().find(|l| l.contains("alice")).unwrap_or_default();
    assert!(row.contains("member") && row.contains("demo2"), "{}", r.stdout);
    let r = climc(&admin, &["project-user-list", "demo2", "--output-format", "json"]).await.ok();
    assert_eq!(names(&r.json()), ["alice"]);

    let r = climc(&admin, &["user-show", "nosuch"]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("not found") && r.stderr.contains("ResourceNotFoundError"), "{}", r.stderr);
    let r = climc(&admin, &["user-show", "alice", "--output-format", "yaml"]).await.ok();
    let user: Value = serde_yaml::from_str(&r.stdout)?;
    assert_eq!((user["name"].as_str(), user["email"].as_str()), (Some("alice"), Some("alice@example.com")));
    let r = climc(&admin, &["user-list", "--os-password", "wrong-password"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("InvalidCredentialError"), "{}", r.stderr);

    // alice, a member of demo2, sees her project only and may not create users.
    let alice = tc.os_env("alice", "alice-pw1", "demo2");
    let list = climc(&alice, &["project-list", "--output-format", "json"]).await.ok().json();
    assert_eq!(names(&list), ["demo2"]);
    let r = climc(&alice, &["user-create", "mallory", "--password", "mallory-pw"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("ForbiddenError"), "{}", r.stderr);

    // Updates, passwords, enable/disable, metadata.
    climc(&admin, &["user-update", "alice", "--displayname", "Alice"]).await.ok();
    climc(&admin, &["user-password", "alice", "--password", "alice-pw2"]).await.ok();
    assert_eq!(climc(&alice, &["project-list"]).await.code, 1, "the old password no longer works");
    let alice = tc.os_env("alice", "alice-pw2", "demo2");
    climc(&alice, &["project-list"]).await.ok();
    climc(&admin, &["user-disable", "alice"]).await.ok();
    assert_eq!(climc(&alice, &["project-list"]).await.code, 1);
    climc(&admin, &["user-enable", "alice"]).await.ok();
    climc(&alice, &["project-list"]).await.ok();
    climc(&admin, &["project-set-metadata", "demo2", "tier=gold"]).await.ok();
    let r = climc(&admin, &["project-metadata", "demo2", "--output-format", "json"]).await.ok();
    assert_eq!(r.json()["metadata"]["tier"], "gold");
    climc(&admin, &["project-update", "demo2", "--description", "changed"]).await.ok();
    climc(&admin, &["project-remove-user", "demo2", "alice", "member"]).await.ok();
    assert_eq!(climc(&alice, &["project-list"]).await.code, 1, "alice has no role left");

    climc(&admin, &["user-delete", "alice"]).await.ok();
    climc(&admin, &["project-delete", "demo2"]).await.ok();
    let list = climc(&admin, &["project-list", "--output-format", "json"]).await.ok().json();
    assert!(!names(&list).contains(&"demo2"), "{list}");
    tc.stop().await
}

#[tokio::test]
async fn groups_roles_policies_domains_and_the_catalog() -> anyhow::Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.os_env("sysadmin", &tc.admin_password, "system");

    climc(&admin, &["domain-create", "d1", "--description", "second"]).await.ok();
    climc(&admin, &["domain-disable", "d1"]).await.ok();
    climc(&admin, &["project-create", "dp", "--domain", "d1"]).await.ok();
    let r = climc(&admin, &["project-list", "--domain", "d1", "--output-format", "json"]).await.ok();
    assert_eq!(names(&r.json()), ["dp"]);
    let r = climc(&admin, &["domain-delete", "d1"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("InvalidStatusError"), "{}", r.stderr);

    climc(&admin, &["project-create", "demo"]).await.ok();
    climc(&admin, &["user-create", "gina", "--password", "gina-pw1"]).await.ok();
    climc(&admin, &["group-create", "ops"]).await.ok();
    climc(&admin, &["group-add-user", "ops", "gina"]).await.ok();
    let r = climc(&admin, &["group-user-list", "ops", "--output-format", "json"]).await.ok();
    assert_eq!(names(&r.json()), ["gina"]);
    climc(&admin, &["user-join-project", "gina", "--project", "demo", "--role", "reader"]).await.ok();
    let r = climc(&admin, &["role-assignments", "--user", "gina", "--output-format", "json"]).await.ok();
    let assignments = r.json();
    let roles: Vec<&str> =
        assignments["data"].as_array().into_iter().flatten().filter_map(|a| a["role"]["name"].as_str()).collect();
    assert_eq!(roles, ["reader"], "{}", r.stdout);
    climc(&admin, &["user-leave-project", "gina", "--project", "demo"]).await.ok();

    let policy = r#"{"identity": {"users": {"list": "allow", "get": "allow"}}}"#;
    climc(&admin, &["policy-create", "user-lister", "--scope", "domain", "--policy", policy]).await.ok();
    let dir = tc.dir.join("policy.yaml");
    std::fs::write(&dir, "identity:\n  roles:\n    list: allow\n")?;
    let path = dir.to_string_lossy().into_owned();
    climc(&admin, &["policy-create", "role-lister", "--scope", "project", "--file", &path]).await.ok();
    climc(&admin, &["role-create", "auditor", "--description", "reads users"]).await.ok();
    climc(&admin, &["role-add-policy", "auditor", "--policy", "user-lister"]).await.ok();
    climc(&admin, &["project-add-user", "demo", "gina", "auditor"]).await.ok();
    let gina = tc.os_env("gina", "gina-pw1", "demo");
    let r = climc(&gina, &["user-list", "--output-format", "json"]).await.ok();
    assert!(names(&r.json()).contains(&"sysadmin"), "{}", r.stdout);
    climc(&admin, &["role-remove-policy", "auditor", "--policy", "user-lister"]).await.ok();
    assert_eq!(climc(&gina, &["user-list"]).await.code, 1);

    climc(&admin, &["region-create", "region1"]).await.ok();
    climc(&admin, &["service-create", "compute", "nova"]).await.ok();
    climc(&admin, &["endpoint-create", "nova", "region1", "public", "http://10.0.0.1:8774/v2"]).await.ok();
    let r = climc(&admin, &["endpoint-list", "--service", "nova", "--output-format", "json"]).await.ok();
    assert_eq!(r.json()["data"][0]["url"], "http://10.0.0.1:8774/v2");
    let r =
        climc(&admin, &["service-config-edit", "keystone", "--set", "foo=bar", "--output-format", "json"]).await.ok();
    assert_eq!(r.json()["foo"], "bar");
    let r = climc(&admin, &["service-config-show", "keystone", "--output-format", "json"]).await.ok();
    assert_eq!(r.json()["foo"], "bar");
    let r = climc(&admin, &["credential-create", "--type", "aksk", "--blob", "{\"access\":\"a\"}", "--user", "gina"])
        .await
        .ok();
    assert!(r.stdout.contains("aksk"), "{}", r.stdout);
    let r = climc(&admin, &["credential-list", "--user", "gina", "--output-format", "json"]).await.ok();
    assert_eq!(r.json()["total"], 1);
    tc.stop().await
}

#[tokio::test]
async fn action_and_event_logs() -> anyhow::Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.os_env("sysadmin", &tc.admin_password, "system");
    climc(&admin, &["project-create", "logged"]).await.ok();

    let r = climc(&admin, &["identity-event-list", "--obj-type", "project", "--output-format", "json"]).await.ok();
    let events = r.json();
    let actions: Vec<(&str, &str)> = events["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?, e["action"].as_str()?)))
        .collect();
    assert_eq!(actions, [("logged", "create")], "{}", r.stdout);
    let r = climc(&admin, &["identity-event-list", "--obj-type", "project", "--action", "create"]).await.ok();
    let row = r.stdout.lines().find(|l| l.contains("| project ")).unwrap_or_default();
    assert!(row.contains("| logged ") && row.contains("| sysadmin ") && row.contains("| system "), "{}", r.stdout);
    let r = climc(&admin, &["identity-task-list"]).await.ok();
    assert!(r.stdout.contains("total: "), "{}", r.stdout);

    // The logger's record arrives a little later; action-list finds the logger in the catalog.
    let env = &admin;
    wait_for(Duration::from_secs(15), move || async move {
        let r = climc(env, &["action-list", "--obj-type", "project", "--output-format", "json"]).await;
        r.code == 0 && r.stdout.contains("\"logged\"")
    })
    .await?;
    let r = climc(&admin, &["action-list", "--obj-type", "project"]).await.ok();
    let row = r.stdout.lines().find(|l| l.contains("logged")).unwrap_or_default();
    assert!(row.contains("create") && row.contains("sysadmin") && row.contains("keystone"), "{}", r.stdout);
    let r = climc(&admin, &["action-list", "--success", "false", "--obj-type", "project"]).await.ok();
    assert!(r.stdout.ends_with("total: 0\n"), "{}", r.stdout);
    tc.stop().await
}

#[tokio::test]
async fn image_commands_against_glance() -> anyhow::Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.os_env("sysadmin", &tc.admin_password, "system");
    let dir = std::env::temp_dir().join(format!("climc-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let raw = dir.join("disk.raw");
    let mut data = vec![0u8; 4 << 20];
    for (i, b) in data.iter_mut().enumerate().take(1 << 20) {
        *b = (i % 253) as u8;
    }
    std::fs::write(&raw, &data)?;
    let qcow = dir.join("disk.qcow2");
    let st = std::process::Command::new("qemu-img").args(["convert", "-O", "qcow2"]).arg(&raw).arg(&qcow).status()?;
    assert!(st.success());
    let (raw_s, qcow_s) = (raw.to_string_lossy().to_string(), qcow.to_string_lossy().to_string());

    let r = climc(&admin, &["image-upload", "--format", "qcow2", "--os-type", "Linux", &qcow_s, "myimage"]).await.ok();
    assert!(r.stderr.contains("uploaded ") && r.stderr.contains("MiB/s)"), "{}", r.stderr);
    assert!(r.stdout.contains("myimage"), "{}", r.stdout);
    climc(&admin, &["image-upload", &raw_s, "rawimage"]).await.ok();
    for name in ["myimage", "rawimage"] {
        wait_for(Duration::from_secs(60), || async {
            let r = climc(&admin, &["image-show", name, "--output-format", "json"]).await;
            r.code == 0 && r.json()["status"] == "active"
        })
        .await?;
    }
    let shown = climc(&admin, &["image-show", "myimage", "--output-format", "json"]).await.ok().json();
    assert_eq!((shown["disk_format"].as_str(), shown["min_disk"].as_u64()), (Some("qcow2"), Some(4)));
    assert_eq!(shown["properties"]["os_type"], "Linux");
    let list = climc(&admin, &["image-list", "--output-format", "json"]).await.ok().json();
    assert_eq!(list["total"], 2, "{list}");
    let list = climc(&admin, &["image-list", "--disk-format", "raw", "--output-format", "json"]).await.ok().json();
    assert_eq!(names(&list), ["rawimage"]);

    // Download the conversion of the raw image and check it with qemu-img.
    let out = dir.join("out.qcow2");
    let out_s = out.to_string_lossy().to_string();
    let r = climc(&admin, &["image-download", "rawimage", "-o", &out_s, "--format", "qcow2"]).await.ok();
    assert!(r.stderr.contains("downloaded ") && r.stderr.contains("md5 checked"), "{}", r.stderr);
    let st = std::process::Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&raw)
        .arg(&out)
        .status()?;
    assert!(st.success(), "the downloaded qcow2 holds the raw disk");
    let r = climc(&admin, &["image-download", "rawimage", "-o", &out_s, "--format", "vmdk"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("ResourceNotFoundError"), "{}", r.stderr);

    climc(&admin, &["image-update", "myimage", "--property", "os_version=12", "--min-ram", "512"]).await.ok();
    climc(&admin, &["image-probe", "myimage"]).await.ok();
    wait_for(Duration::from_secs(60), || async {
        climc(&admin, &["image-show", "myimage", "--output-format", "json"]).await.json()["status"] == "active"
    })
    .await?;
    let r = climc(&admin, &["image-delete", "myimage"]).await;
    assert!(r.code == 1 && r.stderr.contains("protected"), "{}", r.stderr);
    climc(&admin, &["image-update", "myimage", "--unprotected"]).await.ok();
    climc(&admin, &["image-delete", "myimage"]).await.ok();
    let list = climc(&admin, &["image-list", "--pending-delete", "true", "--output-format", "json"]).await.ok().json();
    assert_eq!(names(&list), ["myimage"]);
    climc(&admin, &["image-cancel-delete", "myimage"]).await.ok();
    let list = climc(&admin, &["image-list", "--output-format", "json"]).await.ok().json();
    assert_eq!(list["total"], 2);
    let _ = std::fs::remove_dir_all(&dir);
    tc.stop().await
}
