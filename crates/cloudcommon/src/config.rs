//! Service configuration: a TOML file, then environment variables, then flags.
//!
//! Every key of a service's config struct can be set three ways, later ones winning:
//! `--config FILE` (TOML), `CLOUDPODS_<KEY>` in the environment (e.g. `CLOUDPODS_PORT=30501`),
//! and `--set key=value` on the command line. Values are parsed as TOML scalars when they
//! look like one (`8080`, `true`), else taken as strings.

use std::path::{Path, PathBuf};

use apis::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Options every service shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonOptions {
    /// Address to listen on.
    pub listen_address: String,
    /// Port to listen on; each service has its own default.
    pub port: u16,
    /// Where the service keeps its files (and the SQLite database by default).
    pub data_dir: PathBuf,
    /// `sqlite:///path/db` or `mysql://user:pass@host:port/db`; default: SQLite in data_dir.
    pub database_url: Option<String>,
    /// keystone's v3 URL, e.g. `http://127.0.0.1:30500/v3`.
    pub auth_url: String,
    /// The service account this service logs in with.
    pub admin_user: String,
    pub admin_password: String,
    pub admin_project: String,
    pub admin_domain: String,
    /// The region of this service's catalog endpoints.
    pub region: String,
    /// How often (seconds) to poll keystone for revoked tokens.
    pub revocation_poll_seconds: u64,
}

impl Default for CommonOptions {
    fn default() -> Self {
        CommonOptions {
            listen_address: "0.0.0.0".into(),
            port: 0,
            data_dir: PathBuf::from("/var/lib/cloudpods"),
            database_url: None,
            auth_url: "http://127.0.0.1:30500/v3".into(),
            admin_user: String::new(),
            admin_password: String::new(),
            admin_project: apis::identity::SYSTEM_PROJECT.into(),
            admin_domain: apis::identity::DEFAULT_DOMAIN_NAME.into(),
            region: "region0".into(),
            revocation_poll_seconds: 3,
        }
    }
}

impl CommonOptions {
    /// The service's own URL, for callbacks and the catalog: `public_url` when set (without a
    /// trailing slash), else `http://127.0.0.1:<port>`.
    pub fn own_url(&self, public_url: &str) -> String {
        if public_url.is_empty() {
            format!("http://127.0.0.1:{}", self.port)
        } else {
            public_url.trim_end_matches('/').to_string()
        }
    }

    /// The database URL: the configured one, or a SQLite file `<data_dir>/<service>.db`.
    pub fn database_url(&self, service: &str) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!("sqlite://{}", self.data_dir.join(format!("{service}.db")).display()),
        }
    }

    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, Error> {
        format!("{}:{}", self.listen_address, self.port).parse().map_err(|_| {
            Error::invalid("listen_address", format!("{}:{} is not an address", self.listen_address, self.port))
        })
    }
}

/// Loads a config of type `T` from an optional TOML file, the environment and `--set` pairs.
pub fn load<T: DeserializeOwned>(file: Option<&Path>, sets: &[String]) -> Result<T, Error> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(file, &env, sets)
}

pub fn load_from<T: DeserializeOwned>(
    file: Option<&Path>,
    env: &[(String, String)],
    sets: &[String],
) -> Result<T, Error> {
    let mut table = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::invalid("config", format!("cannot read {}: {e}", p.display())))?;
            text.parse::<toml::Table>()
                .map_err(|e| Error::invalid("config", format!("{} is not valid TOML: {e}", p.display())))?
        }
        None => toml::Table::new(),
    };
    for (k, v) in env {
        if let Some(key) = k.strip_prefix("CLOUDPODS_") {
            table.insert(key.to_ascii_lowercase(), scalar(v));
        }
    }
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| Error::invalid("--set", format!("{s:?} is not key=value")))?;
        table.insert(k.trim().to_string(), scalar(v.trim()));
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| Error::invalid("config", e.to_string()))
}

fn scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.toml");
        std::fs::write(&f, "port = 1\nregion = \"r1\"\nadmin_user = \"a\"\n").unwrap();
        let env = vec![("CLOUDPODS_PORT".to_string(), "2".to_string()), ("HOME".into(), "/".into())];
        let c: CommonOptions = load_from(Some(&f), &env, &["admin_user=b".into()]).unwrap();
        assert_eq!((c.port, c.region.as_str(), c.admin_user.as_str()), (2, "r1", "b"));
        let bad: Result<CommonOptions, _> = load_from(None, &[], &["port=notaport".into()]);
        assert!(bad.is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
