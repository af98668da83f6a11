//! Pending usage: what a schedule result reserved on its hosts before the region commits it.
//!
//! ```text
//!  POST /scheduler (session S) ──> lock ─ expire ─ read pending ─ core::schedule ─ reserve(S) ─ unlock
//!  region writes the servers   ──> POST /scheduler/clean-cache/<host>?session=S ──> release(S, host)
//!  nobody comes back           ──> expired after `ttl` (Cloudpods: 30 minutes)
//! ```
//! Invariants:
//! * reading the pending usage, scheduling and reserving happen under one lock
//!   ([`Scheduler::schedule`]), so two concurrent requests never both take the last free
//!   resources of a host: the second sees the first's reservation;
//! * a reservation counts against its host (cpu, memory, storages) until it is released by
//!   its session, by a host-wide clean-cache, or expires;
//! * forecasts read the same table but never reserve;
//! * clean-cache reloads the hosts before it releases, so a committed server is counted by
//!   the host data before its reservation stops counting;
//! * a reload also drops the reservations of sessions the region has committed (the region
//!   uses the server's id as session; [`Scheduler::set_hosts_committed`]), so a server is
//!   never counted twice for long: the sessions are checked before the hosts are read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::{self, HostCandidate, Outcome, ScheduleInput, Usage};

#[derive(Debug, Clone)]
struct Reservation {
    host_id: String,
    usage: Usage,
    at: Instant,
}

/// Reservations keyed by session id, with their sum per host kept up to date (a schedule
/// reads it on every call).
#[derive(Debug, Default)]
pub struct Reservations {
    by_session: HashMap<String, Vec<Reservation>>,
    totals: HashMap<String, Usage>,
}

impl Reservations {
    pub fn reserve(&mut self, session: &str, host_id: &str, usage: Usage, now: Instant) {
        self.totals.entry(host_id.to_string()).or_default().add(&usage);
        self.by_session.entry(session.to_string()).or_default().push(Reservation {
            host_id: host_id.to_string(),
            usage,
            at: now,
        });
    }

    /// Recomputes the per-host sums after reservations went.
    fn resum(&mut self) {
        let mut m: HashMap<String, Usage> = HashMap::new();
        for r in self.by_session.values().flatten() {
            m.entry(r.host_id.clone()).or_default().add(&r.usage);
        }
        self.totals = m;
    }

    /// Drops a session's reservations (on one host, or all); how many went.
    pub fn release(&mut self, session: &str, host_id: Option<&str>) -> usize {
        let Some(v) = self.by_session.get_mut(session) else { return 0 };
        let before = v.len();
        v.retain(|r| host_id.is_some_and(|h| h != r.host_id));
        let n = before - v.len();
        if v.is_empty() {
            self.by_session.remove(session);
        }
        if n > 0 {
            self.resum();
        }
        n
    }

    /// Drops every reservation on a host, or every reservation at all.
    pub fn release_host(&mut self, host_id: Option<&str>) -> usize {
        let mut n = 0;
        for v in self.by_session.values_mut() {
            let before = v.len();
            v.retain(|r| host_id.is_some_and(|h| h != r.host_id));
            n += before - v.len();
        }
        self.by_session.retain(|_, v| !v.is_empty());
        if n > 0 {
            self.resum();
        }
        n
    }

    /// Drops reservations older than `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        let mut gone = false;
        for v in self.by_session.values_mut() {
            let before = v.len();
            v.retain(|r| now.duration_since(r.at) < ttl);
            gone |= v.len() != before;
        }
        if gone {
            self.by_session.retain(|_, v| !v.is_empty());
            self.resum();
        }
    }

    /// The pending usage per host.
    pub fn by_host(&self) -> &HashMap<String, Usage> {
        &self.totals
    }

    pub fn len(&self) -> usize {
        self.by_session.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The in-memory scheduler: the host cache and the reservation table.
pub struct Scheduler {
    hosts: Mutex<Arc<Vec<HostCandidate>>>,
    pending: Mutex<Reservations>,
    pub ttl: Duration,
}

impl Scheduler {
    pub fn new(ttl: Duration) -> Self {
        Scheduler { hosts: Mutex::new(Arc::new(vec![])), pending: Mutex::new(Reservations::default()), ttl }
    }

    pub fn set_hosts(&self, hosts: Vec<HostCandidate>) {
        *self.hosts.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(hosts);
    }

    /// The sessions holding reservations (on `host_id`, or anywhere).
    pub fn pending_sessions(&self, host_id: Option<&str>) -> Vec<String> {
        let p = self.pending();
        p.by_session
            .iter()
            .filter(|(_, v)| host_id.is_none_or(|h| v.iter().any(|r| r.host_id == h)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// New data of one host (`None`: it is gone), read after `committed` was: as
    /// [`Scheduler::set_hosts_committed`] for one host.
    pub fn set_host_committed(&self, host_id: &str, host: Option<HostCandidate>, committed: &[String]) -> usize {
        let mut p = self.pending();
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let mut list: Vec<HostCandidate> = hosts.iter().filter(|h| h.id != host_id).cloned().collect();
            if let Some(h) = host {
                list.push(h);
                list.sort_by(|a, b| a.name.cmp(&b.name));
            }
            *hosts = Arc::new(list);
        }
        committed.iter().map(|s| p.release(s, None)).sum()
    }

    /// New host data, read after `committed` (sessions whose servers the region had placed
    /// on a host) was: their usage is in `hosts` now, so their reservations go.
    pub fn set_hosts_committed(&self, hosts: Vec<HostCandidate>, committed: &[String]) -> usize {
        let mut p = self.pending();
        self.set_hosts(hosts);
        committed.iter().map(|s| p.release(s, None)).sum()
    }

    pub fn hosts(&self) -> Arc<Vec<HostCandidate>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Reservations> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules and, when every instance is placed, reserves them under `session`.
    /// A partial result reserves nothing.
    pub fn schedule(&self, session: &str, input: &ScheduleInput) -> Outcome {
        let hosts = self.hosts();
        let mut p = self.pending();
        let now = Instant::now();
        p.expire(now, self.ttl);
        let out = core::schedule_lean(&hosts, p.by_host(), input);
        if out.complete(input.count) {
            for c in &out.candidates {
                p.reserve(session, &c.host_id, input.usage(&c.storage_ids), now);
            }
        }
        out
    }

    /// Like [`Scheduler::schedule`], reserving nothing.
    pub fn forecast(&self, input: &ScheduleInput) -> Outcome {
        let hosts = self.hosts();
        let mut p = self.pending();
        p.expire(Instant::now(), self.ttl);
        core::schedule(&hosts, p.by_host(), input)
    }

    /// `clean-cache`: a session's reservations (on a host, or all of them), or without a
    /// session every reservation on the host (or everywhere).
    pub fn clean(&self, session: Option<&str>, host_id: Option<&str>) -> usize {
        let mut p = self.pending();
        match session {
            Some(s) => p.release(s, host_id),
            None => p.release_host(host_id),
        }
    }

    pub fn pending_by_host(&self) -> HashMap<String, Usage> {
        self.pending().by_host().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{DiskRequest, StorageCandidate};

    fn host(name: &str) -> HostCandidate {
        HostCandidate {
            id: name.into(),
            name: name.into(),
            host_status: "online".into(),
            enabled: true,
            hypervisor: "hypervisor".into(),
            cpu_count: 4,
            cpu_cmtbound: 1.0,
            mem_size_mb: 8192,
            mem_cmtbound: 1.0,
            storages: vec![StorageCandidate {
                id: format!("{name}-st"),
                storage_type: "local".into(),
                capacity_mb: 10_000,
                cmtbound: 1.0,
                ..StorageCandidate::default()
            }],
            ..HostCandidate::default()
        }
    }

    fn one_cpu() -> ScheduleInput {
        ScheduleInput {
            cpu: 1,
            mem_mb: 512,
            disks: vec![DiskRequest { size_mb: 1000, backend: "local".into() }],
            count: 1,
            ..ScheduleInput::default()
        }
    }

    #[test]
    fn reservations_count_until_released_or_expired() {
        let s = Scheduler::new(Duration::from_secs(60));
        s.set_hosts(vec![host("a")]);
        let big = ScheduleInput { cpu: 3, ..one_cpu() };
        assert_eq!(s.schedule("s1", &big).candidates.len(), 1);
        assert!(s.schedule("s2", &big).candidates.is_empty(), "the reservation of s1 holds 3 of 4 vCPU");
        assert_eq!(s.forecast(&big).allow_count, 0);
        assert_eq!(s.pending_by_host()["a"].storage_mb["a-st"], 1000);
        assert_eq!(s.clean(Some("s1"), Some("other-host")), 0);
        assert_eq!(s.clean(Some("s1"), Some("a")), 1);
        assert_eq!(s.forecast(&big).allow_count, 1);
        // A forecast never reserves; a partial schedule reserves nothing.
        assert!(s.pending_by_host().is_empty());
        assert!(s.schedule("s3", &ScheduleInput { count: 5, ..big.clone() }).candidates.len() < 5);
        assert!(s.pending_by_host().is_empty());
        // Expiry.
        let mut r = Reservations::default();
        let t0 = Instant::now();
        r.reserve("x", "a", Usage { cpu: 1, ..Usage::default() }, t0);
        r.expire(t0 + Duration::from_secs(10), Duration::from_secs(20));
        assert_eq!(r.len(), 1);
        r.expire(t0 + Duration::from_secs(30), Duration::from_secs(20));
        assert!(r.is_empty());
        // Host-wide clean.
        r.reserve("x", "a", Usage::default(), t0);
        r.reserve("y", "a", Usage::default(), t0);
        r.reserve("y", "b", Usage::default(), t0);
        assert_eq!(r.release_host(Some("a")), 2);
        assert_eq!(r.release_host(None), 1);
    }

    #[test]
    fn parallel_schedules_never_over_commit() {
        let s = Arc::new(Scheduler::new(Duration::from_secs(600)));
        s.set_hosts(vec![host("a"), host("b"), host("c")]);
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let input = ScheduleInput { count: 1 + (i % 2), ..one_cpu() };
                    let out = s.schedule(&format!("session-{i}"), &input);
                    if out.complete(input.count) { out.candidates.len() as i64 } else { 0 }
                })
            })
            .collect();
        let placed: i64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        let by_host = s.pending_by_host();
        let total: i64 = by_host.values().map(|u| u.cpu).sum();
        assert_eq!(total, placed, "every placed instance is reserved: {by_host:?}");
        assert!((11..=12).contains(&total), "3 hosts x 4 vCPU are (nearly) all taken, none twice: {by_host:?}");
        for (h, u) in &by_host {
            assert!(u.cpu <= 4 && u.mem_mb <= 8192, "{h} over its bound: {u:?}");
            assert!(u.storage_mb.values().all(|m| *m <= 10_000), "{h} storage over its bound: {u:?}");
        }
    }
}
