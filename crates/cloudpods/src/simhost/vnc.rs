//! The simulated host's VNC server: a minimal RFB 3.3/3.7/3.8 server (security None, Raw
//! encoding, 32 bpp true colour) that draws a fixed picture, so a browser's noVNC shows a
//! screen. A client whose first bytes are not an `RFB 003.00x\n` version it knows gets what it
//! sends echoed back instead (the byte-level tests of the webconsole's stream).
//!
//! ```text
//! server: RFB 003.008\n            client: RFB 003.008\n
//! server: [1 type: None]           client: [1]
//! server: SecurityResult 0 (3.8)   client: ClientInit
//! server: ServerInit 640x400       client: SetPixelFormat | SetEncodings | Key | Pointer | Cut
//!                                          | FramebufferUpdateRequest -> one Raw rectangle
//! ```

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The RFB version banner the server sends first.
pub const RFB_BANNER: &[u8] = b"RFB 003.008\n";
/// The screen's size.
pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 400;
const VERSIONS: [&[u8; 12]; 3] = [b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"];
/// The picture: a background and filled rectangles (x, y, w, h, 0xRRGGBB); later ones on top.
const PICTURE: [(u16, u16, u16, u16, u32); 8] = [
    (0, 0, WIDTH, HEIGHT, 0x1e3a5f),
    (0, HEIGHT - 28, WIDTH, 28, 0x0f1f33),
    (8, HEIGHT - 22, 60, 16, 0x3b82f6),
    (120, 60, 400, 260, 0xe5e7eb),
    (120, 60, 400, 24, 0x2563eb),
    (150, 110, 100, 100, 0xef4444),
    (270, 110, 100, 100, 0x22c55e),
    (390, 110, 100, 100, 0xeab308),
];

/// Accepts connections until the listener fails (or the task is aborted).
pub async fn serve(listener: TcpListener, name: String) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((sock, _)) = listener.accept().await {
        let name = name.clone();
        conns.spawn(async move {
            let _ = connection(sock, &name).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// One client, RFB or echo, until it hangs up.
pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, name: &str) -> std::io::Result<()> {
    s.write_all(RFB_BANNER).await?;
    let mut version = Vec::with_capacity(12);
    while version.len() < 12 {
        version.push(s.read_u8().await?);
        if !VERSIONS.iter().any(|v| v.starts_with(&version)) {
            return echo(s, version).await;
        }
    }
    if version == b"RFB 003.003\n" {
        s.write_u32(1).await?; // the server decides: None
    } else {
        s.write_all(&[1, 1]).await?; // one type: None
        if s.read_u8().await? != 1 {
            return Ok(());
        }
        if version == b"RFB 003.008\n" {
            s.write_u32(0).await?;
        }
    }
    s.read_u8().await?; // ClientInit (shared flag)
    // ServerInit: size, pixel format (32 bpp, depth 24, little-endian, true colour, 8-bit
    // channels at shifts 16/8/0), name.
    let mut init = vec![];
    init.extend_from_slice(&WIDTH.to_be_bytes());
    init.extend_from_slice(&HEIGHT.to_be_bytes());
    init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name.as_bytes());
    s.write_all(&init).await?;
    let (mut shifts, mut big_endian) = ([16u8, 8, 0], false);
    loop {
        match s.read_u8().await? {
            0 => {
                // SetPixelFormat: honoured for 32 bpp true colour with 8-bit channels.
                let mut pf = [0u8; 19];
                s.read_exact(&mut pf).await?;
                if pf[3] == 32 && pf[6] == 1 {
                    big_endian = pf[5] != 0;
                    shifts = [pf[13], pf[14], pf[15]];
                }
            }
            2 => {
                s.read_u8().await?;
                let n = s.read_u16().await?;
                skip(&mut s, 4 * u64::from(n)).await?;
            }
            3 => {
                let mut req = [0u8; 9];
                s.read_exact(&mut req).await?;
                if req[0] != 0 {
                    // Incremental: nothing changes, so after a while an empty update.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    s.write_all(&[0, 0, 0, 0]).await?;
                } else {
                    s.write_all(&frame(shifts, big_endian)).await?;
                }
            }
            4 => skip(&mut s, 7).await?,
            5 => skip(&mut s, 5).await?,
            6 => {
                skip(&mut s, 3).await?;
                let n = s.read_u32().await?;
                skip(&mut s, u64::from(n)).await?;
            }
            _ => return Ok(()), // nothing else was offered
        }
    }
}

async fn skip<S: AsyncRead + Unpin>(s: &mut S, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut s.take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, first: Vec<u8>) -> std::io::Result<()> {
    s.write_all(&first).await?;
    let (mut r, mut w) = tokio::io::split(s);
    tokio::io::copy(&mut r, &mut w).await.map(drop)
}

/// A FramebufferUpdate of one Raw rectangle: the whole picture.
fn frame(shifts: [u8; 3], big_endian: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * usize::from(WIDTH) * usize::from(HEIGHT));
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&WIDTH.to_be_bytes());
    out.extend_from_slice(&HEIGHT.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let rgb = PICTURE
                .iter()
                .rev()
                .find(|(rx, ry, w, h, _)| x >= *rx && x < rx + w && y >= *ry && y < ry + h)
                .map_or(0, |r| r.4);
            let p = (((rgb >> 16) & 255) << shifts[0]) | (((rgb >> 8) & 255) << shifts[1]) | ((rgb & 255) << shifts[2]);
            out.extend_from_slice(&if big_endian { p.to_be_bytes() } else { p.to_le_bytes() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    async fn server() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, "vm1".into()));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut banner = [0u8; 12];
        s.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, RFB_BANNER);
        s
    }

    async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b)).await.unwrap().unwrap();
        b
    }

    #[tokio::test]
    async fn rfb_38_handshake_and_a_full_frame() {
        let mut s = server().await;
        s.write_all(b"RFB 003.008\n").await.unwrap();
        assert_eq!(read_n(&mut s, 2).await, [1, 1]);
        s.write_all(&[1]).await.unwrap();
        assert_eq!(read_n(&mut s, 4).await, [0, 0, 0, 0]);
        s.write_all(&[1]).await.unwrap();
        let init = read_n(&mut s, 24).await;
        assert_eq!(&init[..4], &[2, 128, 1, 144]); // 640 x 400
        assert_eq!(&init[4..8], &[32, 24, 0, 1]);
        assert_eq!(&init[20..], &[0, 0, 0, 3]);
        assert_eq!(read_n(&mut s, 3).await, b"vm1");
        // noVNC's pixel format (red at shift 0), encodings, input, a cut text: all read.
        let mut msgs = vec![0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0];
        msgs.extend_from_slice(&[2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]);
        msgs.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61, 5, 0, 0, 10, 0, 20]);
        msgs.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        msgs.extend_from_slice(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 144]);
        s.write_all(&msgs).await.unwrap();
        let head = read_n(&mut s, 16).await;
        assert_eq!(head, [0, 0, 0, 1, 0, 0, 0, 0, 2, 128, 1, 144, 0, 0, 0, 0]);
        let px = read_n(&mut s, 640 * 400 * 4).await;
        assert_eq!(&px[..4], &[0x1e, 0x3a, 0x5f, 0]); // the background, red first
        let at = |x: usize, y: usize| &px[(y * 640 + x) * 4..][..3];
        assert_eq!(at(200, 160), &[0xef, 0x44, 0x44]); // the red square
        // An incremental request: nothing changed, an empty update.
        s.write_all(&[3, 1, 0, 0, 0, 0, 2, 128, 1, 144]).await.unwrap();
        assert_eq!(read_n(&mut s, 4).await, [0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn rfb_33_lets_the_server_choose_none() {
        let mut s = server().await;
        s.write_all(b"RFB 003.003\n").await.unwrap();
        assert_eq!(read_n(&mut s, 4).await, [0, 0, 0, 1]);
        s.write_all(&[0]).await.unwrap();
        assert_eq!(&read_n(&mut s, 24).await[..4], &[2, 128, 1, 144]);
    }

    #[tokio::test]
    async fn other_bytes_are_echoed() {
        let mut s = server().await;
        s.write_all(b"hello").await.unwrap();
        assert_eq!(read_n(&mut s, 5).await, b"hello");
        let mut s = server().await;
        s.write_all(b"RFB 000.000\n").await.unwrap();
        assert_eq!(read_n(&mut s, 12).await, b"RFB 000.000\n");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move { w.write_all(&big).await.map(|_| big) });
        let mut got = vec![0u8; 200_000];
        tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, writer.await.unwrap().unwrap());
    }
}
