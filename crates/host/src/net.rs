//! Guest networking on the host: a Linux bridge per wire and a tap per NIC, optionally all
//! inside a named network namespace (`--netns NAME`), where tests keep every packet.
//!
//! ```text
//!  netns NAME (or the host's own namespace)
//!    lo: 169.254.169.254/32  <- metadata service
//!    br-<wire> (gateway/len of the guests' network when the agent plays the router, in a netns)
//!      ├── tap of NIC 0 of guest A   (QEMU opens it by name: `ip netns exec NAME qemu ...`)
//!      └── tap of NIC 0 of guest B
//! ```
//! Every `ip` command goes through [`Net::ip`] (`ip -n NAME ...`). Sockets the agent serves
//! inside the namespace (DHCP, metadata) are created by a thread that entered it with
//! `setns` ([`in_netns`]); a socket stays in the namespace it was created in.

use std::os::fd::AsRawFd;

pub const METADATA_IP: &str = "169.254.169.254";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("ip {args}: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("{0}")]
    Io(String),
}

#[derive(Debug, Clone, Default)]
pub struct Net {
    /// The namespace, or `None` for the host's own.
    pub netns: Option<String>,
}

impl Net {
    pub fn new(netns: Option<String>) -> Net {
        Net { netns: netns.filter(|s| !s.is_empty()) }
    }

    /// The argv prefix that runs a program in the namespace (empty outside one).
    pub fn exec_prefix(&self) -> Vec<String> {
        match &self.netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => vec![],
        }
    }

    /// `ip [-n NS] args...`.
    pub async fn ip(&self, args: &[&str]) -> Result<String, NetError> {
        let mut cmd = tokio::process::Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let out = cmd.args(args).output().await.map_err(|e| NetError::Io(format!("running ip: {e}")))?;
        if !out.status.success() {
            return Err(NetError::Ip {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub async fn link_exists(&self, name: &str) -> bool {
        self.ip(&["link", "show", "dev", name]).await.is_ok()
    }

    /// Brings the namespace's loopback up with the metadata address on it.
    pub async fn prepare(&self) -> Result<(), NetError> {
        self.ip(&["link", "set", "lo", "up"]).await?;
        self.ip(&["addr", "replace", &format!("{METADATA_IP}/32"), "dev", "lo"]).await?;
        Ok(())
    }

    /// Creates `bridge` if missing and brings it up; `addr` (`ip/len`) is put on it.
    pub async fn ensure_bridge(&self, bridge: &str, addr: Option<&str>) -> Result<(), NetError> {
        if !self.link_exists(bridge).await {
            match self.ip(&["link", "add", "name", bridge, "type", "bridge", "forward_delay", "0"]).await {
                Err(NetError::Ip { stderr, .. }) if stderr.contains("File exists") => {}
                r => r.map(drop)?,
            }
        }
        self.ip(&["link", "set", bridge, "up"]).await?;
        if let Some(a) = addr {
            self.ip(&["addr", "replace", a, "dev", bridge]).await?;
        }
        Ok(())
    }

    /// Creates the tap `tap` (persistent, for QEMU to open) in `bridge`.
    pub async fn ensure_tap(&self, tap: &str, bridge: &str) -> Result<(), NetError> {
        match self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]).await {
            Err(NetError::Ip { stderr, .. }) if stderr.contains("exists") || stderr.contains("busy") => {}
            r => r.map(drop)?,
        }
        self.ip(&["link", "set", "dev", tap, "master", bridge, "up"]).await.map(drop)
    }

    /// Removes a tap; one already gone is fine.
    pub async fn delete_tap(&self, tap: &str) -> Result<(), NetError> {
        if !self.link_exists(tap).await {
            return Ok(());
        }
        self.ip(&["link", "del", "dev", tap]).await.map(drop)
    }
}

/// Runs `f` on a thread that has entered network namespace `netns` (or on a plain thread
/// when `None`), and returns its result. Sockets created by `f` belong to that namespace.
pub async fn in_netns<T, F>(netns: Option<String>, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A fresh thread: it never goes back to the runtime's pool in another namespace.
        std::thread::spawn(move || -> Result<T, NetError> {
            if let Some(ns) = &netns {
                let path = format!("/var/run/netns/{ns}");
                let file = std::fs::File::open(&path).map_err(|e| NetError::Io(format!("netns {ns}: {e}")))?;
                // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(NetError::Io(format!("setns {ns}: {}", std::io::Error::last_os_error())));
                }
            }
            f().map_err(|e| NetError::Io(e.to_string()))
        })
        .join()
        .map_err(|_| NetError::Io("netns thread panicked".into()))?
    })
    .await
    .map_err(|e| NetError::Io(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_prefix() {
        assert!(Net::new(None).exec_prefix().is_empty());
        assert!(Net::new(Some(String::new())).netns.is_none());
        assert_eq!(Net::new(Some("t1".into())).exec_prefix(), ["ip", "netns", "exec", "t1"]);
    }
}
