//! A Redis Cluster of our own: masters started as `redis-server --cluster-enabled yes` on free
//! TCP ports (bus ports picked apart, so ports above 55535 work; before Redis 7.0, which has no
//! `--cluster-port`, ports whose port + 10000 is free too), joined by
//! `redis-cli --cluster create`. Used by the library's tests and the CLI's.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::{self, Listen, RedisServer};

/// A Redis Cluster of masters only (no replicas), every slot covered; the nodes are killed when
/// it is dropped.
pub struct Cluster {
    /// The masters, TCP servers on 127.0.0.1 (each also has its unix socket, for admin).
    pub nodes: Vec<RedisServer>,
}

/// The `redis-cli` to create clusters with: `REDISLOCK_CLI_BIN`, or `redis-cli` from PATH.
fn cli_bin() -> String {
    std::env::var("REDISLOCK_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}

impl Cluster {
    /// Starts `masters` nodes and joins them; panics with the reason if it cannot. `base` is
    /// the folder for the nodes' temporary folders (the system's temporary folder if `None`).
    pub fn start(masters: usize, base: Option<&Path>) -> Self {
        // Before 7.0 there is no `--cluster-port`: the bus is the port + 10000.
        let own_bus_port = server::server_major() >= 7;
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                let mut args = vec![
                    "--cluster-enabled".to_owned(),
                    "yes".to_owned(),
                    "--cluster-config-file".to_owned(),
                    "nodes.conf".to_owned(),
                    "--cluster-node-timeout".to_owned(),
                    "5000".to_owned(),
                ];
                let listen = if own_bus_port {
                    args.push("--cluster-port".to_owned());
                    args.push(server::free_port().unwrap().to_string());
                    Listen::Tcp
                } else {
                    Listen::TcpWithBus
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                RedisServer::try_start(listen, &args, base)
                    .unwrap_or_else(|err| panic!("could not start a cluster node: {err}"))
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new(cli_bin())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|err| panic!("could not run {} --cluster create: {err}", cli_bin()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node says `cluster_state:ok` and knows all the others.
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).unwrap();
            loop {
                let info: Option<String> = client
                    .get_connection()
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c))
                    .ok();
                let ok = info.as_deref().is_some_and(|i| {
                    i.contains("cluster_state:ok")
                        && i.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                });
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never got ready: {info:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis://127.0.0.1:port/` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tcp_url).collect()
    }

    /// The URLs with a user and password.
    pub fn urls_as(&self, user: &str, password: &str) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://{user}:{password}@127.0.0.1:{}/", n.port()))
            .collect()
    }

    /// Runs a command on every node (ACL SETUSER, SCRIPT FLUSH, ...).
    pub fn on_every_node(&self, cmd: &redis::Cmd) {
        for node in &self.nodes {
            let mut conn = redis::Client::open(node.url())
                .and_then(|c| c.get_connection())
                .unwrap();
            let _: redis::Value = cmd.query(&mut conn).unwrap();
        }
    }

    /// A cluster connection (default user) to every node.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    }
}
