//! A guest's screen for the webconsole: QEMU's VNC server.
//!
//! Without a namespace QEMU listens on `vnc_listen:5900+N` itself. With `--netns`, QEMU runs
//! inside the namespace and listens on its 127.0.0.1; the agent then forwards a port in the
//! host's namespace (5900+N on `vnc_listen`, or any free port if that one is taken) to it:
//! ```text
//!  webconsole ──TCP──> agent (host netns) vnc_listen:port ──> [setns] 127.0.0.1:5900+N in NAME ──> QEMU
//! ```
//! `GET /servers/<id>/vnc` tells where (`{"host", "port", "protocol": "vnc"}`).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::net;

/// A running forwarder; dropped, it stops accepting.
pub struct VncProxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for VncProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VncProxy {
    /// Listens on `listen:want` (or `listen:0` when taken) and forwards every connection to
    /// 127.0.0.1:`inner` inside `netns`.
    pub async fn start(listen: &str, want: u16, netns: String, inner: u16) -> std::io::Result<VncProxy> {
        let l = match TcpListener::bind((listen, want)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind((listen, 0)).await?,
        };
        let port = l.local_addr()?.port();
        let task = tokio::spawn(async move {
            loop {
                let (mut outer, from) = match l.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        // e.g. out of file descriptors: don't spin.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let ns = netns.clone();
                tokio::spawn(async move {
                    let inner = net::in_netns(Some(ns), move || {
                        let s = std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], inner)))?;
                        s.set_nonblocking(true)?;
                        Ok(s)
                    })
                    .await;
                    let Ok(Ok(mut inner)) = inner.map(TcpStream::from_std) else {
                        tracing::debug!(%from, "VNC: QEMU not reachable");
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut outer, &mut inner).await;
                });
            }
        });
        Ok(VncProxy { port, task })
    }
}
