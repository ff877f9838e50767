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

/// A connection that sends every command, but can lose the reply of one: armed with a command
/// name, the next command of that name reaches Redis and runs, and the caller gets a
/// broken-pipe error instead of its reply, as when a connection breaks after the command was
/// sent. A fault a real server cannot be made to produce on cue.
#[derive(Clone)]
pub struct LoseReply<C> {
    inner: C,
    armed: Arc<Mutex<Option<String>>>,
}

impl<C> LoseReply<C> {
    /// Wraps `inner`, unarmed.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            armed: Arc::default(),
        }
    }

    /// A handle that arms this connection (and its clones): the reply of the next command
    /// named `name` (`SET`, `EVALSHA`, ...) will be lost.
    pub fn trigger(&self) -> LoseTrigger {
        LoseTrigger(self.armed.clone())
    }
}

/// Arms a [`LoseReply`] connection.
#[derive(Clone)]
pub struct LoseTrigger(Arc<Mutex<Option<String>>>);

impl LoseTrigger {
    /// Loses the reply of the next command named `name`.
    pub fn arm(&self, name: &str) {
        *self.0.lock().unwrap() = Some(name.to_ascii_uppercase());
    }

    /// Whether the armed reply has been lost yet.
    pub fn fired(&self) -> bool {
        self.0.lock().unwrap().is_none()
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for LoseReply<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let lose = self.take_if_armed(&command_name(&cmd.get_packed_command()));
        Box::pin(async move {
            let reply = self.inner.req_packed_command(cmd).await;
            if lose {
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
            }
            reply
        })
    }

    /// A pipeline's replies are lost when its first command is the one armed.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let first = pipeline
            .cmd_iter()
            .next()
            .map(|cmd| command_name(&cmd.get_packed_command()))
            .unwrap_or_default();
        let lose = self.take_if_armed(&first);
        Box::pin(async move {
            let replies = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            if lose {
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
            }
            replies
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

impl<C> LoseReply<C> {
    /// Disarms and returns `true` if `name` is the command armed.
    fn take_if_armed(&self, name: &str) -> bool {
        let mut armed = self.armed.lock().unwrap();
        let lose = armed.as_deref() == Some(name);
        if lose {
            *armed = None;
        }
        lose
    }
}

/// The name of a packed command, upper-cased.
fn command_name(packed: &[u8]) -> String {
    String::from_utf8_lossy(packed)
        .split("\r\n")
        .nth(2)
        .unwrap_or_default()
        .to_ascii_uppercase()
}
