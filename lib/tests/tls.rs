//! TLS against real redis-servers, with certificates made at run time by the `openssl` command:
//! a trusted CA works (password, client certificates, blocking twin included); a plaintext
//! client, another CA, another host name or a missing client certificate fail closed as backend
//! errors, never as `Locked`, never in plaintext, never showing the URL's password.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ac_redislock::{InvalidInput, LockError, LockParams, RedisLock, ReleaseParams};
use redis::AsyncCommands;
use support::{Listen, Logs, RedisServer, unique_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The password of the servers started with `--requirepass`.
const PASSWORD: &str = "some-password";

/// The timeout of the clients that must fail: they fail within it.
const FAIL_TIMEOUT: Duration = Duration::from_millis(500);

/// Certificates for the whole test binary, made once in a per-process folder.
struct Pki {
    /// The CA the servers' certificates chain to.
    ca: PathBuf,
    /// A second CA, trusted by nothing.
    other_ca: PathBuf,
    /// The server's certificate and key: SAN DNS:localhost, signed by `ca`.
    server: (PathBuf, PathBuf),
    /// A server certificate for another name: SAN DNS:wrong.example, signed by `ca`.
    wrong_name: (PathBuf, PathBuf),
    /// A client certificate and key, signed by `ca`.
    client: (PathBuf, PathBuf),
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = support::server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "tls");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = make_ca(&dir, "ca");
        let other_ca = make_ca(&dir, "other-ca");
        let server = make_leaf(&dir, "server", &ca, "DNS:localhost", "serverAuth");
        let wrong_name = make_leaf(&dir, "wrong-name", &ca, "DNS:wrong.example", "serverAuth");
        let client = make_leaf(&dir, "client", &ca, "DNS:test-client", "clientAuth");
        Pki {
            ca: ca.0,
            other_ca: other_ca.0,
            server,
            wrong_name,
            client,
        }
    })
}

/// Runs `openssl` with `args`; panics (never skips) if it is missing or fails.
fn openssl(args: &[&str]) {
    let bin = std::env::var("REDISLOCK_OPENSSL_BIN").unwrap_or_else(|_| "openssl".to_owned());
    let output = Command::new(&bin).args(args).output().unwrap_or_else(|err| {
        panic!(
            "the TLS tests need the `{bin}` command to make their certificates ({err}); install \
             it (apt-get install openssl) or set REDISLOCK_OPENSSL_BIN"
        )
    });
    assert!(
        output.status.success(),
        "{bin} {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// A self-signed CA (P-256): `<name>.crt`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let subject = format!("/CN=ac-redislock test {name}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&cert),
    ]);
    (cert, key)
}

/// An end-entity certificate signed by `ca`, with subjectAltName `san` and extended key usage
/// `usage` (`serverAuth`, `clientAuth`): `<name>.crt`, `<name>.key`.
fn make_leaf(
    dir: &Path,
    name: &str,
    ca: &(PathBuf, PathBuf),
    san: &str,
    usage: &str,
) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    let subject = format!("/CN={name}");
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &subject,
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&csr),
    ]);
    let serial = dir.join(format!("{name}.srl"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        path_str(&csr),
        "-CA",
        path_str(&ca.0),
        "-CAkey",
        path_str(&ca.1),
        "-CAcreateserial",
        "-CAserial",
        path_str(&serial),
        "-days",
        "1",
        "-extfile",
        path_str(&ext),
        "-out",
        path_str(&cert),
    ]);
    (cert, key)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// A server on TLS only (no plaintext TCP port) with `cert`/`key`, trusting the test CA for
/// client certificates, and `extra` arguments.
fn tls_server(cert: &(PathBuf, PathBuf), auth_clients: bool, extra: &[&str]) -> RedisServer {
    let pki = pki();
    let mut args = vec![
        "--tls-cert-file",
        path_str(&cert.0),
        "--tls-key-file",
        path_str(&cert.1),
        "--tls-ca-cert-file",
        path_str(&pki.ca),
        "--tls-auth-clients",
        if auth_clients { "yes" } else { "no" },
    ];
    args.extend_from_slice(extra);
    RedisServer::start_with(Listen::Tls, &args)
}

/// An admin connection over the server's unix socket (plaintext, outside TLS).
async fn admin(server: &RedisServer, password: Option<&str>) -> redis::aio::MultiplexedConnection {
    let url = match password {
        Some(password) => format!("{}?pass={password}", server.url()),
        None => server.url(),
    };
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Everything an error shows: `Display`, `Debug`, and each source's `Display` and `Debug`.
fn everything_shown(err: &LockError) -> String {
    let mut shown = format!("{err}\n{err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        shown.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    shown
}

/// A backend failure (`Unavailable` or `Redis`), never a lock outcome.
fn assert_backend(what: &str, err: &LockError) {
    assert!(
        err.is_backend(),
        "{what}: expected a backend error, got {err:?}"
    );
    assert!(
        !matches!(err, LockError::Locked { .. }),
        "{what}: a failed connection reported as Locked"
    );
    assert_ne!(err.code(), 423, "{what}");
}

/// lock_key, get_lock and release_lock all fail as backend errors, each within the timeout,
/// and leave nothing on the server. Returns the errors.
async fn assert_every_call_fails(
    locks: &RedisLock,
    mut check: redis::aio::MultiplexedConnection,
) -> Vec<LockError> {
    let key = unique_key("tls-refused");
    let mut errors = Vec::new();
    for call in ["lock_key", "get_lock", "release_lock"] {
        let started = Instant::now();
        let result = match call {
            "lock_key" => locks
                .lock_key(LockParams::new(&key).value("v"))
                .await
                .map(drop),
            "get_lock" => locks.get_lock(&key).await.map(drop),
            _ => {
                locks
                    .release_lock(ReleaseParams::new(&key).value("v"))
                    .await
            }
        };
        let elapsed = started.elapsed();
        let err = result.expect_err(call);
        assert_backend(call, &err);
        assert!(
            elapsed < FAIL_TIMEOUT + Duration::from_millis(250),
            "{call} failed after {elapsed:?}, timeout {FAIL_TIMEOUT:?}"
        );
        errors.push(err);
    }
    let left: Option<String> = check.get(&key).await.unwrap();
    assert_eq!(left, None, "a refused client wrote to the server");
    errors
}

/// Whether the error chain says the peer's certificate was refused (as opposed to, say, a
/// refused connection).
fn is_certificate_error(err: &LockError) -> bool {
    let tls_reason = matches!(
        err,
        LockError::Unavailable {
            reason: ac_redislock::UnavailableReason::Tls,
            ..
        }
    );
    tls_reason && everything_shown(err).to_lowercase().contains("certificate")
}

/// lock_key, get_lock, release_lock and the guard API on `locks`, checked on the server through
/// `check` (the unix socket).
async fn assert_locks_work(locks: &RedisLock, mut check: redis::aio::MultiplexedConnection) {
    let key = unique_key("tls");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    let on_server: Option<String> = check.get(&key).await.unwrap();
    assert_eq!(on_server.as_deref(), Some(token.as_str()));
    assert_eq!(
        locks.get_lock(&key).await.unwrap().as_deref(),
        Some(&*token)
    );
    let err = locks.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    locks
        .release_lock(ReleaseParams::new(&key).value(&token))
        .await
        .unwrap();
    assert_eq!(locks.get_lock(&key).await.unwrap(), None);

    let guarded = unique_key("tls-guard");
    let guard = locks.try_acquire(&guarded).await.unwrap();
    assert!(guard.is_held());
    let on_server: Option<String> = check.get(&guarded).await.unwrap();
    assert_eq!(on_server.as_deref(), Some(guard.token()));
    let err = locks.try_acquire(&guarded).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    guard.release().await.unwrap();
    let on_server: Option<String> = check.get(&guarded).await.unwrap();
    assert_eq!(on_server, None);
}

#[tokio::test]
async fn rediss_with_the_test_ca_locks_reads_releases_and_guards() {
    let pki = pki();
    let server = tls_server(&pki.server, false, &[]);
    // The server has no plaintext TCP port (`--port 0`): anything that works over TCP is TLS.
    let locks = RedisLock::builder()
        .tls_root_certificate(read(&pki.ca))
        .build_from_url(&server.tls_url())
        .unwrap();
    assert_locks_work(&locks, admin(&server, None).await).await;
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_a_backend_error_within_the_timeout() {
    let pki = pki();
    let server = tls_server(&pki.server, false, &[]);
    let url = format!("redis://localhost:{}/", server.port());
    let locks = RedisLock::builder()
        .command_timeout(FAIL_TIMEOUT)
        .build_from_url(&url)
        .unwrap();
    assert_every_call_fails(&locks, admin(&server, None).await).await;
    let err = locks.try_acquire(&unique_key("plain")).await.unwrap_err();
    assert_backend("try_acquire", &err);
}

/// A TCP proxy on 127.0.0.1 to `target_port` that records what each client connection sends.
async fn recording_proxy(target_port: u16) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
            else {
                continue;
            };
            let index = {
                let mut all = record.lock().unwrap();
                all.push(Vec::new());
                all.len() - 1
            };
            let record = record.clone();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            });
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = client_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    record.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                    if upstream_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = upstream_write.shutdown().await;
            });
        }
    });
    (port, sent)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_in_tls_and_the_password_never_shows() {
    let logs = Logs::capture();
    let pki = pki();
    let server = tls_server(&pki.server, false, &["--requirepass", PASSWORD]);
    // Through a recording proxy, to see what goes on the wire.
    let (proxy_port, sent) = recording_proxy(server.port()).await;
    let url = format!("rediss://:{PASSWORD}@localhost:{proxy_port}/");

    let locks = RedisLock::builder()
        .command_timeout(FAIL_TIMEOUT)
        .tls_root_certificate(read(&pki.other_ca))
        .build_from_url(&url)
        .unwrap();
    let errors = assert_every_call_fails(&locks, admin(&server, Some(PASSWORD)).await).await;
    for err in &errors {
        assert!(
            is_certificate_error(err),
            "not refused for its certificate: {}",
            everything_shown(err)
        );
        let shown = everything_shown(err);
        assert!(!shown.contains(PASSWORD), "the password shows: {shown}");
    }
    let logged = logs.text();
    assert!(
        logged.contains("failed"),
        "the failures were not logged: {logged}"
    );
    assert!(!logged.contains(PASSWORD), "the password was logged");
    {
        let sent = sent.lock().unwrap();
        assert!(!sent.is_empty(), "the client never connected");
        for bytes in sent.iter().filter(|b| !b.is_empty()) {
            // Every connection starts with a TLS handshake record, and nothing goes in plaintext.
            assert_eq!(bytes[0], 0x16, "not a TLS handshake: {bytes:?}");
            for plain in [PASSWORD.as_bytes(), b"AUTH", b"HELLO", b"PING", b"SET"] {
                assert!(
                    !contains(bytes, plain),
                    "{:?} went in plaintext",
                    String::from_utf8_lossy(plain)
                );
            }
        }
    }

    // The right CA, through the same proxy: it authenticates with the password, encrypted.
    let before = sent.lock().unwrap().len();
    let locks = RedisLock::builder()
        .tls_root_certificate(read(&pki.ca))
        .build_from_url(&url)
        .unwrap();
    assert_locks_work(&locks, admin(&server, Some(PASSWORD)).await).await;
    let sent = sent.lock().unwrap();
    assert!(
        sent.len() > before,
        "the right-CA client did not use the proxy"
    );
    for bytes in &sent[before..] {
        assert!(
            !contains(bytes, PASSWORD.as_bytes()),
            "the password went in plaintext"
        );
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let pki = pki();
    let server = tls_server(&pki.wrong_name, false, &[]);
    let locks = RedisLock::builder()
        .command_timeout(FAIL_TIMEOUT)
        .tls_root_certificate(read(&pki.ca))
        .build_from_url(&server.tls_url())
        .unwrap();
    let errors = assert_every_call_fails(&locks, admin(&server, None).await).await;
    for err in &errors {
        assert!(
            is_certificate_error(err),
            "not refused for its certificate: {}",
            everything_shown(err)
        );
    }
}

#[tokio::test]
async fn a_server_that_requires_client_certificates_takes_only_a_signed_one() {
    let pki = pki();
    let server = tls_server(&pki.server, true, &[]);

    let without = RedisLock::builder()
        .command_timeout(FAIL_TIMEOUT)
        .tls_root_certificate(read(&pki.ca))
        .build_from_url(&server.tls_url())
        .unwrap();
    let errors = assert_every_call_fails(&without, admin(&server, None).await).await;
    for err in &errors {
        // rustls reports the server's alert: `CertificateRequired`.
        assert!(
            is_certificate_error(err),
            "not refused for the missing certificate: {}",
            everything_shown(err)
        );
    }

    let with = RedisLock::builder()
        .tls_root_certificate(read(&pki.ca))
        .tls_client_certificate(read(&pki.client.0), read(&pki.client.1))
        .build_from_url(&server.tls_url())
        .unwrap();
    assert_locks_work(&with, admin(&server, None).await).await;
}

fn assert_url_refused(what: &str, result: Result<impl std::fmt::Debug, LockError>) {
    match result {
        Err(LockError::InvalidInput(InvalidInput::Url(reason))) => {
            assert!(reason.contains("rediss://"), "{what}: {reason}");
            assert!(!reason.contains(PASSWORD), "{what}: {reason}");
        }
        other => panic!("{what}: expected InvalidInput::Url, got {other:?}"),
    }
}

#[tokio::test]
async fn certificates_with_a_plaintext_url_are_refused_before_any_connection() {
    let pki = pki();
    let ca = read(&pki.ca);
    // Something listening where the URL points, to see that no one connects.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        format!("redis://:{PASSWORD}@127.0.0.1:{port}/"),
        format!("redis://localhost:{port}/"),
        format!("unix://{}/redis.sock", dir.path().display()),
    ];
    for url in &urls {
        assert_url_refused(
            url,
            RedisLock::builder()
                .tls_root_certificate(ca.clone())
                .build_from_url(url),
        );
        assert_url_refused(
            url,
            RedisLock::builder()
                .tls_client_certificate(read(&pki.client.0), read(&pki.client.1))
                .build_from_url(url),
        );
        assert_url_refused(
            url,
            ac_redislock::blocking::RedisLock::builder()
                .tls_root_certificate(ca.clone())
                .build_from_url(url),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected: {other:?}"),
    }
}

#[tokio::test]
async fn the_blocking_client_works_over_tls() {
    let pki = pki();
    let server = tls_server(&pki.server, false, &[]);
    let url = server.tls_url();
    let admin_url = server.url();
    let ca = read(&pki.ca);
    tokio::task::spawn_blocking(move || {
        // Checks over the unix socket, with the sync API.
        let mut check = redis::Client::open(admin_url)
            .and_then(|client| client.get_connection())
            .unwrap();
        let locks = ac_redislock::blocking::RedisLock::builder()
            .tls_root_certificate(ca)
            .build_from_url(&url)
            .unwrap();

        let key = unique_key("tls-blocking");
        let token = locks.lock_key(LockParams::new(&key)).unwrap();
        let on_server: Option<String> = redis::Commands::get(&mut check, &key).unwrap();
        assert_eq!(on_server.as_deref(), Some(token.as_str()));
        assert_eq!(locks.get_lock(&key).unwrap().as_deref(), Some(&*token));
        let err = locks.lock_key(LockParams::new(&key)).unwrap_err();
        assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
        locks
            .release_lock(ReleaseParams::new(&key).value(&token))
            .unwrap();
        assert_eq!(locks.get_lock(&key).unwrap(), None);

        let guarded = unique_key("tls-blocking-guard");
        let guard = locks.try_acquire(&guarded).unwrap();
        assert!(guard.is_held());
        let on_server: Option<String> = redis::Commands::get(&mut check, &guarded).unwrap();
        assert_eq!(on_server.as_deref(), Some(guard.token()));
        let err = locks.try_acquire(&guarded).unwrap_err();
        assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
        guard.release().unwrap();
        let on_server: Option<String> = redis::Commands::get(&mut check, &guarded).unwrap();
        assert_eq!(on_server, None);
    })
    .await
    .unwrap();
}
