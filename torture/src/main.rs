//! `torture`: Jepsen-style runs of ac-redislock under faults, on this machine, loopback only.
//!
//! ```text
//! cargo run --release -p ac-redislock-torture -- full     # the full run (RELIABILITY.md)
//! cargo run -p ac-redislock-torture -- quick              # the short run CI does
//! cargo run -p ac-redislock-torture -- quick --only kill-holder --seed 7 --keep
//! ```
//!
//! Worker processes (this program, `worker`) contend for lock keys and, in each critical
//! section, do non-atomic read-modify-writes on a Redis counter on a separate server, fenced
//! writes, and a file. Every step goes to a history with a system-wide monotonic clock. A
//! nemesis injects faults on a seeded schedule (the seed is printed). Then checkers look for
//! overlapping critical sections, lost updates, fencing tokens out of order, stale fenced
//! writes accepted and releases of someone else's lock; controls with deliberately broken
//! locks prove that each checker sees what it checks. The semaphore, the read-write lock and
//! the multi-key lock get scenarios of their own (sets.rs): holders never above the limit, no
//! writer beside anyone, no key held twice, no deadlock, a killed holder's hold free within
//! its lease, nothing left on the server; each with its control. One line per scenario; the exit code is
//! 0 only if every scenario met its verdict. `--keep` keeps the histories (a failed scenario
//! always keeps them) and prints where.

use ac_redislock_testsupport::{cluster, sentinel, server};

mod check;
mod failover;
mod history;
mod proxy;
mod redlock_restart;
mod scenario;
mod sets;
mod worker;

use std::process::ExitCode;
use std::time::Duration;

use scenario::{Figure, Judge, Nemesis, Outcome, Primitive, Scenario, Topology};
use worker::Mode;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Quick,
    Full,
}

impl Scale {
    fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Self::Quick => quick,
            Self::Full => full,
        }
    }
}

fn scenarios(scale: Scale) -> Vec<Scenario> {
    let ms = Duration::from_millis;
    let safe = Scenario::safe;
    let control = |name, mode, figure, ttl_ms, post_cs| Scenario {
        keys: 1,
        sections: 150,
        ttl: ms(ttl_ms),
        renew: false,
        fencing: false,
        post_cs_delay_us: post_cs,
        mode,
        judge: Judge::Control(figure),
        ..safe(name)
    };
    // The lock server killed and started again at once, while holders are in sections long
    // enough that the fault often hits one inside.
    let restart = |name| Scenario {
        sections: 0,
        ttl: ms(1000),
        cs_sleep_us: (20_000, 150_000),
        nemesis: Nemesis::RestartRedis {
            count: scale.pick(3, 20),
        },
        ..safe(name)
    };
    // The semaphore, the read-write lock and the multi-key lock: leases of 1 s with renewal,
    // no fencing; holders killed one at a time, each kill 1.3 s after the last, so that the
    // victim's hold has run out before the next (and each is measured alone).
    let spaced = |count| Nemesis::KillSpaced {
        count,
        gap: ms(1300),
    };
    let set = |name, primitive, mode| Scenario {
        keys: 1,
        sections: 0,
        ttl: ms(1000),
        fencing: false,
        cs_sleep_us: (200, 3_000),
        primitive,
        mode,
        ..safe(name)
    };
    let multi = |name, mode| Scenario {
        workers: 8,
        keys: 6,
        subset: (2, 4),
        ..set(name, Primitive::Multi, mode)
    };
    let mut sets = vec![
        Scenario {
            // 12 workers for 3 permits: there is always a waiter for a permit that frees.
            workers: 12,
            total_sections: scale.pick(600, 20_000),
            cs_sleep_us: (1_000, 10_000),
            nemesis: spaced(scale.pick(8, 50)),
            ..set(
                "semaphore-kill-holder",
                Primitive::Semaphore(3),
                Mode::Semaphore,
            )
        },
        Scenario {
            // Permits of an hour, not renewed: each holder killed keeps its permit, until
            // none is left and every acquire runs out (after 2 s).
            workers: 12,
            cs_sleep_us: (1_000, 10_000),
            wait: ms(2000),
            nemesis: spaced(3),
            judge: Judge::Control(Figure::PermitsLeaked),
            ..set(
                "control-semaphore-no-expiry",
                Primitive::Semaphore(3),
                Mode::SemaphoreNoExpiry,
            )
        },
        Scenario {
            // Half the workers think the limit is 4.
            workers: 12,
            sections: 25,
            cs_sleep_us: (1_000, 10_000),
            judge: Judge::Control(Figure::OverLimit),
            ..set(
                "control-semaphore-mixed-limit",
                Primitive::Semaphore(3),
                Mode::SemaphoreMixedLimit,
            )
        },
        Scenario {
            workers: 12,
            total_sections: scale.pick(1_000, 50_000),
            nemesis: spaced(scale.pick(3, 20)),
            ..set(
                "rwlock-readers-writers",
                Primitive::RwLock { writers: 4 },
                Mode::RwLock,
            )
        },
        Scenario {
            // The writers take read holds.
            workers: 12,
            sections: 25,
            judge: Judge::Control(Figure::WriterOverlaps),
            ..set(
                "control-rwlock-writer-reads",
                Primitive::RwLock { writers: 4 },
                Mode::RwLockWriterReads,
            )
        },
        Scenario {
            total_sections: scale.pick(1_000, 20_000),
            nemesis: spaced(scale.pick(3, 20)),
            ..multi("multikey-overlapping", Mode::Multi)
        },
        Scenario {
            // One key at a time in random order, holding the ones taken while waiting 2 s
            // for the next.
            wait: ms(2000),
            nemesis: Nemesis::Idle(ms(4000)),
            judge: Judge::Control(Figure::Deadlocks),
            ..multi("control-multikey-no-order", Mode::MultiNoOrder)
        },
    ];
    if scale == Scale::Full {
        sets.push(Scenario {
            // The six keys in six hash slots, on three masters.
            topology: Topology::Cluster(3),
            total_sections: 5_000,
            nemesis: spaced(10),
            ..multi("multikey-overlapping-cluster", Mode::Multi)
        });
    }
    let mut all = vec![
        Scenario {
            workers: scale.pick(8, 16),
            sections: scale.pick(500, 12_500),
            ..safe("no-faults")
        },
        Scenario {
            workers: scale.pick(8, 16),
            keys: 1,
            sections: scale.pick(250, 1_250),
            ..safe("no-faults-one-key")
        },
        Scenario {
            topology: Topology::Redlock(3),
            workers: 6,
            keys: 4,
            sections: scale.pick(200, 2_000),
            fencing: false,
            ..safe("redlock-no-faults")
        },
        control(
            "control-del-release",
            Mode::DelRelease,
            Figure::ForeignReleases,
            20,
            (0, 40_000),
        ),
        control(
            "control-get-del-release",
            Mode::GetDelRelease,
            Figure::Overlaps,
            20,
            (0, 40_000),
        ),
        Scenario {
            // Sections longer than the lease: a worker's extend, halfway through, lengthens the
            // lock of whoever took the key meanwhile, since it holds the same token.
            cs_sleep_us: (0, 40_000),
            ..control(
                "control-const-token",
                Mode::ConstToken,
                Figure::ForeignExtends,
                20,
                (0, 40_000),
            )
        },
        Scenario {
            sections: 40,
            cs_sleep_us: (0, 120_000),
            ..control(
                "control-short-ttl",
                Mode::Safe,
                Figure::LostUpdates,
                50,
                (0, 0),
            )
        },
        Scenario {
            // Tokens from a plain counter go back to 1 when Redis restarts empty.
            keys: 2,
            sections: 0,
            ttl: ms(1000),
            renew: true,
            fencing: true,
            nemesis: Nemesis::RestartRedis { count: 3 },
            ..control(
                "control-counter-fence",
                Mode::CounterFence,
                Figure::Inversions,
                1000,
                (0, 0),
            )
        },
        Scenario {
            // A resource that does not check fences lets a paused holder's write through.
            keys: 2,
            sections: 0,
            ttl: ms(1000),
            renew: true,
            fencing: true,
            cs_sleep_us: (50_000, 250_000),
            nemesis: Nemesis::PauseHolder {
                count: 3,
                pause: ms(2000),
            },
            ..control(
                "control-unchecked-resource",
                Mode::UncheckedResource,
                Figure::StaleAccepted,
                1000,
                (0, 0),
            )
        },
        Scenario {
            // Two keys for eight workers: someone always waits for the victim's key.
            keys: 2,
            sections: 0,
            ttl: ms(1000),
            cs_sleep_us: (1_000, 20_000),
            nemesis: Nemesis::KillHolder {
                count: scale.pick(10, 50),
            },
            ..safe("kill-holder")
        },
        Scenario {
            sections: 0,
            ttl: ms(1000),
            cs_sleep_us: (50_000, 250_000),
            nemesis: Nemesis::PauseHolder {
                count: scale.pick(5, 50),
                pause: ms(2000),
            },
            judge: Judge::Fenced,
            ..safe("pause-holder")
        },
        Scenario {
            sections: 0,
            ttl: ms(1000),
            nemesis: Nemesis::PauseRedis {
                count: scale.pick(3, 20),
                pause: ms(500),
            },
            ..safe("pause-redis-short")
        },
        Scenario {
            sections: 0,
            ttl: ms(1000),
            // Long enough sections that the fault often hits a holder inside one.
            cs_sleep_us: (20_000, 150_000),
            nemesis: Nemesis::PauseRedis {
                count: scale.pick(3, 20),
                pause: ms(2000),
            },
            judge: Judge::Fenced,
            ..safe("pause-redis-long")
        },
        Scenario {
            judge: Judge::Fenced,
            ..restart("restart-redis")
        },
        Scenario {
            // Every write is on disk before it is answered: a restart keeps the locks, with
            // their remaining time, so nothing may overlap.
            lock_server_args: &["--appendonly", "yes", "--appendfsync", "always"],
            ..restart("restart-redis-aof")
        },
        Scenario {
            sections: 0,
            ttl: ms(1000),
            nemesis: Nemesis::ProxyDelayReset {
                count: scale.pick(8, 40),
            },
            ..safe("proxy-delay-reset")
        },
        Scenario {
            sections: 0,
            ttl: ms(1000),
            cs_sleep_us: (10_000, 100_000),
            nemesis: Nemesis::ProxyBlackhole {
                count: scale.pick(3, 20),
                hold: ms(2000),
            },
            judge: Judge::Fenced,
            ..safe("proxy-blackhole")
        },
        Scenario {
            topology: Topology::Redlock(5),
            workers: 6,
            keys: 4,
            sections: 0,
            fencing: false,
            nemesis: Nemesis::RedlockMinority {
                count: scale.pick(10, 50),
                hold: ms(400),
            },
            ..safe("redlock-minority")
        },
    ];
    all.extend(sets);
    all
}

fn line(o: &Outcome) -> String {
    let f = &o.findings;
    if let Some(figures) = &o.set_figures {
        let kept = o.kept.as_ref().map_or(String::new(), |dir| {
            format!(" histories kept in {}", dir.display())
        });
        return format!(
            "{} seed={} ops={} faults={} {figures} verdict={} ({:.1} s){kept}",
            o.name, o.seed, f.sections, o.faults, o.verdict, o.seconds
        );
    }
    let ms = |p: Option<(f64, f64, f64)>| {
        p.map_or("-".into(), |(a, b, c)| format!("{a:.1}/{b:.1}/{c:.1}"))
    };
    let kept = o.kept.as_ref().map_or(String::new(), |dir| {
        format!(" histories kept in {}", dir.display())
    });
    let detected = o
        .detected
        .map_or(String::new(), |(d, p)| format!(" lost_detected={d}/{p}"));
    format!(
        "{} seed={} ops={} faults={} overlaps={} lost={} file_lost={} inversions={} \
         stale_fenced_rejected={} stale_fenced_accepted={} foreign_releases={} \
         foreign_extends={} indeterminate={} acquire_errors={} losses_noticed={} \
         takeover_ms={} detect_ms={}{detected} verdict={} ({:.1} s){kept}",
        o.name,
        o.seed,
        f.sections,
        o.faults,
        f.overlaps,
        f.lost_updates,
        f.lost_file_writes,
        f.inversions,
        f.stale_rejected,
        f.stale_accepted,
        f.foreign_releases,
        f.foreign_extends,
        f.indeterminate,
        f.acquire_errors,
        f.losses_noticed,
        ms(o.takeover),
        ms(o.detect),
        o.verdict,
        o.seconds
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("torture: error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.first().map(String::as_str) == Some("worker") {
        let result = std::env::var("TORTURE_WORKER")
            .map_err(|_| "TORTURE_WORKER is not set".to_owned())
            .and_then(|text| worker::WorkerConfig::decode(&text))
            .and_then(|cfg| runtime.block_on(worker::run(cfg)));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("torture worker: error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let scale = match args.first().map(String::as_str) {
        Some("quick") | None => Scale::Quick,
        Some("full") => Scale::Full,
        Some(other) => {
            eprintln!(
                "usage: torture [quick|full] [--seed N] [--only SCENARIO] [--keep]; got {other:?}"
            );
            return ExitCode::from(2);
        }
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed = flag("--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| history::now_ns() % 1_000_000);
    let only = flag("--only");
    let keep = args.iter().any(|a| a == "--keep");
    println!("torture {scale:?} run, seed {seed} (repeat with --seed {seed})");
    let mut green = true;
    let mut outcomes = Vec::new();
    for s in scenarios(scale) {
        if only.as_deref().is_some_and(|o| o != s.name) {
            continue;
        }
        match runtime.block_on(scenario::run(&s, seed, keep)) {
            Ok(outcome) => {
                println!("{}", line(&outcome));
                green &= outcome.green;
                outcomes.push(outcome);
            }
            Err(err) => {
                println!("{} seed={seed} verdict=FAIL(could not run: {err})", s.name);
                green = false;
            }
        }
    }
    for restart in [
        redlock_restart::Restart::Immediate,
        redlock_restart::Restart::Delayed,
    ] {
        if only.as_deref().is_some_and(|o| o != restart.name()) {
            continue;
        }
        let rounds = scale.pick(5, restart.full_rounds());
        match runtime.block_on(redlock_restart::run(restart, rounds)) {
            Ok(outcome) => {
                println!("{}", outcome.line());
                green &= outcome.green;
            }
            Err(err) => {
                println!("{} verdict=FAIL(could not run: {err})", restart.name());
                green = false;
            }
        }
    }
    for wait in [failover::Wait::Without, failover::Wait::With] {
        if only.as_deref().is_some_and(|o| o != wait.name()) {
            continue;
        }
        match runtime.block_on(failover::run(wait, scale.pick(1, 10))) {
            Ok(outcome) => {
                println!("{}", outcome.line());
                green &= outcome.green;
            }
            Err(err) => {
                println!("{} verdict=FAIL(could not run: {err})", wait.name());
                green = false;
            }
        }
    }
    println!(
        "torture: {}",
        if green {
            "all scenarios met their verdicts"
        } else {
            "SOME SCENARIOS FAILED"
        }
    );
    if green {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
