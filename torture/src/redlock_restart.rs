//! Redlock's known limit, shown: a holder with a bare majority (2 of 3), one of whose nodes
//! restarts without persistence. Restarted at once, the node has forgotten the lock and a
//! second client gets a majority while the first still holds its lease: a violation that must
//! be observed (EXPECTED-UNSAFE). Restarted only after the longest ttl, it cannot happen.

use std::time::Duration;

use ac_redislock::{AcquireOptions, RedisLock};

use crate::server::RedisServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    Immediate,
    Delayed,
}

impl Restart {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Immediate => "redlock-restart-immediate",
            Self::Delayed => "redlock-restart-delayed",
        }
    }

    pub(crate) fn full_rounds(self) -> usize {
        match self {
            Self::Immediate => 20,
            Self::Delayed => 100,
        }
    }
}

pub(crate) struct RestartOutcome {
    name: &'static str,
    rounds: usize,
    granted_twice: usize,
    verdict: String,
    pub(crate) green: bool,
    seconds: f64,
}

impl RestartOutcome {
    pub(crate) fn line(&self) -> String {
        format!(
            "{} ops={} faults=restart:{} overlaps={} verdict={} ({:.1} s)",
            self.name, self.rounds, self.rounds, self.granted_twice, self.verdict, self.seconds
        )
    }
}

fn client(nodes: &[RedisServer]) -> Result<RedisLock, String> {
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisLock::builder()
        .redlock_node_timeout(Duration::from_millis(100))
        .command_timeout(Duration::from_secs(1))
        .build_redlock(&urls)
        .map_err(|e| e.to_string())
}

pub(crate) async fn run(kind: Restart, rounds: usize) -> Result<RestartOutcome, String> {
    let started = std::time::Instant::now();
    let ttl = Duration::from_millis(800);
    let mut nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let mut granted_twice = 0;
    for round in 0..rounds {
        let key = format!("{{restart:{round}}}");
        // The first holder gets a bare majority: node 2 is down while it locks.
        nodes[2].kill();
        let first = client(&nodes)?;
        let held = first
            .try_acquire_with(&key, AcquireOptions::new().ttl(ttl))
            .await
            .map_err(|e| format!("round {round}: the first client could not lock: {e}"))?;
        nodes[2].restart();
        // One of its two nodes restarts without persistence.
        match kind {
            Restart::Immediate => nodes[1].restart(),
            Restart::Delayed => {
                nodes[1].kill();
                tokio::time::sleep(ttl + Duration::from_millis(100)).await;
                nodes[1].restart();
            }
        }
        let second = client(&nodes)?;
        if let Ok(guard) = second
            .try_acquire_with(&key, AcquireOptions::new().ttl(ttl))
            .await
        {
            // Granted to the second client while the first still holds its lease?
            if held.is_held() {
                granted_twice += 1;
            }
            let _ = guard.release().await;
        }
        let _ = held.release().await;
    }
    let (verdict, green) = match kind {
        Restart::Immediate if granted_twice > 0 => {
            (format!("EXPECTED-UNSAFE(observed={granted_twice})"), true)
        }
        Restart::Immediate => ("FAIL(expected violation not observed)".into(), false),
        Restart::Delayed if granted_twice == 0 => ("PASS".into(), true),
        Restart::Delayed => ("FAIL".into(), false),
    };
    Ok(RestartOutcome {
        name: kind.name(),
        rounds,
        granted_twice,
        verdict,
        green,
        seconds: started.elapsed().as_secs_f64(),
    })
}
