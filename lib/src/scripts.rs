//! The Lua scripts, one file per primitive under `lua/`, each opening with a header that states
//! its KEYS, ARGV and return values. redis-rs sends them with EVALSHA and falls back to loading
//! them when the server answers NOSCRIPT (after a restart, `SCRIPT FLUSH` or a failover).

use std::sync::LazyLock;

use redis::Script;

/// Compare-and-delete: see `lua/release.lua`.
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/release.lua")));

/// Unconditional delete of a string key: see `lua/force_release.lua`.
pub(crate) static FORCE_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/force_release.lua")));
