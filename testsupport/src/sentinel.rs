//! A sentinel process of our own, watching one master: for the Sentinel tests and the torture
//! tool's failover scenarios.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server;

/// The name under which the sentinel monitors its master.
pub const MASTER: &str = "mymaster";

/// A sentinel process watching one master; killed when dropped.
pub struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sentinel {
    /// Starts a sentinel on a free port that monitors the master on 127.0.0.1:`master_port` as
    /// [`MASTER`] (quorum 1, down after 1 s, failover timeout 5 s), and waits until it reports
    /// that master. Panics if it cannot.
    pub fn start(master_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = server::free_port().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n",
                dir.path().display(),
                dir.path().join("sentinel.log").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(server::server_bin());
        cmd.arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = server::spawn_tied_to_this_process(cmd)
            .unwrap_or_else(|err| panic!("could not start a sentinel: {err}"));
        let sentinel = Self {
            child,
            port,
            _dir: dir,
        };
        sentinel.wait_until(|reply| reply.contains(&master_port.to_string()));
        sentinel
    }

    /// `redis://127.0.0.1:port/` of the sentinel.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `SENTINEL get-master-addr-by-name`, raw; empty while the sentinel is not up.
    pub fn master_addr(&self) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let name = MASTER;
        let request = format!(
            "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n${}\r\n{name}\r\n",
            name.len()
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut reply = [0u8; 256];
        let n = stream.read(&mut reply).unwrap_or(0);
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    /// Waits (up to 30 s) until the master address satisfies `ok`.
    pub fn wait_until(&self, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.master_addr();
            if ok(&reply) {
                return;
            }
            assert!(Instant::now() < deadline, "sentinel: {reply:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
