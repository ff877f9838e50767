//! Fresh lock tokens: random bytes from the operating system, written as lowercase hex.

use crate::error::LockError;

/// Random bytes in a token: 160 bits, as the Redis documentation recommends (20 bytes from
/// `/dev/urandom`). UUIDv4, the Node original's default, has only 122.
const TOKEN_BYTES: usize = 20;

/// Returns a new token: 40 lowercase hex characters made from 160 bits of OS randomness.
pub(crate) fn new_token() -> Result<String, LockError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| LockError::Entropy(err.into()))?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(TOKEN_BYTES * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Ok(out)
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
    fn a_hundred_thousand_tokens_are_distinct() {
        let tokens: HashSet<String> = (0..100_000).map(|_| new_token().unwrap()).collect();
        assert_eq!(tokens.len(), 100_000);
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
