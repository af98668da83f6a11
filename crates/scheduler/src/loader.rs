//! The host cache's source: the region, read over HTTP through the catalog (`compute_v2`).
//!
//! One refresh lists hosts (with details: schedtags), storages, hoststorages, netinterfaces
//! and networks, and builds [`HostCandidate`]s plus the network -> wire map. Committed usage
//! comes from the region's details: a host's `cpu_commit`, `mem_commit` and
//! `creating_guest_count` (its servers), a storage's `used_capacity` (its disks).

use std::collections::HashMap;

use apis::Error;
use cloudcommon::client::{ServiceSession, to_api_error};
use mcclient::{ListParams, ResourceManager, Session};
use serde_json::Value;

use crate::core::{HostCandidate, StorageCandidate};

const HOSTS: ResourceManager = ResourceManager::new("compute_v2", "host", "hosts");
const STORAGES: ResourceManager = ResourceManager::new("compute_v2", "storage", "storages");
const HOSTSTORAGES: ResourceManager = ResourceManager::new("compute_v2", "hoststorage", "hoststorages");
const NETIFS: ResourceManager = ResourceManager::new("compute_v2", "netinterface", "netinterfaces");
const NETWORKS: ResourceManager = ResourceManager::new("compute_v2", "network", "networks");

/// A network as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub wire_id: String,
}

/// What one refresh read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub hosts: Vec<HostCandidate>,
    pub networks: Vec<NetworkInfo>,
}

async fn list_all(s: &Session, m: &ResourceManager) -> Result<Vec<Value>, Error> {
    list_where(s, m, vec![]).await
}

async fn list_where(s: &Session, m: &ResourceManager, filters: Vec<String>) -> Result<Vec<Value>, Error> {
    let mut out = vec![];
    loop {
        let p = ListParams {
            limit: Some(cloudcommon::resource::query::MAX_LIMIT),
            offset: Some(out.len() as u64),
            details: Some(true),
            scope: Some("system".into()),
            filters: filters.clone(),
            ..ListParams::default()
        };
        let r = m.list(s, &p).await.map_err(to_api_error)?;
        let n = r.data.len();
        out.extend(r.data);
        if n == 0 || out.len() as u64 >= r.total {
            return Ok(out);
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}
fn i(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))).unwrap_or(0)
}
fn f(v: &Value, k: &str, d: f64) -> f64 {
    v.get(k).and_then(Value::as_f64).filter(|x| *x > 0.0).unwrap_or(d)
}

const SERVERS: ResourceManager = ResourceManager::new("compute_v2", "server", "servers");

/// Of these sessions, those naming a server the region has placed on a host (the region
/// schedules a server with its id as session).
pub async fn committed(session: &ServiceSession, sessions: &[String]) -> Result<Vec<String>, Error> {
    let ids: Vec<&String> = sessions.iter().filter(|s| uuid::Uuid::parse_str(s).is_ok()).collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let sess = session.session().await?;
    let mut out = vec![];
    for chunk in ids.chunks(100) {
        let list = chunk.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let p = ListParams {
            limit: Some(chunk.len() as u64),
            details: Some(false),
            scope: Some("system".into()),
            filters: vec![format!("id.in({list})"), "host_id.isnotempty()".into()],
            extra: vec![("pending_delete".into(), "all".into())],
            ..ListParams::default()
        };
        let r = SERVERS.list(&sess, &p).await.map_err(to_api_error)?;
        out.extend(r.data.iter().map(|v| s(v, "id")));
    }
    Ok(out)
}

/// Reads the region's hosts, storages, NICs and networks.
pub async fn load(session: &ServiceSession) -> Result<Snapshot, Error> {
    let sess = session.session().await?;
    let hosts = list_all(&sess, &HOSTS).await?;
    let storages = list_all(&sess, &STORAGES).await?;
    let links = list_all(&sess, &HOSTSTORAGES).await?;
    let netifs = list_all(&sess, &NETIFS).await?;
    let networks = list_all(&sess, &NETWORKS).await?;
    Ok(build(&hosts, &storages, &links, &netifs, &networks))
}

/// Reads one host (`None`: the region has no such host any more).
pub async fn load_host(session: &ServiceSession, host_id: &str) -> Result<Option<HostCandidate>, Error> {
    if uuid::Uuid::parse_str(host_id).is_err() {
        return Err(Error::invalid("host", format!("{host_id:?} is not a host id")));
    }
    let sess = session.session().await?;
    let hosts = list_where(&sess, &HOSTS, vec![format!("id.equals({host_id})")]).await?;
    let links = list_where(&sess, &HOSTSTORAGES, vec![format!("host_id.equals({host_id})")]).await?;
    let ids: Vec<String> = links.iter().map(|l| s(l, "storage_id")).filter(|i| !i.is_empty()).collect();
    let storages = if ids.is_empty() {
        vec![]
    } else {
        list_where(&sess, &STORAGES, vec![format!("id.in({})", ids.join(","))]).await?
    };
    let netifs = list_where(&sess, &NETIFS, vec![format!("baremetal_id.equals({host_id})")]).await?;
    Ok(build(&hosts, &storages, &links, &netifs, &[]).hosts.into_iter().next())
}

/// Builds the snapshot from the region's list answers (pure, for tests).
pub fn build(hosts: &[Value], storages: &[Value], links: &[Value], netifs: &[Value], networks: &[Value]) -> Snapshot {
    let used_storage: HashMap<String, i64> = storages.iter().map(|v| (s(v, "id"), i(v, "used_capacity"))).collect();
    // Indexes by host, so that building is linear in the lists' sizes.
    let str_of = |v: &'_ Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut storages_of: HashMap<String, Vec<String>> = HashMap::new();
    for l in links {
        storages_of.entry(str_of(l, "host_id")).or_default().push(str_of(l, "storage_id"));
    }
    let storages_of: HashMap<&str, Vec<&str>> =
        storages_of.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect())).collect();
    let mut wires_of: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    for n in netifs {
        let wire = str_of(n, "wire_id");
        if !wire.is_empty() {
            wires_of.entry(str_of(n, "baremetal_id")).or_default().insert(wire);
        }
    }
    let storages: HashMap<String, StorageCandidate> = storages
        .iter()
        .map(|v| {
            let c = StorageCandidate {
                id: s(v, "id"),
                name: s(v, "name"),
                storage_type: s(v, "storage_type"),
                capacity_mb: i(v, "capacity"),
                reserved_mb: i(v, "reserved"),
                cmtbound: f(v, "cmtbound", 1.0),
            };
            (c.id.clone(), c)
        })
        .collect();
    let hosts = hosts
        .iter()
        .map(|v| {
            let id = s(v, "id");
            let mut h = HostCandidate {
                id: id.clone(),
                name: s(v, "name"),
                zone_id: s(v, "zone_id"),
                host_status: s(v, "host_status"),
                enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                is_maintenance: v.get("is_maintenance").and_then(Value::as_bool).unwrap_or(false),
                hypervisor: s(v, "host_type"),
                cpu_count: i(v, "cpu_count"),
                cpu_reserved: i(v, "cpu_reserved"),
                cpu_cmtbound: f(v, "cpu_cmtbound", 8.0),
                mem_size_mb: i(v, "mem_size"),
                mem_reserved_mb: i(v, "mem_reserved"),
                mem_cmtbound: f(v, "mem_cmtbound", 1.0),
                creating: i(v, "creating_guest_count"),
                ..HostCandidate::default()
            };
            h.used.cpu = i(v, "cpu_commit");
            h.used.mem_mb = i(v, "mem_commit");
            if s(v, "resource_type") == "dedicated" {
                h.owner_project = Some(s(v, "tenant_id")).filter(|p| !p.is_empty());
            }
            if let Some(Value::Array(tags)) = v.get("schedtags") {
                for t in tags {
                    h.schedtags.extend([s(t, "id"), s(t, "name")].into_iter().filter(|x| !x.is_empty()));
                }
            }
            h.storages = storages_of
                .get(id.as_str())
                .map(|ids| ids.iter().filter_map(|sid| storages.get(*sid).cloned()).collect())
                .unwrap_or_default();
            for st in &h.storages {
                h.used.storage_mb.insert(st.id.clone(), used_storage.get(&st.id).copied().unwrap_or(0));
            }
            h.wires = wires_of.get(id.as_str()).cloned().unwrap_or_default();
            h
        })
        .collect();
    let networks =
        networks.iter().map(|v| NetworkInfo { id: s(v, "id"), name: s(v, "name"), wire_id: s(v, "wire_id") }).collect();
    Snapshot { hosts, networks }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn builds_hosts_from_region_lists() {
        let hosts = [
            json!({"id": "h1", "name": "host1", "host_status": "online", "enabled": true, "host_type": "hypervisor",
            "cpu_count": 8, "cpu_cmtbound": 4.0, "mem_size": 8192, "mem_cmtbound": 1.2,
            "schedtags": [{"id": "t1", "name": "ssd"}]}),
            json!({"id": "h2", "name": "host2", "resource_type": "dedicated", "tenant_id": "p1"}),
        ];
        let storages = [json!({"id": "s1", "storage_type": "local", "capacity": 1000, "cmtbound": 1.5})];
        let links = [json!({"host_id": "h1", "storage_id": "s1"}), json!({"host_id": "h2", "storage_id": "gone"})];
        let netifs = [json!({"baremetal_id": "h1", "wire_id": "w1"}), json!({"baremetal_id": "h2", "wire_id": ""})];
        let nets = [json!({"id": "n1", "name": "net1", "wire_id": "w1"})];
        let snap = super::build(&hosts, &storages, &links, &netifs, &nets);
        let (h1, h2) = (&snap.hosts[0], &snap.hosts[1]);
        assert_eq!((h1.cpu_cmtbound, h1.mem_cmtbound, h1.storages[0].cmtbound), (4.0, 1.2, 1.5));
        assert!(h1.schedtags.contains("ssd") && h1.schedtags.contains("t1") && h1.wires.contains("w1"));
        assert_eq!((h1.owner_project.as_deref(), h2.owner_project.as_deref()), (None, Some("p1")));
        assert!(h2.storages.is_empty() && h2.wires.is_empty() && !h2.enabled);
        assert_eq!((h2.cpu_cmtbound, h2.mem_cmtbound), (8.0, 1.0));
        assert_eq!(snap.networks[0].wire_id, "w1");
    }
}
