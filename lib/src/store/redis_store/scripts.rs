//! The Lua scripts, one file per primitive under `lua/`, each opening with a header that states
//! its KEYS, ARGV and return values, and each sent with `lua/prelude.lua` in front (the
//! protocol constants and the hand-off, written once). They are sent with EVALSHA; when the server answers
//! NOSCRIPT (after a restart, `SCRIPT FLUSH` or a failover) the same call is sent once more as
//! EVAL with the script's text, which runs it and caches it again. Unlike loading it and trying
//! EVALSHA again, that second call cannot meet NOSCRIPT: a flush racing the reload costs nothing.
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

/// A Lua script: its text, the SHA-1 digest EVALSHA names it by, and how many keys it takes
/// (`None`: as many as each call gives, which states the count up front).
pub(crate) struct LuaScript {
    text: &'static str,
    sha: String,
    keys: Option<usize>,
}

impl LuaScript {
    fn new(text: &'static str, keys: Option<usize>) -> Self {
        // redis-rs computes the digest the server will use.
        let sha = redis::Script::new(text).get_hash().to_owned();
        Self { text, sha, keys }
    }

    /// Starts a call with the given key (a script with a fixed key count).
    pub(crate) fn key(&self, key: impl ToRedisArgs) -> Call<'_> {
        debug_assert!(
            self.keys.is_some(),
            "a variable key count is given with `keys`"
        );
        self.start(self.keys.unwrap_or(1)).key(key)
    }

    /// Starts a call that will give `count` keys: for a script whose key count varies (a
    /// multi-key lock's), whose count goes on the wire before its keys.
    pub(crate) fn keys(&self, count: usize) -> Call<'_> {
        debug_assert!(
            self.keys.is_none_or(|fixed| fixed == count),
            "a script with a fixed key count takes that many"
        );
        self.start(count)
    }

    fn start(&self, count: usize) -> Call<'_> {
        let mut cmd = redis::Cmd::with_capacity(count + 8, 256);
        cmd.arg("EVALSHA").arg(&self.sha).arg(count);
        Call {
            script: self,
            cmd,
            declared: count,
            keys: 0,
            args: 0,
        }
    }
}

/// One call of a [`LuaScript`]: `EVALSHA`, its digest and key count, then its keys and its
/// arguments, written straight into one command (a call costs two allocations, not two per
/// key and argument).
pub(crate) struct Call<'a> {
    script: &'a LuaScript,
    cmd: redis::Cmd,
    /// The key count written up front.
    declared: usize,
    keys: usize,
    args: usize,
}

impl Call<'_> {
    /// Adds a key (`KEYS[n]`); keys go before arguments.
    pub(crate) fn key(mut self, key: impl ToRedisArgs) -> Self {
        debug_assert_eq!(self.args, 0, "keys go before arguments");
        self.keys += key.num_of_args();
        self.cmd.arg(key);
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args += arg.num_of_args();
        self.cmd.arg(arg);
        self
    }

    /// The call's `EVALSHA` command, to send in a pipeline (where a `NOSCRIPT` answer is the
    /// caller's to handle: the call sent again alone with [`invoke_async`](Self::invoke_async)).
    pub(crate) fn evalsha(&self) -> &redis::Cmd {
        debug_assert_eq!(
            self.keys, self.declared,
            "a call gives the script as many keys as it declares"
        );
        &self.cmd
    }

    /// The same call as `EVAL` with the script's text.
    fn eval(&self) -> redis::Cmd {
        let mut cmd = redis::Cmd::with_capacity(self.keys + self.args + 3, self.script.text.len());
        cmd.arg("EVAL").arg(self.script.text);
        for arg in self.cmd.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }

    /// Runs the script: EVALSHA, then EVAL with its text if the server does not have it.
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        debug_assert_eq!(
            self.keys, self.declared,
            "a call gives the script as many keys as it declares"
        );
        match self.cmd.query_async(conn).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.eval().query_async(conn).await
            }
            other => other,
        }
    }
}

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $file:literal, keys = variable) => {
        script!(@ $(#[$doc])* $name = $file, None);
    };
    ($(#[$doc:meta])* $name:ident = $file:literal, keys = $keys:literal) => {
        script!(@ $(#[$doc])* $name = $file, Some($keys));
    };
    (@ $(#[$doc:meta])* $name:ident = $file:literal, $keys:expr) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(
                concat!(
                    include_str!("../../../lua/prelude.lua"),
                    include_str!(concat!("../../../lua/", $file))
                ),
                $keys,
            )
        });
    };
    ($(#[$doc:meta])* $name:ident = $head:literal + $file:literal, keys = $keys:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(
                concat!(
                    include_str!(concat!("../../../lua/", $head)),
                    include_str!("../../../lua/prelude.lua"),
                    include_str!(concat!("../../../lua/", $file))
                ),
                Some($keys),
            )
        });
    };
    ($(#[$doc:meta])* $name:ident = $file:literal, keys = $keys:literal, with = $part:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(
                concat!(
                    include_str!("../../../lua/prelude.lua"),
                    include_str!(concat!("../../../lua/", $part)),
                    include_str!(concat!("../../../lua/", $file))
                ),
                Some($keys),
            )
        });
    };
}

script!(
    /// Take the lock, or register as a waiter: `lua/acquire.lua`.
    ACQUIRE = "acquire.lua", keys = 4
);
script!(
    /// Compare-and-delete with hand-off to waiters: `lua/release_head.lua` (the common case,
    /// no one waiting, before the prelude) and `lua/release.lua` (after it).
    RELEASE = "release_head.lua" + "release.lua", keys = 4
);
script!(
    /// Unconditional delete of a string key: `lua/force_release.lua`.
    FORCE_RELEASE = "force_release.lua", keys = 3
);
script!(
    /// Compare-and-PEXPIRE: `lua/extend.lua`.
    EXTEND = "extend.lua", keys = 2
);
script!(
    /// A waiter gives up: `lua/cancel_wait.lua`.
    CANCEL_WAIT = "cancel_wait.lua", keys = 4
);
script!(
    /// A read-only snapshot for tools: `lua/status.lua`.
    STATUS = "status.lua", keys = 4
);
script!(
    /// Take several locks together, all or none, or register on the first held:
    /// `lua/multi_acquire.lua` (three keys per lock).
    MULTI_ACQUIRE = "multi_acquire.lua", keys = variable
);
script!(
    /// Compare-and-delete of several locks, each handed to its waiters:
    /// `lua/multi_release.lua` (three keys per lock).
    MULTI_RELEASE = "multi_release.lua", keys = variable
);
script!(
    /// Compare-and-PEXPIRE of several locks, all or none: `lua/multi_extend.lua` (one key per
    /// lock).
    MULTI_EXTEND = "multi_extend.lua", keys = variable
);
script!(
    /// A multi-key waiter gives up: `lua/multi_cancel.lua` (three keys per lock).
    MULTI_CANCEL = "multi_cancel.lua", keys = variable
);
script!(
    /// Take a hold of a lease set, or register as its waiter: `lua/set_acquire.lua`.
    SET_ACQUIRE = "set_acquire.lua", keys = 4, with = "lease_set.lua"
);
script!(
    /// End a hold of a lease set and wake who can enter: `lua/set_release.lua`.
    SET_RELEASE = "set_release.lua", keys = 3, with = "lease_set.lua"
);
script!(
    /// Extend a hold of a lease set: `lua/set_extend.lua`.
    SET_EXTEND = "set_extend.lua", keys = 3, with = "lease_set.lua"
);
script!(
    /// A lease set's waiter gives up: `lua/set_cancel.lua`.
    SET_CANCEL = "set_cancel.lua", keys = 3, with = "lease_set.lua"
);
script!(
    /// A read-only snapshot of a lease set: `lua/set_status.lua`.
    SET_STATUS = "set_status.lua", keys = 4, with = "lease_set.lua"
);

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_states_its_keys_argv_and_returns() {
        for (name, text) in [
            ("acquire", include_str!("../../../lua/acquire.lua")),
            ("release", include_str!("../../../lua/release.lua")),
            (
                "release_head",
                include_str!("../../../lua/release_head.lua"),
            ),
            (
                "force_release",
                include_str!("../../../lua/force_release.lua"),
            ),
            ("extend", include_str!("../../../lua/extend.lua")),
            ("cancel_wait", include_str!("../../../lua/cancel_wait.lua")),
            ("status", include_str!("../../../lua/status.lua")),
            (
                "multi_acquire",
                include_str!("../../../lua/multi_acquire.lua"),
            ),
            (
                "multi_release",
                include_str!("../../../lua/multi_release.lua"),
            ),
            (
                "multi_extend",
                include_str!("../../../lua/multi_extend.lua"),
            ),
            (
                "multi_cancel",
                include_str!("../../../lua/multi_cancel.lua"),
            ),
            ("set_acquire", include_str!("../../../lua/set_acquire.lua")),
            ("set_release", include_str!("../../../lua/set_release.lua")),
            ("set_extend", include_str!("../../../lua/set_extend.lua")),
            ("set_cancel", include_str!("../../../lua/set_cancel.lua")),
            ("set_status", include_str!("../../../lua/set_status.lua")),
        ] {
            assert!(text.starts_with(&format!("-- {name}.lua: ")), "{name}");
            assert!(text.contains("-- KEYS[1]: "), "{name}");
            assert!(text.contains("Returns "), "{name}");
            // The protocol is the prelude's: no script spells it out again.
            assert!(!text.contains("ac-redislock:"), "{name}");
        }
    }

    /// Every script of this module.
    fn all() -> [&'static super::LuaScript; 15] {
        [
            &super::ACQUIRE,
            &super::RELEASE,
            &super::FORCE_RELEASE,
            &super::EXTEND,
            &super::CANCEL_WAIT,
            &super::STATUS,
            &super::MULTI_ACQUIRE,
            &super::MULTI_RELEASE,
            &super::MULTI_EXTEND,
            &super::MULTI_CANCEL,
            &super::SET_ACQUIRE,
            &super::SET_RELEASE,
            &super::SET_EXTEND,
            &super::SET_CANCEL,
            &super::SET_STATUS,
        ]
    }

    #[test]
    fn every_script_declares_the_keys_it_uses() {
        for script in all() {
            // The script's own text, around the prelude (which names no key).
            let own = &own_text(script);
            let used = (1..10)
                .filter(|n| own.contains(&format!("KEYS[{n}]")))
                .max();
            match script.keys {
                Some(keys) => assert_eq!(used, Some(keys), "{}", &own[..60]),
                // As many keys as the call gives: the script counts them, and its header
                // states the first.
                None => {
                    assert!(own.contains("#KEYS"), "{}", &own[..60]);
                    assert!(own.contains("-- KEYS[1]: "), "{}", &own[..60]);
                }
            }
        }
    }

    /// A script's text without the prelude.
    fn own_text(script: &super::LuaScript) -> String {
        let prelude = include_str!("../../../lua/prelude.lua");
        let at = script.text.find(prelude).expect("sent with the prelude");
        format!(
            "{}{}",
            &script.text[..at],
            &script.text[at + prelude.len()..]
        )
    }

    #[test]
    fn every_script_is_sent_with_the_prelude() {
        let head = include_str!("../../../lua/release_head.lua");
        for script in all() {
            let before = script
                .text
                .find("-- prelude.lua: ")
                .map(|at| &script.text[..at]);
            // In front, but for the release's common case, which comes before it.
            let expected = if std::ptr::eq(script, &*super::RELEASE) {
                head
            } else {
                ""
            };
            assert_eq!(before, Some(expected), "{}", &script.text[..60]);
        }
    }

    #[test]
    fn the_lease_set_scripts_and_only_they_carry_its_shared_part() {
        let shared = include_str!("../../../lua/lease_set.lua");
        assert!(shared.starts_with("-- lease_set.lua: "));
        // Functions only: no keys of its own, and the protocol's constants come from the
        // prelude.
        assert!(!shared.contains("KEYS["));
        assert!(!shared.contains("ac-redislock:"));
        for script in [
            &*super::SET_ACQUIRE,
            &*super::SET_RELEASE,
            &*super::SET_EXTEND,
            &*super::SET_CANCEL,
            &*super::SET_STATUS,
        ] {
            let after_prelude = &script.text[include_str!("../../../lua/prelude.lua").len()..];
            assert!(after_prelude.starts_with(shared));
        }
        for script in &all()[..10] {
            assert!(!script.text.contains("-- lease_set.lua: "));
        }
    }
}
