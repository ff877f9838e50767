//! A TCP proxy that can delay, blackhole or reset what passes through it, switched at run time
//! by the nemesis. A blackhole holds the bytes and delivers them late when it heals, as a
//! network that was only slow would; a reset closes both sides with SO_LINGER 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;

/// What the proxy does to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Pass,
    Delay(Duration),
    Blackhole,
    Reset,
}

pub(crate) struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the proxy forwards to.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    Unix(PathBuf),
    /// A TCP port on 127.0.0.1 (a replica behind the proxy must be seen by its master with an
    /// address sentinels can reach).
    Tcp(u16),
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub(crate) async fn start(upstream: Upstream) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Fault::Pass);
        let modes = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, modes) = (upstream.clone(), modes.subscribe());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, modes).await;
                });
            }
        });
        Ok(Self { addr, mode, task })
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    pub(crate) fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }
}

async fn serve(
    client: TcpStream,
    upstream: Upstream,
    modes: watch::Receiver<Fault>,
) -> std::io::Result<()> {
    if *modes.borrow() == Fault::Reset {
        linger_zero(&client)?;
        return Ok(());
    }
    client.set_nodelay(true)?;
    // Every close is then a reset (RST), as a dropped connection in a real network is.
    linger_zero(&client)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write): (
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ) = match upstream {
        Upstream::Unix(path) => {
            let (read, write) = UnixStream::connect(path).await?.into_split();
            (Box::new(read), Box::new(write))
        }
        Upstream::Tcp(port) => {
            let (read, write) = TcpStream::connect(("127.0.0.1", port)).await?.into_split();
            (Box::new(read), Box::new(write))
        }
    };
    let up = pump(client_read, server_write, modes.clone());
    let down = pump(server_read, client_write, modes.clone());
    let mut watch_reset = modes;
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = watch_reset.wait_for(|m| *m == Fault::Reset) => {}
    }
    // Both halves are dropped here; a reset drops them without a clean close.
    Ok(())
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut modes: watch::Receiver<Fault>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        loop {
            let mode = *modes.borrow_and_update();
            match mode {
                Fault::Pass => break,
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::Blackhole => {
                    // Hold the bytes until the fault changes, then go round again.
                    if modes.changed().await.is_err() {
                        return Ok(());
                    }
                }
                Fault::Reset => return Ok(()),
            }
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// SO_LINGER 0: closing sends a reset. (tokio deprecates `set_linger` because a non-zero linger
/// blocks on close; a zero one never does.)
#[allow(deprecated)]
fn linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}
