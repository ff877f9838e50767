//! Failover without and with replica acknowledgement (WAIT), under Sentinel.
//!
//! The replica reaches its master through the fault proxy. Without WAIT, the replication
//! stream is held back while a lock is taken, then the master dies: the promoted replica never
//! saw the lock and grants it again while the first holder still holds it, a violation that must
//! be observed (EXPECTED-UNSAFE). With WAIT, the lock is taken only once a replica acknowledged
//! it, and the promoted replica refuses the second client.

use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, RedisLock};

use crate::proxy::{Fault, Proxy, Upstream};
use crate::sentinel::{MASTER, Sentinel, wait_synced};
use crate::server::{Listen, RedisServer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Without,
    With,
}

impl Wait {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Without => "failover-without-wait",
            Self::With => "failover-with-wait",
        }
    }
}

pub(crate) struct FailoverOutcome {
    name: &'static str,
    rounds: usize,
    double_grants: usize,
    verdict: String,
    pub(crate) green: bool,
    seconds: f64,
}

impl FailoverOutcome {
    pub(crate) fn line(&self) -> String {
        format!(
            "{} ops={} faults=failover:{} overlaps={} verdict={} ({:.1} s)",
            self.name, self.rounds, self.rounds, self.double_grants, self.verdict, self.seconds
        )
    }
}

fn through(sentinel: &Sentinel) -> Result<RedisLock, String> {
    RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel(&[&sentinel.url()], MASTER)
        .map_err(|e| e.to_string())
}

/// One round: is the lock granted twice across the failover?
async fn round(wait: Wait, round: usize) -> Result<bool, String> {
    let mut master = RedisServer::try_start(Listen::Tcp, &[], None).map_err(|e| e.to_string())?;
    let proxy = Proxy::start(Upstream::Tcp(master.port()))
        .await
        .map_err(|e| e.to_string())?;
    let port = proxy.port().to_string();
    let replica = RedisServer::try_start(Listen::Tcp, &["--replicaof", "127.0.0.1", &port], None)
        .map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| wait_synced(&replica))?;
    let sentinel = tokio::task::block_in_place(|| Sentinel::start(master.port()));
    let first = through(&sentinel)?;
    let second = through(&sentinel)?;
    let key = format!("{{failover:{round}}}");
    let ttl = Duration::from_secs(20);
    let held = match wait {
        Wait::Without => {
            // The replica hears nothing from here on.
            proxy.set(Fault::Blackhole);
            first
                .try_acquire_with(&key, AcquireOptions::new().ttl(ttl))
                .await
                .map_err(|e| e.to_string())?
        }
        Wait::With => {
            let options = AcquireOptions::new()
                .ttl(ttl)
                .replicas(1, Duration::from_millis(500));
            let guard = first
                .try_acquire_with(&key, options)
                .await
                .map_err(|e| e.to_string())?;
            if guard.replicas_acked() < Some(1) {
                return Err("no replica acknowledged the lock".into());
            }
            guard
        }
    };
    // The master dies; what the proxy held back is thrown away.
    master.kill();
    proxy.set(Fault::Reset);
    let old = master.port().to_string();
    tokio::task::block_in_place(|| {
        sentinel.wait_until(|reply| reply.contains("127.0.0.1") && !reply.contains(&old));
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match second.try_acquire(&key).await {
            Ok(guard) => {
                let twice = held.is_held();
                let _ = guard.release().await;
                return Ok(twice);
            }
            Err(LockError::Locked { .. }) => return Ok(false),
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(format!("the new master never answered: {err}")),
        }
    }
}

pub(crate) async fn run(wait: Wait, rounds: usize) -> Result<FailoverOutcome, String> {
    let started = Instant::now();
    let mut double_grants = 0;
    for r in 0..rounds {
        if round(wait, r).await? {
            double_grants += 1;
        }
    }
    let (verdict, green) = match wait {
        Wait::Without if double_grants > 0 => {
            (format!("EXPECTED-UNSAFE(observed={double_grants})"), true)
        }
        Wait::Without => ("FAIL(expected violation not observed)".into(), false),
        Wait::With if double_grants == 0 => ("PASS".into(), true),
        Wait::With => ("FAIL".into(), false),
    };
    Ok(FailoverOutcome {
        name: wait.name(),
        rounds,
        double_grants,
        verdict,
        green,
        seconds: started.elapsed().as_secs_f64(),
    })
}
