//! Fresh lock tokens: random bytes from the operating system, written as lowercase hex.
//!
//! Bytes are fetched from the OS in blocks (one `getrandom` call per 204 tokens) and each byte
//! is handed out once. The block belongs to one thread and one process: a forked child starts
//! with a fresh block, so parent and child never hand out the same bytes.

use std::cell::RefCell;

use crate::error::LockError;

/// Random bytes in a token: 160 bits, as the Redis documentation recommends (20 bytes from
/// `/dev/urandom`). UUIDv4, the Node original's default, has only 122.
const TOKEN_BYTES: usize = 20;
/// Bytes fetched from the OS at a time.
const BLOCK: usize = 4080;

struct Pool {
    bytes: [u8; BLOCK],
    /// Next unused byte; `BLOCK` when the block is used up.
    next: usize,
    /// The process that fetched the block.
    pid: u32,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; BLOCK], next: BLOCK, pid: 0 })
    };
}

/// Fills `out` with bytes from the OS that no one else gets.
fn fill(out: &mut [u8]) -> Result<(), LockError> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pid = std::process::id();
        if pool.next + out.len() > BLOCK || pool.pid != pid {
            getrandom::fill(&mut pool.bytes).map_err(|err| LockError::Entropy(err.into()))?;
            pool.next = 0;
            pool.pid = pid;
        }
        let range = pool.next..pool.next + out.len();
        out.copy_from_slice(&pool.bytes[range.clone()]);
        // Handed out once: wipe the bytes from the pool.
        pool.bytes[range.clone()].fill(0);
        pool.next = range.end;
        Ok(())
    })
}

/// Returns a new token: 40 lowercase hex characters made from 160 bits of OS randomness.
pub(crate) fn new_token() -> Result<String, LockError> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut raw = [0u8; TOKEN_BYTES];
    fill(&mut raw)?;
    let mut text = [0u8; TOKEN_BYTES * 2];
    for (i, byte) in raw.into_iter().enumerate() {
        text[2 * i] = HEX[usize::from(byte >> 4)];
        text[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    // Hex digits are ASCII, so this never falls back to the empty string.
    Ok(std::str::from_utf8(&text).unwrap_or_default().to_owned())
}

/// Returns 64 random bits from the OS (for jitter seeds), or `None` if the OS has none to give.
pub(crate) fn random_u64() -> Option<u64> {
    let mut raw = [0u8; 8];
    fill(&mut raw).ok()?;
    Some(u64::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_40_lowercase_hex_chars() {
        let token = new_token().unwrap();
        assert_eq!(token.len(), 40);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn a_million_tokens_are_distinct() {
        let tokens: HashSet<String> = (0..1_000_000).map(|_| new_token().unwrap()).collect();
        assert_eq!(tokens.len(), 1_000_000);
    }

    #[test]
    fn threads_draw_distinct_tokens() {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..10_000)
                        .map(|_| new_token().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for handle in handles {
            for token in handle.join().unwrap() {
                assert!(all.insert(token));
            }
        }
        assert_eq!(all.len(), 80_000);
    }

    #[test]
    fn every_hex_digit_shows_up_evenly() {
        // 10,000 tokens give 400,000 digits, 25,000 per digit on average; a broken generator
        // (constant, or one nibble always zero) lands far outside 5%.
        let mut counts = [0u32; 16];
        for _ in 0..10_000 {
            for b in new_token().unwrap().bytes() {
                let digit = if b.is_ascii_digit() {
                    b - b'0'
                } else {
                    b - b'a' + 10
                };
                counts[usize::from(digit)] += 1;
            }
        }
        for count in counts {
            assert!((23_750..=26_250).contains(&count), "{counts:?}");
        }
    }
}
