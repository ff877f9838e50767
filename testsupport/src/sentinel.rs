//! A sentinel process of our own, watching one master: for the Sentinel tests and the torture
//! tool's failover scenarios. A group may have passwords, as production runs it: the master's
//! (`requirepass`, `masterauth` on the replica, `sentinel auth-pass`) and the sentinel's own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{self, Listen, RedisServer};

/// The name under which the sentinel monitors its master.
pub const MASTER: &str = "mymaster";

/// The passwords of a Sentinel group; none by default.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// `requirepass` (and `masterauth`) of the master and the replica; the sentinel knows it
    /// as `sentinel auth-pass`.
    pub master_password: Option<String>,
    /// The sentinel's own `requirepass`.
    pub sentinel_password: Option<String>,
}

impl Auth {
    /// Both passwords set.
    #[must_use]
    pub fn passwords(master: &str, sentinel: &str) -> Self {
        Self {
            master_password: Some(master.to_owned()),
            sentinel_password: Some(sentinel.to_owned()),
        }
    }

    /// `redis-server` arguments for a data node of the group: its password, and the one it
    /// gives its master when it replicates.
    fn server_args(&self) -> Vec<String> {
        match &self.master_password {
            Some(password) => vec![
                "--requirepass".into(),
                password.clone(),
                "--masterauth".into(),
                password.clone(),
            ],
            None => Vec::new(),
        }
    }
}

/// `url` (a `unix://` or `redis://` URL without query) with `password` to log in with.
#[must_use]
pub fn with_password(url: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if url.starts_with("unix://") => format!("{url}?pass={password}"),
        Some(password) => url.replacen("://", &format!("://:{password}@"), 1),
        None => url.to_owned(),
    }
}

/// A sentinel process watching one master; killed when dropped.
pub struct Sentinel {
    child: Child,
    port: u16,
    password: Option<String>,
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
        Self::start_with(master_port, &Auth::default())
    }

    /// As [`Sentinel::start`], with `auth`'s passwords: `sentinel auth-pass` for the master's,
    /// `requirepass` for its own.
    pub fn start_with(master_port: u16, auth: &Auth) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = server::free_port().unwrap();
        let conf = dir.path().join("sentinel.conf");
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n",
            dir.path().display(),
            dir.path().join("sentinel.log").display()
        );
        if let Some(password) = &auth.master_password {
            text.push_str(&format!("sentinel auth-pass {MASTER} {password}\n"));
        }
        if let Some(password) = &auth.sentinel_password {
            text.push_str(&format!("requirepass {password}\n"));
        }
        std::fs::write(&conf, text).unwrap();
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
            password: auth.sentinel_password.clone(),
            _dir: dir,
        };
        sentinel.wait_until(|reply| reply.contains(&master_port.to_string()));
        sentinel
    }

    /// `redis://127.0.0.1:port/` of the sentinel, with its password if it has one
    /// (`redis://:password@127.0.0.1:port/`).
    pub fn url(&self) -> String {
        with_password(&self.bare_url(), self.password.as_deref())
    }

    /// `redis://127.0.0.1:port/` of the sentinel, without its password.
    pub fn bare_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `SENTINEL get-master-addr-by-name`, as `host:port`; empty while the sentinel is not up
    /// or knows no master.
    pub fn master_addr(&self) -> String {
        let reply: Option<Option<(String, String)>> = self.ask(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER),
        );
        match reply.flatten() {
            Some((host, port)) => format!("{host}:{port}"),
            None => String::new(),
        }
    }

    /// The flags the sentinel has for its master (`master`, `master,s_down`, ...); empty
    /// while the sentinel is not up.
    pub fn master_flags(&self) -> String {
        let reply: Option<std::collections::HashMap<String, String>> =
            self.ask(redis::cmd("SENTINEL").arg("MASTER").arg(MASTER));
        reply
            .and_then(|mut fields| fields.remove("flags"))
            .unwrap_or_default()
    }

    /// `cmd`'s reply from the sentinel, or `None` if it cannot be had within a second or so.
    fn ask<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        cmd.query(&mut conn).ok()
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
    /// The group's passwords.
    pub auth: Auth,
}

impl Group {
    /// Starts the master, the replica (and waits until it is in sync) and the sentinel; panics
    /// with the reason if one cannot start.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(Auth::default())
    }

    /// As [`Group::start`], with `auth`'s passwords on the master, the replica and the sentinel.
    #[must_use]
    pub fn start_with(auth: Auth) -> Self {
        let args = auth.server_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let master = RedisServer::start_with(Listen::Tcp, &args);
        let port = master.port().to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", &port];
        replica_args.extend(&args);
        let replica = RedisServer::start_with(Listen::Tcp, &replica_args);
        wait_synced_with(&replica, auth.master_password.as_deref())
            .unwrap_or_else(|err| panic!("{err}"));
        let sentinel = Sentinel::start_with(master.port(), &auth);
        Self {
            master,
            replica,
            sentinel,
            auth,
        }
    }

    /// The URL of `server` (the master or the replica), with the group's password.
    #[must_use]
    pub fn url_of(&self, server: &RedisServer) -> String {
        with_password(&server.url(), self.auth.master_password.as_deref())
    }

    /// A failover: kills the master and waits (up to 30 s each) until the sentinel names the
    /// replica as the new one, and until it takes it for a master that is up (clients that ask
    /// the sentinel before then are told there is no master).
    pub fn fail_over(&mut self) {
        let new = format!("127.0.0.1:{}", self.replica.port());
        self.master.kill();
        self.sentinel.wait_until(|reply| reply == new);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let flags = self.sentinel.master_flags();
            if flags == "master" {
                return;
            }
            assert!(Instant::now() < deadline, "sentinel flags: {flags:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits (up to 20 s) until `replica` reports its link to its master up.
///
/// # Errors
///
/// After 20 s, with the replica's last `INFO replication`.
pub fn wait_synced(replica: &RedisServer) -> Result<(), String> {
    wait_synced_with(replica, None)
}

/// As [`wait_synced`], logging in to the replica with `password`.
///
/// # Errors
///
/// After 20 s, with the replica's last `INFO replication`.
pub fn wait_synced_with(replica: &RedisServer, password: Option<&str>) -> Result<(), String> {
    let client =
        redis::Client::open(with_password(&replica.url(), password)).map_err(|e| e.to_string())?;
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
