//! A connection that died while the client was not using it (closed by the server's `timeout`
//! while idle, killed with `CLIENT KILL`, or lost in a restart) costs no error: every operation
//! answers on its first call, retried once on a fresh connection. Each operation runs on a
//! client of its own, so each meets a dead connection itself.

mod support;

use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockParams, LockState, RedisLock, ReleaseParams};
use futures_util::future::join_all;
use support::{Listen, RedisServer, unique_key};

/// How the clients' connections die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The server closes connections idle for a second (`timeout 1`); the clients wait 2.5 s.
    Idle,
    /// `CLIENT KILL TYPE normal` from another connection.
    Kill,
    /// The server is killed and started again on the same socket (with its data on disk), and
    /// answers PING before the clients go on.
    Restart,
}

fn server_for(cut: Cut) -> RedisServer {
    let args: &[&str] = match cut {
        Cut::Idle => &["--timeout", "1"],
        Cut::Kill => &[],
        // The locks must outlive the restart for the operations on them to succeed.
        Cut::Restart => &["--appendonly", "yes", "--appendfsync", "always"],
    };
    RedisServer::start_with(Listen::Unix, args)
}

/// Kills every normal client connection but the one that sends the command; how many.
fn kill_clients(server: &RedisServer) -> i64 {
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut admin)
        .unwrap();
    killed
}

fn connections_received(server: &RedisServer) -> u64 {
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query(&mut admin).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

async fn cut_connections(server: &mut RedisServer, cut: Cut) {
    match cut {
        Cut::Idle => tokio::time::sleep(Duration::from_millis(2500)).await,
        Cut::Kill => assert!(kill_clients(server) > 10, "the clients were not connected"),
        Cut::Restart => server.restart(),
    }
}

fn client(server: &RedisServer) -> RedisLock {
    RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_from_url(&server.url())
        .unwrap()
}

/// The value at `key`, read on a connection of the test's own.
fn value_at(server: &RedisServer, key: &str) -> Option<String> {
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("GET").arg(key).query(&mut admin).unwrap()
}

/// Every operation, each on a client whose connection was open and used, then cut: each must
/// answer on its first call, as if nothing had happened.
async fn every_operation_answers_after(cut: Cut) {
    let mut server = server_for(cut);
    let key = |what: &str| unique_key(&format!("{cut:?}-{what}"));
    let (k_lock, k_release, k_get, k_try, k_wait) = (
        key("lock"),
        key("release"),
        key("get"),
        key("try"),
        key("wait"),
    );
    let (k_guard, k_extend, k_seed_extend, k_status, k_force, k_own) = (
        key("guard"),
        key("extend"),
        key("seed-extend"),
        key("status"),
        key("force"),
        key("own"),
    );

    // Before the cut: one client per operation, with what it needs in place.
    let lock = client(&server);
    assert_eq!(lock.get_lock(&k_lock).await.unwrap(), None);
    let release = client(&server);
    let release_token = release.lock_key(LockParams::new(&k_release)).await.unwrap();
    let get = client(&server);
    let get_token = get.lock_key(LockParams::new(&k_get)).await.unwrap();
    let try_ = client(&server);
    assert_eq!(try_.get_lock(&k_try).await.unwrap(), None);
    let wait = client(&server);
    assert_eq!(wait.get_lock(&k_wait).await.unwrap(), None);
    let holder = client(&server).acquire(&k_wait).await.unwrap();
    let guarded = client(&server).acquire(&k_guard).await.unwrap();
    let extended = client(&server).acquire(&k_extend).await.unwrap();
    let seed_extend = client(&server);
    let seed_extend_token = seed_extend
        .lock_key(LockParams::new(&k_seed_extend))
        .await
        .unwrap();
    let status = client(&server);
    status.lock_key(LockParams::new(&k_status)).await.unwrap();
    let force = client(&server);
    force.lock_key(LockParams::new(&k_force)).await.unwrap();
    // Your own ConnectionManager, with its defaults.
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(server.url()).unwrap())
        .await
        .unwrap();
    let own = RedisLock::new(manager);
    let own_token = own.lock_key(LockParams::new(&k_own)).await.unwrap();

    let before = connections_received(&server);
    cut_connections(&mut server, cut).await;
    if cut != Cut::Restart {
        // Nothing reconnected while the clients were left alone: the only new connections are
        // the test's own (this count's, and the one that killed the others).
        let own = if cut == Cut::Kill { 2 } else { 1 };
        assert_eq!(connections_received(&server), before + own);
    }

    let waiting = async {
        let options = AcquireOptions::new().wait(Duration::from_secs(5));
        wait.acquire_with(&k_wait, options)
            .await
            .map(ac_redislock::LockGuard::detach)
    };
    let releasing_holder = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.release().await
    };
    let (waited, held_released) = tokio::join!(waiting, releasing_holder);
    let results: Vec<(&str, Result<(), LockError>)> = vec![
        ("acquire (waiting)", waited.map(|_| ())),
        ("guard release of the holder", held_released),
    ];
    let others = join_all([
        Box::pin(async {
            (
                "lock_key",
                lock.lock_key(LockParams::new(&k_lock)).await.map(|_| ()),
            )
        }) as std::pin::Pin<Box<dyn Future<Output = _>>>,
        Box::pin(async {
            let params = ReleaseParams::new(&k_release).value(&release_token);
            ("release_lock", release.release_lock(params).await)
        }),
        Box::pin(async {
            let got = get.get_lock(&k_get).await;
            (
                "get_lock",
                got.map(|value| assert_eq!(value.as_deref(), Some(&*get_token))),
            )
        }),
        Box::pin(async {
            (
                "try_acquire",
                try_.try_acquire(&k_try)
                    .await
                    .map(|g| g.detach())
                    .map(|_| ()),
            )
        }),
        Box::pin(async { ("guard release", guarded.release().await) }),
        Box::pin(async {
            let extend = extended.extend(Duration::from_secs(20)).await;
            ("guard extend", extend.map(|_| ()))
        }),
        Box::pin(async {
            let extend = seed_extend
                .extend_lock(&k_seed_extend, &seed_extend_token, Duration::from_secs(20))
                .await;
            ("extend_lock", extend)
        }),
        Box::pin(async {
            let state = status.status(&k_status).await;
            (
                "status",
                state.map(|s| assert_eq!(s.state, LockState::Held)),
            )
        }),
        Box::pin(async {
            (
                "force release",
                force.release_lock(ReleaseParams::new(&k_force)).await,
            )
        }),
        Box::pin(async {
            let params = ReleaseParams::new(&k_own).value(&own_token);
            (
                "release_lock on your ConnectionManager",
                own.release_lock(params).await,
            )
        }),
    ])
    .await;
    let failed: Vec<String> = results
        .into_iter()
        .chain(others)
        .filter_map(|(what, result)| result.err().map(|err| format!("{what}: {err:?}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{cut:?}: failed on the first call:\n{failed:#?}"
    );

    // What the operations did is in Redis.
    assert!(value_at(&server, &k_lock).is_some());
    assert_eq!(value_at(&server, &k_release), None);
    assert!(value_at(&server, &k_try).is_some());
    assert!(value_at(&server, &k_wait).is_some());
    assert_eq!(value_at(&server, &k_guard), None);
    assert_eq!(value_at(&server, &k_force), None);
    assert_eq!(value_at(&server, &k_own), None);
}

#[tokio::test]
async fn every_operation_answers_after_an_idle_disconnect() {
    every_operation_answers_after(Cut::Idle).await;
}

#[tokio::test]
async fn every_operation_answers_after_client_kill() {
    every_operation_answers_after(Cut::Kill).await;
}

#[tokio::test]
async fn every_operation_answers_after_a_restart() {
    every_operation_answers_after(Cut::Restart).await;
}

/// The watchdog's renewals meet dead connections (idle longer than the server's `timeout`
/// between renewals, or killed) and go on without reporting a loss.
async fn renewal_survives(cut: Cut) {
    let mut server = server_for(cut);
    let locks = client(&server);
    let key = unique_key(&format!("renewal-{cut:?}"));
    // Idle: renewals every 2 s, so the connection idles past the server's 1 s timeout before
    // each of them. Kill: renewals every 250 ms, connections killed in between.
    let ttl = match cut {
        Cut::Idle => Duration::from_secs(6),
        _ => Duration::from_millis(750),
    };
    let options = AcquireOptions::new().ttl(ttl).auto_renew(true);
    let guard = locks.acquire_with(&key, options).await.unwrap();
    let until = tokio::time::Instant::now() + ttl * 2;
    while tokio::time::Instant::now() < until {
        if cut == Cut::Kill {
            kill_clients(&server);
        }
        tokio::time::sleep(ttl / 5).await;
    }
    let _ = &mut server;
    assert!(guard.is_held(), "{cut:?}: the lease was lost");
    assert_eq!(value_at(&server, &key).as_deref(), Some(guard.token()));
    guard.release().await.unwrap();
}

#[tokio::test]
async fn renewal_survives_idle_disconnects() {
    renewal_survives(Cut::Idle).await;
}

#[tokio::test]
async fn renewal_survives_client_kill() {
    renewal_survives(Cut::Kill).await;
}
