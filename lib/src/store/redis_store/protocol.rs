//! The Redis store's wire protocol beyond the Node original's `SET NX`: the companion keys
//! next to a lock, a waiter's registration, the reservation a release leaves for a waiter, and
//! the announcements on pub/sub, decoded here into [`Announcement`] values.
//!
//! The Lua side of the same protocol is `lua/prelude.lua`, which every script starts with; the
//! constants below and the prelude's are kept equal by a test.

use std::sync::Arc;
use std::time::Duration;

use crate::error::InvalidInput;
use crate::store::{Share, Waiter};

/// The start of the value a released lock holds while it is reserved for one waiter (the rest
/// is the waiter's id). Lock values may not start with it.
pub(crate) const HANDOFF_PREFIX: &str = "ac-redislock:handoff:";

/// How long a released lock stays reserved for the waiter it was handed to, when it is not
/// given to it outright (its client was not heard listening). The waiter takes it within a
/// round trip; the reservation only matters when that waiter has died, and then it delays the
/// next taker by at most this much.
pub(crate) const HANDOFF_RESERVATION: Duration = Duration::from_millis(200);

/// The pub/sub channel on which keys freed for all their waiters are announced (a force
/// release), and hand-offs to waiters registered by earlier versions.
pub(crate) const RELEASED_CHANNEL: &str = "ac-redislock:released";

/// Each client listens on this followed by its id for the hand-offs to its own waiters: a
/// release wakes one client, not every client that ever waited.
pub(crate) const WAKE_PREFIX: &str = "ac-redislock:wake:";

/// An announcement that starts with this is the id of the waiter a lock was reserved for.
const TO_WAITER: char = 'w';
/// An announcement that starts with this is the id of the waiter a lock was given to, then
/// `:` and its fencing token if it asked for one.
const GRANTED: char = 'g';
/// An announcement that starts with this is a key whose waiters should all retry.
const TO_KEY: char = 'k';
/// Separates a granted waiter's id from its fencing token.
const FENCE_SEPARATOR: char = ':';

/// Separates the fields of a waiter's registration.
const FIELD: char = '|';

/// Every companion key starts with this; lock keys may not, so no lock is ever a companion.
pub(crate) const COMPANION_PREFIX: &str = "ac-redislock:";

/// The keys that live next to a lock, in its Redis Cluster hash slot.
#[derive(Debug)]
pub(crate) struct Companions {
    /// Registered waiters: a sorted set of waiter id -> registration expiry (server ms).
    pub(crate) waiters: String,
    /// The last fencing token drawn.
    pub(crate) fence: String,
    /// The holder label, when the holder gave one: `<digest>|<since ms>|<label>` (see
    /// `prelude.lua`).
    pub(crate) holder: String,
}

impl Companions {
    pub(crate) fn of(key: &str) -> Self {
        Self {
            waiters: companion(key, "waiters"),
            fence: companion(key, "fence"),
            holder: companion(key, "holder"),
        }
    }
}

/// How many hex digits of the SHA-1 of a lock's value its holder label keeps (`prelude.lua`'s
/// `HOLDER_DIGEST`): enough to tell the value the label was written for from any other, and
/// useless to release or extend the lock with. Only the scripts use it; a test keeps the two
/// equal.
#[cfg(test)]
pub(crate) const HOLDER_DIGEST: usize = 16;

/// The key of the `kind` companion of the lock at `key`:
///
/// - `ac-redislock:<kind>:{<tag>}:<key>` when `key` has a hash tag `{<tag>}`;
/// - `ac-redislock:<kind>:{<key>}` when it has none and no `}`;
/// - `ac-redislock:<kind>:{}:<key>` otherwise (no `{tag}` can hold such a key: not for a
///   Cluster, where [`check_cluster_key`] refuses it).
///
/// The first two share `key`'s Redis Cluster hash slot (the first `{...}` is the slot's). The
/// naming is one-to-one: the kind ends at the second `:`, and after `{` either `}:` starts the
/// key, or the tag runs to the first `}`, after which the name ends (the key is the tag) or
/// `:` starts the key. And no companion is a lock key: lock keys may not start with
/// [`COMPANION_PREFIX`].
fn companion(key: &str, kind: &'static str) -> String {
    Companion { key, kind }.to_string()
}

/// The name of a companion key (see [`companion`]), written straight into a command's
/// arguments, with no `String` of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Companion<'a> {
    key: &'a str,
    kind: &'static str,
}

impl<'a> Companion<'a> {
    /// The waiters set of the lock at `key`.
    pub(crate) fn waiters(key: &'a str) -> Self {
        Self {
            key,
            kind: "waiters",
        }
    }

    /// The fencing counter of the lock at `key`.
    pub(crate) fn fence(key: &'a str) -> Self {
        Self { key, kind: "fence" }
    }

    /// The holder label of the lock at `key`.
    pub(crate) fn holder(key: &'a str) -> Self {
        Self {
            key,
            kind: "holder",
        }
    }

    /// The waiters' queue of the lease set at `key` (registrations in arrival order).
    pub(crate) fn queue(key: &'a str) -> Self {
        Self { key, kind: "queue" }
    }

    /// The waiters' leases of the lease set at `key` (registrations by expiry).
    pub(crate) fn alive(key: &'a str) -> Self {
        Self { key, kind: "alive" }
    }
}

impl std::fmt::Display for Companion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { key, kind } = *self;
        write!(f, "{COMPANION_PREFIX}{kind}:{{")?;
        match hash_tag(key) {
            Some(tag) => write!(f, "{tag}}}:{key}"),
            None if !key.contains('}') => write!(f, "{key}}}"),
            None => write!(f, "}}:{key}"),
        }
    }
}

impl redis::ToRedisArgs for Companion<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self);
    }
}

/// Checks that `key` can be a lock key here: not in the companions' namespace.
pub(crate) fn check_key(key: &str) -> Result<(), InvalidInput> {
    if key.starts_with(COMPANION_PREFIX) {
        return Err(InvalidInput::KeyNotUsable(
            "keys starting with `ac-redislock:` are reserved for the companions of locks",
        ));
    }
    Ok(())
}

/// Checks that `key`'s companions land in its Redis Cluster hash slot: true unless it has a `}`
/// and no hash tag.
pub(crate) fn check_cluster_key(key: &str) -> Result<(), InvalidInput> {
    if hash_tag(key).is_some() || !key.contains('}') {
        return Ok(());
    }
    Err(InvalidInput::KeyNotUsable(
        "in Redis Cluster a key with `}` needs a {hash tag}: its waiter and fencing keys must \
         share its slot",
    ))
}

/// The part of `key` Redis Cluster hashes, when it is a `{tag}`: between the first `{` and the
/// next `}`, if that is not empty.
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let len = key[open + 1..].find('}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

/// Checks that `value` cannot be taken for a reservation.
pub(crate) fn check_value(value: &str) -> Result<(), InvalidInput> {
    if value.starts_with(HANDOFF_PREFIX) {
        return Err(InvalidInput::ReservedValue);
    }
    Ok(())
}

/// A waiter's registration, the member of the waiters set that stands for it (see
/// `prelude.lua`): `<waiter id>|<client id>|<ttl ms>|<fencing>|<token>`. `client` is the id
/// whose channel ([`WAKE_PREFIX`]) the waiter's client listens on, empty when it polls; a ttl
/// of 0 asks for a reservation only.
pub(crate) fn registration(waiter: &Waiter, client: &str) -> String {
    let ttl = if waiter.direct && !client.is_empty() {
        waiter.expiry.as_millis()
    } else {
        0
    };
    member(waiter, client, ttl)
}

/// A registration that asks for a reservation only (a ttl of 0), whatever the waiter: what a
/// multi-key waiter registers with, as a release of one of its keys must not give it that key
/// alone (it takes all of them with an attempt of its own).
pub(crate) fn reservation_registration(waiter: &Waiter, client: &str) -> String {
    member(waiter, client, 0)
}

/// The registration of `waiter`, heard on the channel of `client`, with `ttl` ms.
fn member(waiter: &Waiter, client: &str, ttl: u64) -> String {
    let fencing = if waiter.fencing { '1' } else { '0' };
    format!(
        "{id}{FIELD}{client}{FIELD}{ttl}{FIELD}{fencing}{FIELD}{token}",
        id = waiter.id,
        token = waiter.token
    )
}

/// The count field of an exclusive hold (a writer) in a lease set, and of its waiters'
/// registrations, where a shared one has its count of shares.
const EXCLUSIVE: &str = "x";

/// A hold in a lease set, the member of the set that stands for it (see `lease_set.lua`):
/// `<count>|<token>` for `count` shares, `x|<token>` for the exclusive hold.
pub(crate) fn hold(share: Share, token: &str) -> String {
    match share {
        Share::Shared { count, .. } => format!("{count}{FIELD}{token}"),
        Share::Exclusive => format!("{EXCLUSIVE}{FIELD}{token}"),
    }
}

/// A lease set's waiter registration, the member of its `queue` and `alive` companions (see
/// `lease_set.lua`): `<waiter id>|<client id>|<count or x>|<limit>`, the limit 0 for the
/// exclusive hold. `client` is as in [`registration`].
pub(crate) fn set_registration(waiter: &Waiter, client: &str, share: Share) -> String {
    let id = &waiter.id;
    match share {
        Share::Shared { count, limit } => {
            format!("{id}{FIELD}{client}{FIELD}{count}{FIELD}{limit}")
        }
        Share::Exclusive => format!("{id}{FIELD}{client}{FIELD}{EXCLUSIVE}{FIELD}0"),
    }
}

/// An announcement heard on pub/sub, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Announcement {
    /// The lock was reserved for the waiter with this id: it takes it with an attempt.
    Reserved(Arc<str>),
    /// The lock was given to the waiter with this id, with this fencing token if it asked.
    Granted {
        waiter: Arc<str>,
        fence: Option<u64>,
    },
    /// The lock at this wire key was freed for every waiter (a force release).
    Freed(Arc<str>),
}

/// Decodes an announcement; `None` for one of no known kind.
pub(crate) fn decode(payload: &[u8]) -> Option<Announcement> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut chars = text.chars();
    let kind = chars.next()?;
    let rest = chars.as_str();
    match kind {
        TO_WAITER => Some(Announcement::Reserved(Arc::from(rest))),
        GRANTED => {
            let (waiter, fence) = match rest.split_once(FENCE_SEPARATOR) {
                Some((waiter, fence)) => (waiter, Some(fence.parse().ok()?)),
                None => (rest, None),
            };
            Some(Announcement::Granted {
                waiter: Arc::from(waiter),
                fence,
            })
        }
        TO_KEY => Some(Announcement::Freed(Arc::from(rest))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's rule, written again here from its specification: the part between
    /// the first `{` and the next `}` if it is not empty, else the whole key.
    fn hashed(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    /// Every key over `alphabet` up to `len` characters.
    fn keys(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut level = vec![String::new()];
        for _ in 0..len {
            level = level
                .iter()
                .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
                .collect();
            all.extend(level.iter().cloned());
        }
        all.retain(|k| !k.is_empty());
        all
    }

    /// The property the lock rests on, over every key of up to 6 characters made of braces,
    /// colons and two letters (19,530 keys, 97,650 companions): companion keys are one-to-one,
    /// never a lock key, and in the lock key's hash slot whenever Cluster accepts the key.
    #[test]
    fn companion_keys_are_one_to_one_never_locks_and_in_the_slot() {
        let keys = keys(&['{', '}', ':', 'a', 'b'], 6);
        assert_eq!(keys.len(), 19_530);
        let mut seen = std::collections::HashMap::new();
        for key in &keys {
            let companions = Companions::of(key);
            for (kind, name) in [
                ("waiters", &companions.waiters),
                ("fence", &companions.fence),
                ("holder", &companions.holder),
                ("queue", &Companion::queue(key).to_string()),
                ("alive", &Companion::alive(key).to_string()),
            ] {
                if let Some(other) = seen.insert(name.clone(), (key.clone(), kind)) {
                    panic!(
                        "{name:?} is the companion of {other:?} and of {:?}",
                        (key, kind)
                    );
                }
                assert!(check_key(name).is_err(), "{name:?} could be a lock key");
                if check_cluster_key(key).is_ok() {
                    assert_eq!(hashed(name), hashed(key), "{key:?} -> {name:?}");
                }
            }
            assert!(check_key(key).is_ok());
        }
        // The README's examples.
        let of = |key| Companions::of(key);
        assert_eq!(of("jobs:1").waiters, "ac-redislock:waiters:{jobs:1}");
        assert_eq!(
            of("{jobs:1}").waiters,
            "ac-redislock:waiters:{jobs:1}:{jobs:1}"
        );
        assert_eq!(
            of("user{7}:cart").fence,
            "ac-redislock:fence:{7}:user{7}:cart"
        );
        assert_eq!(of("a}b").fence, "ac-redislock:fence:{}:a}b");
        assert!(check_cluster_key("a}b").is_err());
        assert!(check_cluster_key("a{x}b}").is_ok());
        assert!(check_key("ac-redislock:waiters:{report}").is_err());
    }

    #[test]
    fn announcements_decode_to_their_kind() {
        let id = |s: &str| Arc::<str>::from(s);
        assert_eq!(decode(b"wabc"), Some(Announcement::Reserved(id("abc"))));
        assert_eq!(
            decode(b"gabc"),
            Some(Announcement::Granted {
                waiter: id("abc"),
                fence: None
            })
        );
        assert_eq!(
            decode(b"gabc:1764000000000001"),
            Some(Announcement::Granted {
                waiter: id("abc"),
                fence: Some(1_764_000_000_000_001)
            })
        );
        assert_eq!(
            decode(b"gabc:x"),
            None,
            "a grant with a bad fence is not a grant"
        );
        assert_eq!(decode(b"kjobs:1"), Some(Announcement::Freed(id("jobs:1"))));
        assert_eq!(decode(b"xjobs:1"), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn a_registration_carries_what_a_release_needs() {
        let mut waiter = Waiter {
            id: "w1".into(),
            token: "to|ken with spaces".into(),
            expiry: crate::store::Expiry::Seconds(10),
            fencing: true,
            direct: true,
            lease: Duration::from_secs(3),
        };
        assert_eq!(
            registration(&waiter, "c1"),
            "w1|c1|10000|1|to|ken with spaces"
        );
        // A polling client, or a waiter that must take the lock itself: a reservation.
        assert_eq!(registration(&waiter, ""), "w1||0|1|to|ken with spaces");
        // A multi-key waiter: a reservation, heard on its client's channel.
        assert_eq!(
            reservation_registration(&waiter, "c1"),
            "w1|c1|0|1|to|ken with spaces"
        );
        waiter.direct = false;
        waiter.fencing = false;
        assert_eq!(registration(&waiter, "c1"), "w1|c1|0|0|to|ken with spaces");
    }

    #[test]
    fn the_lua_prelude_speaks_the_same_protocol() {
        let prelude = include_str!("../../../lua/prelude.lua");
        for line in [
            format!("local HANDOFF_PREFIX = '{HANDOFF_PREFIX}'"),
            format!("local TO_KEY = '{TO_KEY}'"),
            format!("local RELEASED_CHANNEL = '{RELEASED_CHANNEL}'"),
            format!("local HOLDER_DIGEST = {HOLDER_DIGEST}"),
            format!("local WAKE_PREFIX = '{WAKE_PREFIX}'"),
            // hand_off writes the two kinds addressed to one waiter.
            format!("'{TO_WAITER}' .. member"),
            format!("'{TO_WAITER}' .. waiter"),
            format!("local message = '{GRANTED}' .. waiter"),
            format!("message .. '{FENCE_SEPARATOR}' .. fence"),
            format!("'^([^{FIELD}]*){FIELD}([^{FIELD}]*){FIELD}(%d+){FIELD}([01]){FIELD}(.*)$'"),
        ] {
            assert!(prelude.contains(&line), "prelude.lua lacks {line:?}");
        }
        assert!(check_value(&format!("{HANDOFF_PREFIX}x")).is_err());
        assert!(check_value("ac-redislock:handof").is_ok());
    }

    #[test]
    fn lease_set_members_carry_what_the_scripts_read() {
        let shared = Share::Shared { count: 2, limit: 5 };
        assert_eq!(hold(shared, "to|ken"), "2|to|ken");
        assert_eq!(hold(Share::Exclusive, "to|ken"), "x|to|ken");
        let waiter = Waiter {
            id: "w1".into(),
            token: "t".into(),
            expiry: crate::store::Expiry::Seconds(10),
            fencing: false,
            direct: true,
            lease: Duration::from_secs(3),
        };
        assert_eq!(set_registration(&waiter, "c1", shared), "w1|c1|2|5");
        assert_eq!(set_registration(&waiter, "", Share::Exclusive), "w1||x|0");
        let reader = Share::Shared {
            count: 1,
            limit: u32::MAX,
        };
        assert_eq!(
            set_registration(&waiter, "c1", reader),
            "w1|c1|1|4294967295"
        );
    }

    #[test]
    fn the_lease_set_scripts_speak_the_same_protocol() {
        let lua = include_str!("../../../lua/lease_set.lua");
        for line in [
            // set_wake announces a waiter as hand_off does when it reserves a lock.
            format!("'{TO_WAITER}' .. waiter"),
            // Hold and registration count fields.
            format!("count == '{EXCLUSIVE}'"),
            format!("'^([^{FIELD}]*){FIELD}'"),
            format!("'^([^{FIELD}]*){FIELD}([^{FIELD}]*){FIELD}([^{FIELD}]*){FIELD}(%d+)$'"),
        ] {
            assert!(lua.contains(&line), "lease_set.lua lacks {line:?}");
        }
        // The channels are the prelude's, passed in by the scripts.
        assert!(!lua.contains("ac-redislock:"));
    }
}
