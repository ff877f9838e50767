//! A `redis-server` process of our own: started on a unix socket (or a free TCP port, plain or
//! TLS) in a temporary folder, never the machine's 6379, stopped by its own process id.
//!
//! It uses only std, `nix` and `tempfile` (the readiness check is a PING by hand), so the
//! programs that only need a server do not depend on a Redis client through it.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The binary to run: `REDISLOCK_SERVER_BIN`, or `redis-server` from PATH.
pub fn server_bin() -> String {
    std::env::var("REDISLOCK_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Whether a `redis-server` can be found (the demo uses this to pick its store).
pub fn server_available() -> bool {
    Command::new(server_bin())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket in the server's folder (no port to race for).
    Unix,
    /// A TCP port on 127.0.0.1, picked free at start.
    Tcp,
    /// A TCP port on 127.0.0.1 for a cluster node of a server without `--cluster-port`
    /// (before 7.0): picked free at start with its bus port (the port + 10000) free too.
    TcpWithBus,
    /// A TLS port on 127.0.0.1 (and ::1 where there is one), picked free at start, and no
    /// plaintext TCP port (`--port 0`). The certificates come in the extra arguments
    /// (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`, `--tls-auth-clients`). The
    /// unix socket stays, in plaintext, for the readiness check and for admin connections.
    Tls,
}

/// A `redis-server` process of our own, with its temporary folder (socket, log, data). Killed
/// (SIGKILL) when dropped; a panicking thread that drops it prints the end of its log.
pub struct RedisServer {
    dir: tempfile::TempDir,
    listen: Listen,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a private server on a unix socket; panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::start_with(Listen::Unix, &[])
    }

    /// Starts a private server with extra `redis-server` arguments; panics (with the server's
    /// log) if it cannot.
    pub fn start_with(listen: Listen, args: &[&str]) -> Self {
        match Self::try_start(listen, args, None) {
            Ok(server) => server,
            Err(err) => panic!(
                "could not start {} ({err}); install it (apt-get install redis-server) or set \
                 REDISLOCK_SERVER_BIN",
                server_bin()
            ),
        }
    }

    /// Starts a server, or says why not. `base` is the folder for its temporary folder.
    pub fn try_start(listen: Listen, args: &[&str], base: Option<&Path>) -> io::Result<Self> {
        let dir = match base {
            Some(base) => {
                std::fs::create_dir_all(base)?;
                tempfile::Builder::new().prefix("redis-").tempdir_in(base)?
            }
            None => tempfile::Builder::new().prefix("redis-").tempdir()?,
        };
        let mut server = Self {
            dir,
            listen,
            port: 0,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts (or starts again) the process, on the same socket or port.
    fn spawn(&mut self) -> io::Result<()> {
        let mut last_err = None;
        for _attempt in 0..5 {
            let tcp = matches!(self.listen, Listen::Tcp | Listen::Tls | Listen::TcpWithBus);
            if tcp && (self.port == 0 || last_err.is_some()) {
                self.port = match self.listen {
                    Listen::TcpWithBus => free_port_with_bus()?,
                    _ => free_port()?,
                };
            }
            let _ = std::fs::remove_file(self.socket());
            let mut cmd = Command::new(server_bin());
            if self.listen == Listen::Tls {
                // `localhost` may resolve to ::1 first: listen there too if it exists (`-`:
                // skip it if not), so that a failed handshake is never hidden behind a refused
                // connection on the other address.
                cmd.arg("--port")
                    .arg("0")
                    .arg("--tls-port")
                    .arg(self.port.to_string())
                    .arg("--bind")
                    .arg("127.0.0.1")
                    .arg("-::1");
            } else {
                cmd.arg("--port")
                    .arg(self.port.to_string())
                    .arg("--bind")
                    .arg("127.0.0.1");
            }
            cmd.arg("--unixsocket")
                .arg(self.socket())
                .arg("--unixsocketperm")
                .arg("700")
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--dir")
                .arg(self.dir.path())
                .arg("--logfile")
                .arg(self.log_path())
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = spawn_tied_to_this_process(cmd)?;
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(err) => {
                    self.kill();
                    // A TCP port taken between our probe and the server's bind: pick another.
                    if tcp && self.log().contains("Address already in use") {
                        last_err = Some(err);
                        continue;
                    }
                    return Err(io::Error::other(format!(
                        "{err}; server log:\n{}",
                        self.log()
                    )));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free port")))
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!("redis-server exited: {status}")));
            }
            if self.ping().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("redis-server did not answer PING in time"));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// One PING over the unix socket, with std only.
    pub fn ping(&self) -> io::Result<()> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        // "-NOAUTH ..." from a server with a password is an answer too: it is up.
        if &reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH") {
            Ok(())
        } else {
            Err(io::Error::other(format!("unexpected reply {reply:?}")))
        }
    }

    /// The path of the server's unix socket (always there, whatever [`Listen`] says).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The path of the server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's folder (for TLS certificates and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `unix:///…/redis.sock`
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `redis://127.0.0.1:port/` for a TCP server.
    pub fn tcp_url(&self) -> String {
        assert!(
            matches!(self.listen, Listen::Tcp | Listen::TcpWithBus),
            "this server does not listen on plain TCP"
        );
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://localhost:port/` for a TLS server (`localhost`, the name its certificate is
    /// expected to carry).
    pub fn tls_url(&self) -> String {
        assert_eq!(
            self.listen,
            Listen::Tls,
            "this server does not listen on TLS"
        );
        format!("rediss://localhost:{}/", self.port)
    }

    /// The TCP or TLS port (0 for a unix-socket server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The whole server log (empty if there is none yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process (SIGKILL by its pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Kills the process and starts a new one on the same socket or port (nothing persisted).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(err) = self.spawn() {
            panic!("could not restart redis-server: {err}");
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            kill(pid_of(child), Signal::SIGSTOP).unwrap();
        }
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            kill(pid_of(child), Signal::SIGCONT).unwrap();
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- redis-server log ({}) ----\n{}\n----",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        self.kill();
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

/// `<base>/<prefix>-<pid>`, for a server that lives as long as this process (a static one,
/// whose folder the process cannot remove itself), after removing the folders of processes
/// that have ended.
pub fn per_process_dir(base: &Path, prefix: &str) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_prefix('-'))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if kill(Pid::from_raw(pid), None).is_err() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    base.join(format!("{prefix}-{}", std::process::id()))
}

/// A port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port P that was free a moment ago, with P + 10000 free too: the cluster bus port of a
/// server that has no `--cluster-port` (before 7.0).
pub fn free_port_with_bus() -> io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919) ^ NEXT.fetch_add(7_777, Ordering::Relaxed);
    for attempt in 0..1000u32 {
        // Ports 20000..55535 spread by process and call, so test binaries rarely collide.
        let port = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(104_729)) % 35_535);
        let port = u16::try_from(port).map_err(io::Error::other)?;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free port with a free bus port"))
}

/// The major version of the `redis-server` the tests start (7 for 7.2.4), read once from
/// `redis-server --version`; 0 if it cannot be read.
pub fn server_major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let out = Command::new(server_bin()).arg("--version").output();
        let text = out
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        text.split("v=")
            .nth(1)
            .and_then(|version| version.split('.').next())
            .and_then(|major| major.parse().ok())
            .unwrap_or(0)
    })
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it dies with this process, even on a crash or SIGKILL: the child gets
/// `PR_SET_PDEATHSIG`, which fires when the thread that forked it ends. So every server is
/// forked by one thread that lives as long as the process.
pub fn spawn_tied_to_this_process(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("redis-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The senders live in a static, so this thread never gets here.
                loop {
                    thread::park();
                }
            })
            .expect("spawn the redis-spawner thread");
        Mutex::new(tx)
    });
    set_parent_death_signal(&mut cmd);
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes the prctl system call,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
}
