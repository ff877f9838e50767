//! The Lua scripts, one file per primitive under `lua/`, each opening with a header that states
//! its KEYS, ARGV and return values. redis-rs sends them with EVALSHA and falls back to loading
//! them when the server answers NOSCRIPT (after a restart, `SCRIPT FLUSH` or a failover).

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $file:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

script!(
    /// Take the lock, or register as a waiter: `lua/acquire.lua`.
    ACQUIRE = "acquire.lua"
);
script!(
    /// Compare-and-delete with hand-off to waiters: `lua/release.lua`.
    RELEASE = "release.lua"
);
script!(
    /// Unconditional delete of a string key: `lua/force_release.lua`.
    FORCE_RELEASE = "force_release.lua"
);
script!(
    /// Compare-and-PEXPIRE: `lua/extend.lua`.
    EXTEND = "extend.lua"
);
script!(
    /// A waiter gives up: `lua/cancel_wait.lua`.
    CANCEL_WAIT = "cancel_wait.lua"
);
script!(
    /// A read-only snapshot for tools: `lua/status.lua`.
    STATUS = "status.lua"
);

/// The start of the value a released lock holds while it is reserved for one waiter (the rest
/// is the waiter's id).
pub(crate) const HANDOFF_PREFIX: &str = "ac-redislock:handoff:";

/// The pub/sub channel on which releases with waiters are announced. A message is `w` and the
/// id of the waiter the lock is reserved for, or `k` and a key whose waiters should all retry.
pub(crate) const RELEASED_CHANNEL: &str = "ac-redislock:released";

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_states_its_keys_argv_and_returns() {
        for (name, text) in [
            ("acquire", include_str!("../lua/acquire.lua")),
            ("release", include_str!("../lua/release.lua")),
            ("force_release", include_str!("../lua/force_release.lua")),
            ("extend", include_str!("../lua/extend.lua")),
            ("cancel_wait", include_str!("../lua/cancel_wait.lua")),
            ("status", include_str!("../lua/status.lua")),
        ] {
            assert!(text.starts_with(&format!("-- {name}.lua: ")), "{name}");
            assert!(text.contains("-- KEYS[1]: "), "{name}");
            assert!(text.contains("Returns "), "{name}");
        }
        for text in [
            include_str!("../lua/acquire.lua"),
            include_str!("../lua/release.lua"),
            include_str!("../lua/cancel_wait.lua"),
            include_str!("../lua/status.lua"),
        ] {
            assert!(text.contains(super::HANDOFF_PREFIX));
        }
    }
}
