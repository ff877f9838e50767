//! The exit codes of `redislock`, in one table.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the lock is held elsewhere, or the wait ran out (`-E`/`--conflict-exit-code` changes it, as with flock(1)) |
//! | 2 | usage error: bad arguments or input |
//! | 3 | Redis unavailable or answering with an error; or stdout could not be written |
//! | 4 | `run`: the lease was lost while the command ran; it was stopped |
//! | 5 | `release`/`extend`: the lock is not held with that value (not the owner, or expired) |
//! | 126, 127 | `run`: the command could not be executed / was not found |
//! | 128 + N | `run`: the command was killed by signal N |
//! | other | `run`: the command's own exit code |

use std::process::ExitCode;

use ac_redislock::LockError;

/// Why `redislock` exits, when it is not passing on a command's own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Success,
    /// Held elsewhere or the wait ran out, with the code to use (default 1).
    Conflict(u8),
    Usage,
    Backend,
    LeaseLost,
    NotOwner,
    CannotExecute,
    CommandNotFound,
    /// The command's own exit code.
    Child(u8),
    /// The command was killed by this signal.
    Signal(i32),
}

pub(crate) const DEFAULT_CONFLICT: u8 = 1;

impl Exit {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Conflict(code) | Self::Child(code) => code,
            Self::Usage => 2,
            Self::Backend => 3,
            Self::LeaseLost => 4,
            Self::NotOwner => 5,
            Self::CannotExecute => 126,
            Self::CommandNotFound => 127,
            Self::Signal(signal) => u8::try_from(128 + signal.clamp(1, 127)).unwrap_or(255),
        }
    }

    /// The exit for a library error; `conflict` is the code for a held lock.
    pub(crate) fn for_error(err: &LockError, conflict: u8) -> Self {
        match err {
            LockError::Locked { .. } => Self::Conflict(conflict),
            LockError::NotOwner { .. } | LockError::NotHeld { .. } => Self::NotOwner,
            LockError::Lost { .. } => Self::LeaseLost,
            LockError::InvalidInput(_) | LockError::WrongType { .. } => Self::Usage,
            _ => Self::Backend,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ac_redislock::{InvalidInput, LossReason, UnavailableReason};

    #[test]
    fn the_table_holds() {
        let table = [
            (Exit::Success, 0),
            (Exit::Conflict(DEFAULT_CONFLICT), 1),
            (Exit::Conflict(75), 75),
            (Exit::Usage, 2),
            (Exit::Backend, 3),
            (Exit::LeaseLost, 4),
            (Exit::NotOwner, 5),
            (Exit::CannotExecute, 126),
            (Exit::CommandNotFound, 127),
            (Exit::Child(42), 42),
            (Exit::Signal(9), 137),
            (Exit::Signal(15), 143),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn errors_map_to_their_codes() {
        let key = || "k".to_owned();
        let cases = [
            (LockError::Locked { key: key() }, 9),
            (LockError::NotOwner { key: key() }, 5),
            (LockError::NotHeld { key: key() }, 5),
            (
                LockError::Lost {
                    key: key(),
                    reason: LossReason::Deleted,
                },
                4,
            ),
            (LockError::InvalidInput(InvalidInput::EmptyKey), 2),
            (
                LockError::Unavailable {
                    reason: UnavailableReason::Refused,
                    source: None,
                },
                3,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Exit::for_error(&err, 9).code(), code, "{err:?}");
        }
    }
}
