//! Unit tests of the pure core: each filter, the explanation text, scores and spread.

use super::*;

fn host(name: &str, cpu: i64, mem: i64) -> HostCandidate {
    HostCandidate {
        id: format!("id-{name}"),
        name: name.into(),
        host_status: "online".into(),
        enabled: true,
        hypervisor: "hypervisor".into(),
        cpu_count: cpu,
        cpu_cmtbound: 1.0,
        mem_size_mb: mem,
        mem_cmtbound: 1.0,
        storages: vec![StorageCandidate {
            id: format!("st-{name}"),
            name: format!("{name}-local"),
            storage_type: "local".into(),
            capacity_mb: 100_000,
            cmtbound: 1.0,
            ..StorageCandidate::default()
        }],
        wires: ["w0".to_string()].into(),
        ..HostCandidate::default()
    }
}

fn req(cpu: i64, mem: i64) -> ScheduleInput {
    ScheduleInput { cpu, mem_mb: mem, count: 1, ..ScheduleInput::default() }
}

fn run(hosts: &[HostCandidate], input: &ScheduleInput) -> Outcome {
    schedule(hosts, &HashMap::new(), input)
}

fn rejected_by(out: &Outcome, filter: &str) -> Vec<String> {
    out.failures.iter().filter(|f| f.filter == filter).flat_map(|f| f.hosts.iter().map(|h| h.0.clone())).collect()
}

#[test]
fn status_filter_rejects_offline_disabled_and_maintenance() {
    let mut a = host("a", 4, 4096);
    a.host_status = "offline".into();
    let mut b = host("b", 4, 4096);
    b.enabled = false;
    let mut c = host("c", 4, 4096);
    c.is_maintenance = true;
    let out = run(&[a, b, c, host("d", 4, 4096)], &req(1, 512));
    assert_eq!(rejected_by(&out, "status"), ["a", "b", "c"]);
    assert_eq!(out.candidates[0].host, "d");
}

#[test]
fn hypervisor_filter_treats_kvm_as_hypervisor() {
    let mut c = host("c", 4, 4096);
    c.hypervisor = "container".into();
    let input = ScheduleInput { hypervisor: "kvm".into(), ..req(1, 512) };
    let out = run(&[c, host("k", 4, 4096)], &input);
    assert_eq!(rejected_by(&out, "hypervisor"), ["c"]);
    assert_eq!(out.candidates[0].host, "k");
}

#[test]
fn cpu_filter_honours_commit_bound_and_usage() {
    let mut a = host("a", 4, 65536);
    a.cpu_cmtbound = 2.0; // 8 vCPU
    a.used.cpu = 6;
    let out = run(std::slice::from_ref(&a), &req(3, 512));
    assert_eq!(rejected_by(&out, "cpu"), ["a"]);
    assert!(out.failures[0].to_string().contains("free 2 vCPU under bound 2"), "{}", out.failures[0]);
    assert_eq!(run(&[a], &req(2, 512)).candidates.len(), 1);
}

#[test]
fn memory_filter_explains_with_numbers() {
    let mut hosts = vec![];
    for n in ["a", "b", "c"] {
        let mut h = host(n, 8, 1000);
        h.mem_cmtbound = 1.2; // 1200 MB
        h.used.mem_mb = 176; // 1024 free
        hosts.push(h);
    }
    let out = run(&hosts, &req(1, 2048));
    assert!(out.candidates.is_empty());
    let text = out.reasons(&req(1, 2048), 3).join("\n");
    assert!(text.starts_with("memory: 3 hosts lack 2048 MB (a: free 1024 MB under bound 1.2;"), "{text}");
}

#[test]
fn storage_filter_matches_backend_and_free_space_under_bound() {
    let mut a = host("a", 8, 8192);
    a.storages[0].cmtbound = 0.5; // 50_000 MB
    let big = ScheduleInput { disks: vec![DiskRequest { size_mb: 60_000, backend: "local".into() }], ..req(1, 512) };
    let out = run(&[a.clone(), host("b", 8, 8192)], &big);
    assert_eq!(rejected_by(&out, "storage"), ["a"]);
    assert_eq!(out.candidates[0].storage_ids, ["st-b"]);
    let rbd = ScheduleInput { disks: vec![DiskRequest { size_mb: 10, backend: "rbd".into() }], ..req(1, 512) };
    let out = run(&[a], &rbd);
    assert!(out.failures[0].to_string().contains("local 50000 MB free"), "{}", out.failures[0]);
}

#[test]
fn network_filter_needs_a_nic_on_the_wire() {
    let mut b = host("b", 8, 8192);
    b.wires = ["w1".to_string()].into();
    let net = NetRequest { network: "net1".into(), network_id: "n1".into(), wire_id: "w1".into() };
    let input = ScheduleInput { networks: vec![net], ..req(1, 512) };
    let out = run(&[host("a", 8, 8192), b], &input);
    assert_eq!(rejected_by(&out, "network"), ["a"]);
    assert!(out.failures[0].to_string().contains("a: not on the wire of network net1"));
    assert_eq!(out.candidates[0].network_ids, ["n1"]);
}

#[test]
fn schedtag_require_exclude_prefer_avoid() {
    let mut ssd = host("ssd", 8, 8192);
    ssd.schedtags = ["fast".to_string()].into();
    let plain = host("plain", 64, 65536); // more capacity: wins on score alone
    let rule = |s| ScheduleInput { schedtags: vec![SchedtagRule { id: "fast".into(), strategy: s }], ..req(1, 512) };
    let hosts = [ssd, plain];
    assert_eq!(rejected_by(&run(&hosts, &rule(Strategy::Require)), "schedtag"), ["plain"]);
    assert_eq!(rejected_by(&run(&hosts, &rule(Strategy::Exclude)), "schedtag"), ["ssd"]);
    assert_eq!(run(&hosts, &req(1, 512)).candidates[0].host, "plain");
    assert_eq!(run(&hosts, &rule(Strategy::Prefer)).candidates[0].host, "ssd");
    let mut avoided = hosts.clone();
    avoided[0].cpu_count = 128;
    avoided[0].mem_size_mb = 1 << 20;
    assert_eq!(run(&avoided, &req(1, 512)).candidates[0].host, "ssd");
    assert_eq!(run(&avoided, &rule(Strategy::Avoid)).candidates[0].host, "plain");
}

#[test]
fn dedicated_hosts_take_only_their_project() {
    let mut d = host("d", 64, 65536);
    d.owner_project = Some("p1".into());
    let out = run(&[d.clone(), host("s", 4, 4096)], &ScheduleInput { project_id: "p2".into(), ..req(1, 512) });
    assert_eq!(rejected_by(&out, "project"), ["d"]);
    let out = run(&[d, host("s", 4, 4096)], &ScheduleInput { project_id: "p1".into(), ..req(1, 512) });
    assert_eq!(out.candidates[0].host, "d");
}

#[test]
fn count_spreads_round_robin_then_fills() {
    let hosts = [host("a", 8, 8192), host("b", 8, 8192), host("c", 2, 1024)];
    let out = run(&hosts, &ScheduleInput { count: 3, ..req(1, 1024) });
    let mut names: Vec<&str> = out.candidates.iter().map(|c| c.host.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    // c fits one; the rest go to a and b alternately.
    let out = run(&hosts, &ScheduleInput { count: 7, ..req(1, 1024) });
    let on = |n: &str| out.candidates.iter().filter(|c| c.host == n).count();
    assert_eq!((on("a") + on("b"), on("c")), (6, 1));
    assert!(on("a").abs_diff(on("b")) <= 1);
    // More than fits: partial, and the explanation says how many fit.
    let too_many = ScheduleInput { count: 20, ..req(1, 1024) };
    let out = run(&hosts, &too_many);
    assert_eq!((out.candidates.len(), out.allow_count), (17, 17));
    assert!(!out.complete(20));
    assert!(out.reasons(&too_many, 3).iter().any(|r| r.contains("fit 17 of 20")));
}

#[test]
fn disks_of_one_host_are_placed_cumulatively() {
    let mut a = host("a", 64, 65536);
    a.storages[0].capacity_mb = 25_000;
    let input =
        ScheduleInput { disks: vec![DiskRequest { size_mb: 10_000, backend: String::new() }], count: 3, ..req(1, 512) };
    let out = run(&[a], &input);
    assert_eq!((out.candidates.len(), out.allow_count), (2, 2));
}

#[test]
fn pending_usage_counts_against_the_host() {
    let hosts = [host("a", 4, 4096), host("b", 4, 4096)];
    let mut pending = HashMap::new();
    pending.insert("id-a".to_string(), Usage { cpu: 4, ..Usage::default() });
    let out = schedule(&hosts, &pending, &req(1, 512));
    assert_eq!(rejected_by(&out, "cpu"), ["a"]);
    assert_eq!(out.candidates[0].host, "b");
}

#[test]
fn creating_count_and_low_load_break_ties() {
    let mut a = host("a", 8, 8192);
    a.creating = 2;
    let out = run(&[a, host("b", 8, 8192)], &req(1, 512));
    assert_eq!(out.passed[0].host, "b");
    let mut busy = host("a", 8, 8192);
    busy.used = Usage { cpu: 3, mem_mb: 3000, ..Usage::default() };
    let idle = host("b", 8, 8192);
    let out = run(&[busy, idle], &ScheduleInput { count: 1, ..req(0, 0) });
    assert_eq!(out.passed[0].host, "b");
}

#[test]
fn no_hosts_is_explained() {
    let out = run(&[], &req(1, 512));
    assert_eq!(out.reasons(&req(1, 512), 0), ["no hosts are registered"]);
}
