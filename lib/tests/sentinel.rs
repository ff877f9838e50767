//! Redis Sentinel: a master, a replica and a sentinel started here; locks through the sentinel,
//! replica acknowledgement (WAIT), and a failover under a held lock.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, LockParams, RedisLock, ReleaseParams};
use support::server::{self, Listen, RedisServer};
use support::unique_key;

const MASTER: &str = "mymaster";

/// A sentinel process watching one master; killed when dropped.
struct Sentinel {
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
    fn start(master_port: u16) -> Self {
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

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `SENTINEL get-master-addr-by-name`, raw; empty while the sentinel is not up.
    fn master_addr(&self) -> String {
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
    fn wait_until(&self, ok: impl Fn(&str) -> bool) {
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

/// A master with one replica in sync, and a sentinel watching them.
fn group() -> (RedisServer, RedisServer, Sentinel) {
    let master = RedisServer::start_with(Listen::Tcp, &[]);
    let port = master.port().to_string();
    let replica = RedisServer::start_with(Listen::Tcp, &["--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = redis::Client::open(replica.url()).unwrap();
    loop {
        let info: String = client
            .get_connection()
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never synced: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sentinel = Sentinel::start(master.port());
    (master, replica, sentinel)
}

fn through(sentinel: &Sentinel) -> RedisLock {
    RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel(&[&sentinel.url()], MASTER)
        .unwrap()
}

#[tokio::test]
async fn locks_go_to_the_master_and_wait_reports_the_replicas() {
    let (master, replica, sentinel) = group();
    let locks = through(&sentinel);
    let key = unique_key("sentinel");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    let mut on_master = redis::Client::open(master.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut on_master)
        .await
        .unwrap();
    assert_eq!(stored, Some(token.clone()));
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();

    let options = AcquireOptions::new().replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));
    let mut on_replica = redis::Client::open(replica.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let copied: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(
        copied.as_deref(),
        Some(guard.token()),
        "acknowledged means on the replica"
    );
    // Two replicas cannot acknowledge: there is one. The guard says so, after the timeout.
    guard.release().await.unwrap();
    let options = AcquireOptions::new().replicas(2, Duration::from_millis(200));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));
    guard.release().await.unwrap();

    let err = locks
        .acquire_with(
            &key,
            AcquireOptions::new().replicas(1, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::InvalidInput(_)),
        "WAIT longer than the command timeout: {err:?}"
    );
}

#[tokio::test]
async fn the_same_client_follows_a_failover_and_an_acknowledged_lock_survives_it() {
    let (mut master, _replica, sentinel) = group();
    let locks = through(&sentinel);
    let other = through(&sentinel);
    let key = unique_key("failover");
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));

    let old = master.port().to_string();
    master.kill();
    sentinel.wait_until(|reply| reply.contains("127.0.0.1") && !reply.contains(&old));

    // The same clients reach the new master; until then errors are Unavailable, never Locked.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match other.try_acquire(&key).await {
            Err(LockError::Locked { .. }) => break,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert!(Instant::now() < deadline, "no new master: {err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => panic!("the acknowledged lock was lost in the failover"),
        }
    }
    // The holder's client too (its first call after the failover may still meet the dead
    // master's connection, and fail as Unavailable).
    let value = loop {
        match locks.get_lock(&key).await {
            Ok(value) => break value,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert!(Instant::now() < deadline, "{err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(value.as_deref(), Some(guard.token()));
    assert!(guard.extend(Duration::from_secs(30)).await.is_ok());
    guard.release().await.unwrap();
    other
        .try_acquire(&key)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}
