//! The metadata service at 169.254.169.254:80, inside the agent's namespace.
//!
//! The guest is recognised by its source address (the IP its NIC was assigned).
//! OpenStack: `/openstack/latest/meta_data.json`, `/openstack/latest/user_data`,
//! `/openstack/latest/network_data.json`; EC2: `/latest/meta-data/` (an index),
//! `/latest/meta-data/{hostname,local-hostname,instance-id,local-ipv4,public-keys/0/openssh-key}`,
//! `/latest/user-data`. The password is never served here (config drive only).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use apis::compute::GuestJsonDesc;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::deploy;

/// Finds the description of the guest that owns an address.
pub trait GuestLookup: Send + Sync {
    fn by_ip(&self, ip: IpAddr) -> Option<GuestJsonDesc>;
}

type St = Arc<dyn GuestLookup>;

pub fn router(lookup: St) -> Router {
    Router::new()
        .route("/openstack/latest/meta_data.json", get(os_meta))
        .route("/openstack/latest/user_data", get(os_user))
        .route("/openstack/latest/network_data.json", get(os_net))
        .route("/latest/meta-data/", get(ec2_index))
        .route("/latest/meta-data/{*key}", get(ec2_key))
        .route("/latest/user-data", get(os_user))
        .with_state(lookup)
}

fn guest(st: &St, from: SocketAddr) -> Result<GuestJsonDesc, Box<Response>> {
    st.by_ip(from.ip()).ok_or_else(|| Box::new((StatusCode::NOT_FOUND, "no guest has this address\n").into_response()))
}

async fn os_meta(State(st): State<St>, ConnectInfo(from): ConnectInfo<SocketAddr>) -> Response {
    match guest(&st, from) {
        Ok(d) => axum::Json(deploy::meta_data(&d, false)).into_response(),
        Err(r) => *r,
    }
}

async fn os_net(State(st): State<St>, ConnectInfo(from): ConnectInfo<SocketAddr>) -> Response {
    match guest(&st, from) {
        Ok(d) => axum::Json(deploy::network_data(&d)).into_response(),
        Err(r) => *r,
    }
}

async fn os_user(State(st): State<St>, ConnectInfo(from): ConnectInfo<SocketAddr>) -> Response {
    match guest(&st, from) {
        Ok(d) => match deploy::user_data(&d) {
            Some(u) => u.into_response(),
            None => (StatusCode::NOT_FOUND, "no user data\n").into_response(),
        },
        Err(r) => *r,
    }
}

const EC2_KEYS: &[&str] = &["hostname", "instance-id", "local-hostname", "local-ipv4", "public-keys/"];

async fn ec2_index() -> String {
    EC2_KEYS.join("\n")
}

/// One EC2 key's value.
pub fn ec2_value(d: &GuestJsonDesc, key: &str) -> Option<String> {
    Some(match key.trim_end_matches('/') {
        "hostname" | "local-hostname" => deploy::guest_hostname(d),
        "instance-id" => d.id.clone(),
        "local-ipv4" => d.nics.first()?.ip.clone(),
        "public-keys" => d.pubkey.as_ref().map(|_| "0=default".to_string())?,
        "public-keys/0" => "openssh-key".into(),
        "public-keys/0/openssh-key" => d.pubkey.clone().filter(|k| !k.is_empty())?.trim().to_string(),
        _ => return None,
    })
}

async fn ec2_key(
    State(st): State<St>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
) -> Response {
    match guest(&st, from) {
        Ok(d) => match ec2_value(&d, &key) {
            Some(v) => v.into_response(),
            None => (StatusCode::NOT_FOUND, "no such key\n").into_response(),
        },
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apis::compute::GuestNicDesc;

    #[test]
    fn ec2_values() {
        let d = GuestJsonDesc {
            id: "g1".into(),
            name: "vm1".into(),
            pubkey: Some("ssh-ed25519 AAAA\n".into()),
            nics: vec![GuestNicDesc { ip: "10.0.0.5".into(), ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(ec2_value(&d, "hostname").as_deref(), Some("vm1"));
        assert_eq!(ec2_value(&d, "instance-id").as_deref(), Some("g1"));
        assert_eq!(ec2_value(&d, "local-ipv4").as_deref(), Some("10.0.0.5"));
        assert_eq!(ec2_value(&d, "public-keys/0/openssh-key").as_deref(), Some("ssh-ed25519 AAAA"));
        assert_eq!(ec2_value(&d, "nope"), None);
    }
}
