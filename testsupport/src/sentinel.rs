//! A sentinel process of our own, watching one master: for the Sentinel tests and the torture
//! tool's failover scenarios.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{self, Listen, RedisServer};

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

/// A Sentinel group of our own: a master, one replica in sync with it, and a sentinel watching
/// them; all killed when dropped.
pub struct Group {
    /// The master, on a free TCP port.
    pub master: RedisServer,
    /// The replica, synced with the master before [`Group::start`] returns.
    pub replica: RedisServer,
    /// The sentinel, which knows the master as [`MASTER`].
    pub sentinel: Sentinel,
}

impl Group {
    /// Starts the master, the replica (and waits until it is in sync) and the sentinel; panics
    /// with the reason if one cannot start.
    #[must_use]
    pub fn start() -> Self {
        let master = RedisServer::start_with(Listen::Tcp, &[]);
        let port = master.port().to_string();
        let replica = RedisServer::start_with(Listen::Tcp, &["--replicaof", "127.0.0.1", &port]);
        wait_synced(&replica).unwrap_or_else(|err| panic!("{err}"));
        let sentinel = Sentinel::start(master.port());
        Self {
            master,
            replica,
            sentinel,
        }
    }
}

/// Waits (up to 20 s) until `replica` reports its link to its master up.
///
/// # Errors
///
/// After 20 s, with the replica's last `INFO replication`.
pub fn wait_synced(replica: &RedisServer) -> Result<(), String> {
    let client = redis::Client::open(replica.url()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = client
            .get_connection()
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the replica never synced: {info}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
