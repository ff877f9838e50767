//! The Redis store's wire protocol beyond the Node original's `SET NX`: the companion keys
//! next to a lock, the reservation a release leaves for a waiter, and the release
//! announcements on pub/sub, decoded here into [`Release`] values.
//!
//! The Lua side of the same protocol is `lua/prelude.lua`, which every script starts with; the
//! constants below and the prelude's are kept equal by a test.

use std::sync::Arc;
use std::time::Duration;

use crate::error::InvalidInput;
use crate::store::Release;

/// The start of the value a released lock holds while it is reserved for one waiter (the rest
/// is the waiter's id). Lock values may not start with it.
pub(crate) const HANDOFF_PREFIX: &str = "ac-redislock:handoff:";

/// How long a released lock stays reserved for the waiter it was handed to. A woken waiter takes
/// it within a round trip; the reservation only matters when that waiter has died, and then it
/// delays the next taker by at most this much.
pub(crate) const HANDOFF_RESERVATION: Duration = Duration::from_millis(200);

/// The pub/sub channel on which releases with waiters are announced.
pub(crate) const RELEASED_CHANNEL: &str = "ac-redislock:released";

/// An announcement that starts with this is the id of the waiter a lock was handed to.
const TO_WAITER: char = 'w';
/// An announcement that starts with this is a key whose waiters should all retry.
const TO_KEY: char = 'k';

/// The keys that live next to a lock, in its Redis Cluster hash slot.
#[derive(Debug)]
pub(crate) struct Companions {
    /// Registered waiters: a sorted set of waiter id -> registration expiry (server ms).
    pub(crate) waiters: String,
    /// The last fencing token drawn.
    pub(crate) fence: String,
}

impl Companions {
    pub(crate) fn of(key: &str) -> Self {
        Self {
            waiters: companion(key, ":waiters"),
            fence: companion(key, ":fence"),
        }
    }
}

/// The waiters set of the lock at `key` (for the calls that need no other companion).
pub(crate) fn waiters_key(key: &str) -> String {
    companion(key, ":waiters")
}

/// The key of a companion of the lock at `key`, in the same Redis Cluster hash slot: `key` +
/// suffix when `key` has a hash tag (its tag still comes first), else `{key}` + suffix.
///
/// A key with a `}` but no hash tag cannot be wrapped (its `}` would end the tag early); such a
/// key gets `key` + suffix, which is fine on a single Redis but not in a cluster.
fn companion(key: &str, suffix: &str) -> String {
    let wrap = !(has_hash_tag(key) || key.contains('}'));
    let mut aux = String::with_capacity(key.len() + suffix.len() + 2);
    if wrap {
        aux.push('{');
    }
    aux.push_str(key);
    if wrap {
        aux.push('}');
    }
    aux.push_str(suffix);
    aux
}

/// Checks that `key`'s companions land in its Redis Cluster hash slot: true unless it has a `}`
/// and no hash tag.
pub(crate) fn check_cluster_key(key: &str) -> Result<(), InvalidInput> {
    if has_hash_tag(key) || !key.contains('}') {
        return Ok(());
    }
    Err(InvalidInput::KeyNotUsable(
        "in Redis Cluster a key with `}` needs a {hash tag}: its waiter and fencing keys must \
         share its slot",
    ))
}

/// Whether Redis Cluster hashes `key` by a `{tag}`: a `{` followed later by a `}` with at least
/// one byte between them.
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

/// Checks that `value` cannot be taken for a reservation.
pub(crate) fn check_value(value: &str) -> Result<(), InvalidInput> {
    if value.starts_with(HANDOFF_PREFIX) {
        return Err(InvalidInput::ReservedValue);
    }
    Ok(())
}

/// Decodes an announcement from [`RELEASED_CHANNEL`]; `None` for one of no known kind.
pub(crate) fn decode(payload: &[u8]) -> Option<Release> {
    let text = String::from_utf8_lossy(payload);
    let mut chars = text.chars();
    let kind = chars.next()?;
    let rest: Arc<str> = Arc::from(chars.as_str());
    match kind {
        TO_WAITER => Some(Release::HandedTo(rest)),
        TO_KEY => Some(Release::Freed(rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's rule: hash the part between the first `{` and the next `}` if it is not
    /// empty. A companion key must land in the same slot as its lock key.
    fn hash_part(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    #[test]
    fn companion_keys_share_the_lock_keys_hash_slot() {
        for key in [
            "jobs:42",
            "jobs{42}",
            "{user:1}:lock",
            "{",
            "}{x}",
            "x{y",
            "a{b}c{d}",
        ] {
            let companions = Companions::of(key);
            for aux in [&companions.waiters, &companions.fence] {
                assert_eq!(hash_part(aux), hash_part(key), "{key:?} -> {aux:?}");
                assert_ne!(aux, key);
            }
            assert_eq!(waiters_key(key), companions.waiters);
        }
        assert_eq!(Companions::of("jobs:42").fence, "{jobs:42}:fence");
        assert_eq!(Companions::of("jobs{42}").fence, "jobs{42}:fence");
        // No tag but a `}`: cannot share a slot; kept as is, and refused on a cluster.
        assert_eq!(Companions::of("a{}b").fence, "a{}b:fence");
        assert!(check_cluster_key("a{}b").is_err());
        assert!(check_cluster_key("a{x}b}").is_ok());
    }

    #[test]
    fn announcements_decode_to_their_kind() {
        assert_eq!(decode(b"wabc"), Some(Release::HandedTo(Arc::from("abc"))));
        assert_eq!(
            decode(b"kjobs:1"),
            Some(Release::Freed(Arc::from("jobs:1")))
        );
        assert_eq!(decode(b"xjobs:1"), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn the_lua_prelude_speaks_the_same_protocol() {
        let prelude = include_str!("../../../lua/prelude.lua");
        for line in [
            format!("local HANDOFF_PREFIX = '{HANDOFF_PREFIX}'"),
            format!("local TO_WAITER = '{TO_WAITER}'"),
            format!("local TO_KEY = '{TO_KEY}'"),
        ] {
            assert!(prelude.contains(&line), "prelude.lua lacks {line:?}");
        }
        assert!(check_value(&format!("{HANDOFF_PREFIX}x")).is_err());
        assert!(check_value("ac-redislock:handof").is_ok());
    }
}
