//! Capture of the `tracing` output of one thread.

use std::sync::{Arc, Mutex, OnceLock};

/// Captures the `tracing` output of the current thread while the returned guard lives.
///
/// One global subscriber (installed on first use) writes into the buffer of the thread the
/// event happens on, if that thread is capturing. A global subscriber, unlike a per-thread
/// default, keeps every callsite enabled whatever other tests run in parallel.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Logs {
    /// Starts capturing this thread's events (every level, no colours) until the guard is
    /// dropped. Panics if another global `tracing` subscriber is installed.
    pub fn capture() -> Self {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| LogWriter)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global tracing subscriber in tests");
        });
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
        Self { buf }
    }

    /// Everything captured so far, formatted.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = c.borrow().as_ref() {
                buf.lock().unwrap().extend_from_slice(data);
            }
        });
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
