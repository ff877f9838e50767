//! The Lua scripts, one file per primitive under `lua/`, each opening with a header that states
//! its KEYS, ARGV and return values, and each sent with `lua/prelude.lua` in front (the
//! protocol constants and the hand-off, written once). They are sent with EVALSHA; when the server answers
//! NOSCRIPT (after a restart, `SCRIPT FLUSH` or a failover) the same call is sent once more as
//! EVAL with the script's text, which runs it and caches it again. Unlike loading it and trying
//! EVALSHA again, that second call cannot meet NOSCRIPT: a flush racing the reload costs nothing.
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

/// A Lua script: its text and the SHA-1 digest EVALSHA names it by.
pub(crate) struct LuaScript {
    text: &'static str,
    sha: String,
}

impl LuaScript {
    fn new(text: &'static str) -> Self {
        // redis-rs computes the digest the server will use.
        let sha = redis::Script::new(text).get_hash().to_owned();
        Self { text, sha }
    }

    /// Starts a call with the given key.
    pub(crate) fn key(&self, key: impl ToRedisArgs) -> Call<'_> {
        Call {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
        .key(key)
    }
}

/// One call of a [`LuaScript`]: its keys and arguments.
pub(crate) struct Call<'a> {
    script: &'a LuaScript,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call<'_> {
    /// Adds a key (`KEYS[n]`).
    pub(crate) fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    fn command(&self, name: &str, script: &str) -> redis::Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// Runs the script: EVALSHA, then EVAL with its text if the server does not have it.
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.script.sha)
            .query_async(conn)
            .await
        {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", self.script.text)
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }
}

macro_rules! script {
    ($(#[$doc:meta])* $name:ident = $file:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(concat!(
                include_str!("../../../lua/prelude.lua"),
                include_str!(concat!("../../../lua/", $file))
            ))
        });
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_states_its_keys_argv_and_returns() {
        for (name, text) in [
            ("acquire", include_str!("../../../lua/acquire.lua")),
            ("release", include_str!("../../../lua/release.lua")),
            (
                "force_release",
                include_str!("../../../lua/force_release.lua"),
            ),
            ("extend", include_str!("../../../lua/extend.lua")),
            ("cancel_wait", include_str!("../../../lua/cancel_wait.lua")),
            ("status", include_str!("../../../lua/status.lua")),
        ] {
            assert!(text.starts_with(&format!("-- {name}.lua: ")), "{name}");
            assert!(text.contains("-- KEYS[1]: "), "{name}");
            assert!(text.contains("Returns "), "{name}");
            // The protocol is the prelude's: no script spells it out again.
            assert!(!text.contains("ac-redislock:"), "{name}");
        }
    }

    #[test]
    fn every_script_is_sent_with_the_prelude() {
        for script in [
            &*super::ACQUIRE,
            &*super::RELEASE,
            &*super::FORCE_RELEASE,
            &*super::EXTEND,
            &*super::CANCEL_WAIT,
            &*super::STATUS,
        ] {
            assert!(script.text.starts_with("-- prelude.lua: "));
        }
    }
}
