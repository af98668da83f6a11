//! The scheduler's pure core: hosts in, candidates or an explanation out. No I/O, no clock.
//!
//! ```text
//!  hosts (HostCandidate, committed usage) + pending (per host, from the reservation table)
//!    -> free = total x cmtbound - reserved - used - pending       (cpu, memory, each storage)
//!    -> filters, in order; a host's first failing filter rejects it and records why
//!         status   host_status online, enabled, not in maintenance
//!         hypervisor host_type matches the request's hypervisor
//!         project  a dedicated host only takes servers of its own project
//!         schedtag every `require` tag present, no `exclude` tag present
//!         cpu      free vCPU under cpu_cmtbound >= request
//!         memory   free MB under mem_cmtbound >= request
//!         storage  every disk fits on a storage of its type attached to the host
//!         network  the host has a NIC on a wire of every requested network
//!    -> capacity = how many copies of the request fit (cpu, memory and disks together)
//!    -> scores: prefer/avoid buckets first, then capacity + low load - creating count
//!    -> selection: deal `count` round-robin over hosts in score order while a host's
//!       capacity exceeds what it was dealt, so `count` spreads across hosts
//! ```
//! Invariants:
//! * a host is dealt at most `capacity` instances, and capacity is computed from free
//!   resources net of pending reservations, so a result never over-commits a host as long as
//!   the caller reserves it before the next call reads `pending` (see [`crate::pending`]);
//! * every rejected host is counted under exactly one filter, with a reason naming numbers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Usage against a host: committed (its servers) or pending (reservations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu: i64,
    pub mem_mb: i64,
    /// Storage id -> MB.
    pub storage_mb: BTreeMap<String, i64>,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.cpu += o.cpu;
        self.mem_mb += o.mem_mb;
        for (k, v) in &o.storage_mb {
            *self.storage_mb.entry(k.clone()).or_default() += v;
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageCandidate {
    pub id: String,
    pub name: String,
    pub storage_type: String,
    pub capacity_mb: i64,
    pub reserved_mb: i64,
    pub cmtbound: f64,
}

/// One host as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostCandidate {
    pub id: String,
    pub name: String,
    pub zone_id: String,
    pub host_status: String,
    pub enabled: bool,
    pub is_maintenance: bool,
    /// `host_type`: hypervisor (kvm), baremetal, container, esxi.
    pub hypervisor: String,
    pub cpu_count: i64,
    pub cpu_reserved: i64,
    pub cpu_cmtbound: f64,
    pub mem_size_mb: i64,
    pub mem_reserved_mb: i64,
    pub mem_cmtbound: f64,
    pub storages: Vec<StorageCandidate>,
    /// Wires the host has a NIC on.
    pub wires: BTreeSet<String>,
    /// Schedtag ids and names.
    pub schedtags: BTreeSet<String>,
    /// A dedicated host's project; `None` for shared hosts.
    pub owner_project: Option<String>,
    /// Committed usage (the host's servers).
    pub used: Usage,
    /// Servers being created on the host (the `creating` score).
    pub creating: i64,
}

impl HostCandidate {
    fn cpu_total(&self) -> i64 {
        (self.cpu_count as f64 * self.cpu_cmtbound).floor() as i64 - self.cpu_reserved
    }
    fn mem_total(&self) -> i64 {
        (self.mem_size_mb as f64 * self.mem_cmtbound).floor() as i64 - self.mem_reserved_mb
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskRequest {
    pub size_mb: i64,
    /// Storage type (backend), e.g. `local`; empty: any.
    #[serde(default)]
    pub backend: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetRequest {
    /// The network asked for (name or id), for messages.
    pub network: String,
    pub network_id: String,
    /// The wire the network is on.
    pub wire_id: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Require,
    Exclude,
    Prefer,
    Avoid,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedtagRule {
    /// Schedtag id or name.
    pub id: String,
    #[serde(default)]
    pub strategy: Strategy,
}

/// What to place (already resolved: networks carry their wires).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleInput {
    pub cpu: i64,
    pub mem_mb: i64,
    pub disks: Vec<DiskRequest>,
    pub networks: Vec<NetRequest>,
    /// Empty: any hypervisor host. `kvm` is an alias of `hypervisor`.
    pub hypervisor: String,
    pub schedtags: Vec<SchedtagRule>,
    pub project_id: String,
    pub count: u32,
}

impl ScheduleInput {
    /// The usage of one instance on a host, given the storages chosen for its disks.
    pub fn usage(&self, storage_ids: &[String]) -> Usage {
        let mut u = Usage { cpu: self.cpu, mem_mb: self.mem_mb, ..Usage::default() };
        for (d, s) in self.disks.iter().zip(storage_ids) {
            *u.storage_mb.entry(s.clone()).or_default() += d.size_mb;
        }
        u
    }
}

/// One placed instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub host_id: String,
    pub host: String,
    /// One storage per requested disk, in order.
    pub storage_ids: Vec<String>,
    /// One network per requested NIC, in order.
    pub network_ids: Vec<String>,
}

/// The hosts one filter rejected, and why each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterFailure {
    pub filter: String,
    /// What the filter looked for, e.g. `lack 2048 MB`.
    pub wanted: String,
    /// (host name, reason).
    pub hosts: Vec<(String, String)>,
}

impl std::fmt::Display for FilterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.hosts.len();
        let why: Vec<String> = self.hosts.iter().map(|(h, r)| format!("{h}: {r}")).collect();
        write!(f, "{}: {n} host{} {} ({})", self.filter, if n == 1 { "" } else { "s" }, self.wanted, why.join("; "))
    }
}

/// A host that passed every filter, with how many instances fit and its rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub host_id: String,
    pub host: String,
    pub capacity: u32,
    pub prefer: u32,
    pub avoid: u32,
    pub score: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Hosts that passed, best first (left empty by [`schedule_lean`]).
    pub passed: Vec<Scored>,
    /// How many hosts passed every filter.
    pub passed_count: usize,
    pub failures: Vec<FilterFailure>,
    /// The placed instances (fewer than `count` when capacity runs out).
    pub candidates: Vec<Candidate>,
    /// How many instances fit in all (capped at [`CAPACITY_CAP`]).
    pub allow_count: u32,
}

impl Outcome {
    pub fn complete(&self, count: u32) -> bool {
        self.candidates.len() as u32 >= count.max(1)
    }

    /// Every reason the request does not fit, one line per filter.
    pub fn reasons(&self, input: &ScheduleInput, hosts: usize) -> Vec<String> {
        let mut r: Vec<String> = self.failures.iter().map(ToString::to_string).collect();
        if hosts == 0 {
            r.push("no hosts are registered".into());
        }
        let want = input.count.max(1);
        if self.passed_count > 0 && self.allow_count < want {
            r.push(format!("capacity: the hosts that pass every filter fit {} of {want} instances", self.allow_count));
        }
        r
    }
}

/// Capacity is counted up to this many instances per host.
pub const CAPACITY_CAP: u32 = 1000;

/// Free resources of one host, net of committed and pending usage. Borrows the host's
/// strings: building it allocates one small vector, whatever the number of hosts.
#[derive(Debug, Clone)]
struct Free<'a> {
    cpu: i64,
    mem: i64,
    storage: Vec<(&'a str, &'a str, i64)>, // (id, type, free MB)
}

fn free_of<'a>(h: &'a HostCandidate, pending: Option<&Usage>) -> Free<'a> {
    let (pcpu, pmem) = pending.map_or((0, 0), |p| (p.cpu, p.mem_mb));
    let used = |id: &str| {
        h.used.storage_mb.get(id).copied().unwrap_or(0)
            + pending.and_then(|p| p.storage_mb.get(id).copied()).unwrap_or(0)
    };
    Free {
        cpu: h.cpu_total() - h.used.cpu - pcpu,
        mem: h.mem_total() - h.used.mem_mb - pmem,
        storage: h
            .storages
            .iter()
            .map(|s| {
                let total = (s.capacity_mb as f64 * s.cmtbound).floor() as i64 - s.reserved_mb;
                (s.id.as_str(), s.storage_type.as_str(), total - used(&s.id))
            })
            .collect(),
    }
}

/// Places one instance's disks on `free` storages (largest free first), taking the space.
fn place_disks(input: &ScheduleInput, free: &mut Free<'_>) -> Option<Vec<String>> {
    let mut chosen = vec![];
    for d in &input.disks {
        let s = free
            .storage
            .iter_mut()
            .filter(|(_, t, f)| (d.backend.is_empty() || *t == d.backend) && *f >= d.size_mb)
            .max_by_key(|(_, _, f)| *f)?;
        s.2 -= d.size_mb;
        chosen.push(s.0.to_string());
    }
    Some(chosen)
}

/// Whether one instance's disks fit, without allocating for the common one-disk case.
fn disks_fit(input: &ScheduleInput, free: &Free<'_>) -> bool {
    match input.disks.as_slice() {
        [] => true,
        [d] => free.storage.iter().any(|(_, t, f)| (d.backend.is_empty() || *t == d.backend) && *f >= d.size_mb),
        _ => place_disks(input, &mut free.clone()).is_some(),
    }
}

fn norm_hypervisor(h: &str) -> &str {
    if h == "kvm" { "hypervisor" } else { h }
}

/// The filters, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Status,
    Hypervisor,
    Project,
    Schedtag,
    Cpu,
    Memory,
    Storage,
    Network,
}

const FILTERS: [Filter; 8] = [
    Filter::Status,
    Filter::Hypervisor,
    Filter::Project,
    Filter::Schedtag,
    Filter::Cpu,
    Filter::Memory,
    Filter::Storage,
    Filter::Network,
];

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Filter::Status => "status",
            Filter::Hypervisor => "hypervisor",
            Filter::Project => "project",
            Filter::Schedtag => "schedtag",
            Filter::Cpu => "cpu",
            Filter::Memory => "memory",
            Filter::Storage => "storage",
            Filter::Network => "network",
        }
    }
}

fn wanted(filter: Filter, input: &ScheduleInput) -> String {
    match filter {
        Filter::Status => "are not online, enabled and out of maintenance".into(),
        Filter::Hypervisor => format!("are not {} hosts", input.hypervisor),
        Filter::Project => format!("are dedicated to projects other than {:?}", input.project_id),
        Filter::Schedtag => "do not match the schedtag rules".into(),
        Filter::Cpu => format!("lack {} vCPU", input.cpu),
        Filter::Memory => format!("lack {} MB", input.mem_mb),
        Filter::Storage => {
            let d: Vec<String> = input.disks.iter().map(|d| format!("{} MB", d.size_mb)).collect();
            format!("lack storage for disks of {}", d.join(", "))
        }
        Filter::Network => "reach no wire of the requested networks".into(),
    }
}

/// Runs one filter on one host: `Err(reason)` rejects it.
fn check(filter: Filter, h: &HostCandidate, free: &Free<'_>, input: &ScheduleInput) -> Result<(), String> {
    match filter {
        Filter::Status if h.host_status != "online" => Err(format!("host_status {}", h.host_status)),
        Filter::Status if !h.enabled => Err("disabled".into()),
        Filter::Status if h.is_maintenance => Err("in maintenance".into()),
        Filter::Hypervisor
            if !input.hypervisor.is_empty() && norm_hypervisor(&input.hypervisor) != norm_hypervisor(&h.hypervisor) =>
        {
            Err(format!("is {}", h.hypervisor))
        }
        Filter::Project => match &h.owner_project {
            Some(p) if *p != input.project_id => Err(format!("dedicated to project {p}")),
            _ => Ok(()),
        },
        Filter::Schedtag => {
            for r in &input.schedtags {
                let has = h.schedtags.contains(&r.id);
                match r.strategy {
                    Strategy::Require if !has => return Err(format!("lacks required schedtag {}", r.id)),
                    Strategy::Exclude if has => return Err(format!("has excluded schedtag {}", r.id)),
                    _ => {}
                }
            }
            Ok(())
        }
        Filter::Cpu if free.cpu < input.cpu => {
            Err(format!("free {} vCPU under bound {} ({} cores)", free.cpu.max(0), h.cpu_cmtbound, h.cpu_count))
        }
        Filter::Memory if free.mem < input.mem_mb => {
            Err(format!("free {} MB under bound {}", free.mem.max(0), h.mem_cmtbound))
        }
        Filter::Storage => {
            if disks_fit(input, free) {
                return Ok(());
            }
            let f: Vec<String> = free.storage.iter().map(|(_, t, f)| format!("{t} {} MB free", f.max(&0))).collect();
            Err(if f.is_empty() { "has no storage".into() } else { f.join(", ") })
        }
        Filter::Network => match input.networks.iter().find(|n| !h.wires.contains(&n.wire_id)) {
            Some(n) => Err(format!("not on the wire of network {}", n.network)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// How many copies of the request fit in `free` (at most `cap`).
fn capacity(input: &ScheduleInput, free: &Free<'_>, cap: u32) -> u32 {
    // CPU and memory bound the count arithmetically; so do the disks when there is one (the
    // common case: each storage holds floor(free / size) of it). Several disks compete for
    // the same storages, so those are placed one instance at a time, up to that bound.
    let per = |free: i64, want: i64| if want <= 0 { cap as i64 } else { (free / want).max(0) };
    let mut bound = per(free.cpu, input.cpu).min(per(free.mem, input.mem_mb)).min(cap as i64);
    match input.disks.as_slice() {
        [] => {}
        [d] => {
            let fits: i64 = free
                .storage
                .iter()
                .filter(|(_, t, _)| d.backend.is_empty() || *t == d.backend)
                .map(|(_, _, f)| per(*f, d.size_mb))
                .sum();
            bound = bound.min(fits);
        }
        _ => {
            let mut f = free.clone();
            let mut n = 0;
            while n < bound && place_disks(input, &mut f).is_some() {
                n += 1;
            }
            bound = n;
        }
    }
    bound.max(0) as u32
}

/// `guest-lowload`: 10 x (1 - cpu rate - mem rate) when both are under half.
fn low_load(h: &HostCandidate, free: &Free<'_>) -> f64 {
    let rate = |free: i64, total: i64| if total <= 0 { 1.0 } else { 1.0 - free as f64 / total as f64 };
    let (c, m) = (rate(free.cpu, h.cpu_total()), rate(free.mem, h.mem_total()));
    if c < 0.5 && m < 0.5 { 10.0 * (1.0 - c - m) } else { 0.0 }
}

/// Filters, scores and deals `input.count` instances over `hosts`, net of `pending`; every
/// passing host is listed, best first (forecasts).
pub fn schedule(hosts: &[HostCandidate], pending: &HashMap<String, Usage>, input: &ScheduleInput) -> Outcome {
    run(hosts, pending, input, true)
}

/// As [`schedule`], without listing the passing hosts: only the best `count` are ranked, so
/// a placement costs one pass over the hosts plus a partial sort.
pub fn schedule_lean(hosts: &[HostCandidate], pending: &HashMap<String, Usage>, input: &ScheduleInput) -> Outcome {
    run(hosts, pending, input, false)
}

/// A host that passed every filter, before ranking.
struct Pass<'a> {
    h: &'a HostCandidate,
    free: Free<'a>,
    capacity: u32,
    prefer: u32,
    avoid: u32,
    score: f64,
}

impl<'a> Pass<'a> {
    /// A copy to deal from (dealing takes from `free`).
    fn copy(&self) -> Pass<'a> {
        Pass { free: self.free.clone(), ..*self }
    }
}

/// Prefer bucket first, avoid bucket last, then the normal score; names break ties.
fn rank(a: &Pass<'_>, b: &Pass<'_>) -> std::cmp::Ordering {
    (b.prefer > 0)
        .cmp(&(a.prefer > 0))
        .then((a.avoid > 0).cmp(&(b.avoid > 0)))
        .then(b.score.total_cmp(&a.score))
        .then(a.h.name.cmp(&b.h.name))
}

fn run(hosts: &[HostCandidate], pending: &HashMap<String, Usage>, input: &ScheduleInput, full: bool) -> Outcome {
    let mut failures: Vec<FilterFailure> = vec![];
    let mut passed: Vec<Pass<'_>> = Vec::with_capacity(hosts.len());
    'hosts: for h in hosts {
        let free = free_of(h, pending.get(&h.id));
        for f in FILTERS {
            if let Err(why) = check(f, h, &free, input) {
                match failures.iter_mut().find(|x| x.filter == f.name()) {
                    Some(x) => x.hosts.push((h.name.clone(), why)),
                    None => failures.push(FilterFailure {
                        filter: f.name().to_string(),
                        wanted: wanted(f, input),
                        hosts: vec![(h.name.clone(), why)],
                    }),
                }
                continue 'hosts;
            }
        }
        let capacity = capacity(input, &free, CAPACITY_CAP);
        let has =
            |s: Strategy| input.schedtags.iter().filter(|r| r.strategy == s && h.schedtags.contains(&r.id)).count();
        let score = capacity.min(100) as f64 + low_load(h, &free) - h.creating as f64;
        let (prefer, avoid) = (has(Strategy::Prefer) as u32, has(Strategy::Avoid) as u32);
        passed.push(Pass { h, free, capacity, prefer, avoid, score });
    }
    failures.sort_by_key(|f| FILTERS.iter().position(|x| x.name() == f.filter));
    for f in &mut failures {
        f.hosts.sort();
    }
    let want = input.count.max(1);
    let allow_count = passed.iter().map(|p| p.capacity).fold(0u32, u32::saturating_add).min(CAPACITY_CAP);
    let passed_count = passed.len();
    // Each passing host takes at least one instance, so the best `want` hosts are enough to
    // deal from, unless some of them cannot take theirs after all: then rank everything.
    let mut candidates = vec![];
    if !full && (want as usize) < passed.len() {
        let k = want as usize;
        passed.select_nth_unstable_by(k - 1, rank);
        passed[..k].sort_by(rank);
        candidates = deal(&mut passed[..k].iter().map(Pass::copy).collect::<Vec<_>>(), input, want);
    }
    if full || (candidates.len() as u32) < want {
        passed.sort_by(rank);
        candidates = deal(&mut passed.iter().map(Pass::copy).collect::<Vec<_>>(), input, want);
    }
    let passed = if full {
        passed
            .iter()
            .map(|p| Scored {
                host_id: p.h.id.clone(),
                host: p.h.name.clone(),
                capacity: p.capacity,
                prefer: p.prefer,
                avoid: p.avoid,
                score: p.score,
            })
            .collect()
    } else {
        vec![]
    };
    Outcome { passed, passed_count, failures, candidates, allow_count }
}

/// Deals `want` instances round-robin over `passed` (best first) while a host's capacity
/// exceeds what it was dealt.
fn deal(passed: &mut [Pass<'_>], input: &ScheduleInput, want: u32) -> Vec<Candidate> {
    let mut dealt = vec![0u32; passed.len()];
    let mut candidates = vec![];
    while (candidates.len() as u32) < want {
        let mut progress = false;
        for (i, p) in passed.iter_mut().enumerate() {
            if candidates.len() as u32 >= want {
                break;
            }
            if dealt[i] >= p.capacity {
                continue;
            }
            let Some(storage_ids) = place_disks(input, &mut p.free) else { continue };
            p.free.cpu -= input.cpu;
            p.free.mem -= input.mem_mb;
            dealt[i] += 1;
            progress = true;
            candidates.push(Candidate {
                host_id: p.h.id.clone(),
                host: p.h.name.clone(),
                storage_ids,
                network_ids: input.networks.iter().map(|n| n.network_id.clone()).collect(),
            });
        }
        if !progress {
            break;
        }
    }
    candidates
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
