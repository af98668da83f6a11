//! Guest networking on the host: a Linux bridge per wire and a tap per NIC, optionally all
//! inside a named network namespace (`--netns NAME`), where tests keep every packet.
//!
//! ```text
//!  netns NAME (or the host's own namespace)
//!    lo: 169.254.169.254/32  <- metadata service
//!    br-<wire> (gateway/len of the guests' network when the agent plays the router, in a netns)
//!      ├── tap of NIC 0 of guest A   (QEMU, started inside NAME, opens it by name)
//!      └── tap of NIC 0 of guest B
//! ```
//! Bridges and addresses are set with `ip -n NAME ...` ([`Net::ip`]), once per agent run. What
//! every guest start needs is done in-process, where `ip` would cost a process each: taps are
//! made with ioctls ([`Net::ensure_tap`]) and QEMU enters the namespace with `setns` between
//! fork and exec ([`Net::command`]). Sockets the agent serves inside the namespace (DHCP,
//! metadata) are created by a thread that entered it ([`in_netns`]); a socket stays in the
//! namespace it was created in.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

    /// A command for `program` that runs in the namespace: the child enters it with `setns`
    /// between fork and exec.
    pub fn command(&self, program: &str) -> Result<tokio::process::Command, NetError> {
        let mut cmd = tokio::process::Command::new(program);
        if let Some(ns) = &self.netns {
            let file = open_netns(ns)?;
            // SAFETY: between fork and exec the closure only calls setns(2), which is
            // async-signal-safe, on a descriptor it owns (closed at exec: O_CLOEXEC).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(cmd)
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

    /// Creates the tap `tap` (persistent, for QEMU to open), puts it in `bridge` and brings it
    /// up. A tap already in a bridge is moved with `ip` (the ioctl cannot say which bridge).
    pub async fn ensure_tap(&self, tap: &str, bridge: &str) -> Result<(), NetError> {
        let (t, b) = (tap.to_string(), bridge.to_string());
        match in_netns(self.netns.clone(), move || tap_up(&t, &b)).await? {
            TapUp::Done => Ok(()),
            TapUp::HasMaster => self.ip(&["link", "set", "dev", tap, "master", bridge, "up"]).await.map(drop),
        }
    }

    /// Removes a tap; one already gone is fine.
    pub async fn delete_tap(&self, tap: &str) -> Result<(), NetError> {
        if !self.link_exists(tap).await {
            return Ok(());
        }
        self.ip(&["link", "del", "dev", tap]).await.map(drop)
    }
}

fn open_netns(ns: &str) -> Result<std::fs::File, NetError> {
    std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| NetError::Io(format!("netns {ns}: {e}")))
}

/// `SIOCBRADDIF` of `linux/sockios.h` (the libc crate does not have it).
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

enum TapUp {
    Done,
    /// The tap is already some bridge's port.
    HasMaster,
}

/// An `ifreq` naming `name`.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is not 1 to 15 bytes"),
        ));
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// The errno of a failed call (`rc < 0`), as is: callers match on `raw_os_error`.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn context(what: &str, dev: &str) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what} {dev}: {e}"))
}

/// Tap `tap` made persistent (or reused), in `bridge`, up: in the calling thread's namespace.
fn tap_up(tap: &str, bridge: &str) -> io::Result<TapUp> {
    let tun = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    let mut r = ifreq(tap)?;
    r.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq we own; TUNSETPERSIST takes an integer.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut r) };
    match check(rc) {
        // A QEMU holds it already (an adopted guest): it exists, which is all we need.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(context("creating tap", tap)(e)),
        Ok(()) => check(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1) })
            .map_err(context("making persistent tap", tap))?,
    }
    drop(tun);
    // SAFETY: a plain socket(2); the descriptor is owned right away.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(sock).map_err(context("socket for", tap))?;
    // SAFETY: `sock` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let name = std::ffi::CString::new(tap).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("tap {tap}: {}", io::Error::last_os_error())));
    }
    let mut br = ifreq(bridge)?;
    br.ifr_ifru.ifru_ifindex = index as libc::c_int;
    // SAFETY: the ioctls read and write ifreqs we own.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRADDIF, &mut br) };
    match check(rc) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(TapUp::HasMaster),
        r => r.map_err(context(&format!("adding {tap} to bridge"), bridge))?,
    }
    let mut f = ifreq(tap)?;
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut f) }).map_err(context("flags of", tap))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { f.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut f) }).map_err(context("bringing up", tap))?;
    Ok(TapUp::Done)
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
                let file = open_netns(ns)?;
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
    fn empty_netns_is_the_hosts() {
        assert!(Net::new(Some(String::new())).netns.is_none());
        assert!(Net::new(None).command("true").is_ok());
        assert!(matches!(Net::new(Some("no-such-ns-here".into())).command("true"), Err(NetError::Io(_))));
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(ifreq("tap0").is_ok());
        assert!(ifreq("").is_err());
        assert!(ifreq("sixteen-chars-xx").is_err());
    }
}
