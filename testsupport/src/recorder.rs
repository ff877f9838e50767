//! A connection that records every command it sends: proof of what went on the wire, and of
//! what did not.

use std::sync::{Arc, Mutex};

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection that records every command it sends (as RESP bytes) before passing it on:
/// proof of what went on the wire, and of what did not.
#[derive(Clone)]
pub struct Recorder<C> {
    inner: C,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<C> Recorder<C> {
    /// Wraps `inner`, with nothing recorded yet.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            sent: Arc::default(),
        }
    }

    /// A handle on what this recorder (and its clones) have sent, that stays valid after the
    /// recorder has been given away.
    pub fn log(&self) -> SentLog {
        SentLog(self.sent.clone())
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for Recorder<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.sent.lock().unwrap().push(cmd.get_packed_command());
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.sent
            .lock()
            .unwrap()
            .push(pipeline.get_packed_pipeline());
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// What a [`Recorder`] has sent.
#[derive(Clone)]
pub struct SentLog(Arc<Mutex<Vec<Vec<u8>>>>);

impl SentLog {
    /// How many commands (a pipeline counts as one) have been sent.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// How many bytes have been sent, in all.
    pub fn bytes(&self) -> usize {
        self.0.lock().unwrap().iter().map(Vec::len).sum()
    }

    /// Every command sent, packed as RESP, in order.
    pub fn commands(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }

    /// The command names sent, upper-cased (`SET`, `EVALSHA`, ...).
    pub fn names(&self) -> Vec<String> {
        self.commands()
            .iter()
            .map(|packed| {
                let text = String::from_utf8_lossy(packed);
                text.split("\r\n")
                    .nth(2)
                    .unwrap_or_default()
                    .to_ascii_uppercase()
            })
            .collect()
    }

    /// Forgets what has been sent so far.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}
