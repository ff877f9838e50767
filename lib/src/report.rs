//! How errors and lock events are written out: [`ErrorChain`], which the `redislock` command
//! uses too, and the `event_at!` macro for events at a level chosen at run time.

use std::fmt::{self, Write as _};

/// Emits a `tracing` event at a level chosen at run time (the macros want a constant).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {{
        let level: ::tracing::Level = $level;
        if level == ::tracing::Level::ERROR {
            ::tracing::error!($($rest)+)
        } else if level == ::tracing::Level::WARN {
            ::tracing::warn!($($rest)+)
        } else if level == ::tracing::Level::INFO {
            ::tracing::info!($($rest)+)
        } else if level == ::tracing::Level::DEBUG {
            ::tracing::debug!($($rest)+)
        } else {
            ::tracing::trace!($($rest)+)
        }
    }};
}
pub(crate) use event_at;

/// Displays an error followed by its causes on one line, `error: cause: cause`, each cause
/// once: errors that repeat their source in their own message (redis-rs's among them) do not
/// print it twice.
///
/// [`LockError`](crate::LockError)'s `Display` describes its own layer only, as the Rust API
/// guidelines ask; `ErrorChain` is for the place that finally shows an error to a person (a
/// log line, a command-line tool's stderr).
///
/// # Examples
///
/// ```
/// use ac_redislock::{ErrorChain, LockError, UnavailableReason};
///
/// let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by 10.0.0.7");
/// let err = LockError::Unavailable {
///     reason: UnavailableReason::Disconnected,
///     source: Some(redis::RedisError::from(reset)),
/// };
/// let shown = ErrorChain(&err).to_string();
/// assert!(shown.starts_with("Redis is unavailable: connection lost: "), "{shown}");
/// assert!(shown.ends_with("reset by 10.0.0.7"), "{shown}");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // A cause the line already ends with was repeated by the error above it.
            if !line.ends_with(&text) {
                let _ = write!(line, ": {text}");
            }
            source = cause.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorChain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .unwrap_or(Layer {
                text: "",
                source: None,
            })
    }

    #[test]
    fn causes_are_joined_once_each() {
        let err = layers(&["lock failed", "connection lost", "reset by peer"]);
        assert_eq!(
            ErrorChain(&err).to_string(),
            "lock failed: connection lost: reset by peer"
        );
        // A layer that repeats its cause in its own message does not print it again.
        let err = layers(&["Redis: reset by peer", "reset by peer"]);
        assert_eq!(ErrorChain(&err).to_string(), "Redis: reset by peer");
    }
}
