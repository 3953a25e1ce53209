//! The server role: `minissh serve`. Event-driven on tokio and the crate's
//! async drivers: each connection is one task (key exchange as the
//! server, ed25519 public-key authentication against an authorized_keys
//! file, session channels whose `exec` runs through `sh -c` on tokio
//! pipes), with no thread per connection or per direction. It cuts off
//! clients that do not finish the handshake within the login grace time,
//! sends keepalives like sshd's ClientAliveInterval, cuts off a client
//! that stops reading, throttles unauthenticated connections as sshd's
//! MaxStartups and PerSourceMaxStartups do, caps the connections open at
//! once, and writes one line per connection to its log.
//!
//! Commands run as the server's own user, whatever user name the client
//! gives: any name whose key is in authorized_keys is accepted.
//!
//! ```no_run
//! use minissh::server::{Server, ServerConfig};
//!
//! let config = ServerConfig::new("127.0.0.1:2222", "/tmp/host_key", "/tmp/authorized_keys");
//! let server = Server::bind(config)?;
//! eprintln!("listening on {}", server.local_addr()?);
//! server.run()?;
//! # Ok::<(), minissh::Error>(())
//! ```

mod auth;
mod channels;
mod conn;
mod log;
mod output;
pub mod throttle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use ssh_packetizer::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, RekeyLimits};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::transport::algorithms::Preferences;
pub use log::{Log, Record};

/// Our identification line as a server.
pub const SERVER_ID: &str = concat!("SSH-2.0-minissh_", env!("CARGO_PKG_VERSION"));

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `address:port` to listen on (port 0 picks a free one).
    pub listen: String,
    /// The ed25519 host key file; generated there (with its `.pub`) when
    /// missing.
    pub host_key: PathBuf,
    /// OpenSSH authorized_keys file; read at each authentication.
    pub authorized_keys: PathBuf,
    /// Algorithms offered, best first (the client's order wins).
    pub prefs: Preferences,
    /// The handshake deadline: identification, key exchange and
    /// authentication (sshd's LoginGraceTime).
    pub login_grace: Duration,
    /// A keepalive request after this long without traffic (sshd's
    /// ClientAliveInterval); `None` sends none.
    pub keepalive: Option<Duration>,
    /// Unanswered keepalives after which the client is cut off (sshd's
    /// ClientAliveCountMax).
    pub keepalive_max: u32,
    /// Connections open at once, authenticated or not; more are refused.
    pub max_connections: usize,
    /// Random early drop of unauthenticated connections (sshd's
    /// MaxStartups, default 10:30:100).
    pub max_startups: throttle::MaxStartups,
    /// Unauthenticated connections allowed per address (sshd's
    /// PerSourceMaxStartups); `None`, the default, sets no limit.
    pub per_source_max_startups: Option<u32>,
    /// Seeds the drop decisions (tests); `None` seeds from the system.
    pub throttle_seed: Option<u64>,
    /// Threads of the runtime that runs the connections (at least 1);
    /// `None` is one per CPU.
    pub threads: Option<usize>,
    /// A write to the client that makes no progress for this long ends
    /// the connection (a client that stops reading).
    pub write_stall: Duration,
    /// How long a rekey may take (the first key exchange is under the
    /// login grace time).
    pub kex_deadline: Duration,
    /// Byte or time limits after which the server starts a rekey.
    pub rekey: Option<RekeyLimits>,
    /// Where the log goes; `None` is stderr.
    pub log: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults (those of sshd where it has one) for a server on `listen`.
    pub fn new(
        listen: &str,
        host_key: impl Into<PathBuf>,
        authorized_keys: impl Into<PathBuf>,
    ) -> ServerConfig {
        ServerConfig {
            listen: listen.to_owned(),
            host_key: host_key.into(),
            authorized_keys: authorized_keys.into(),
            prefs: server_preferences(),
            login_grace: Duration::from_secs(120),
            keepalive: None,
            keepalive_max: 3,
            max_connections: 64,
            max_startups: throttle::MaxStartups::default(),
            per_source_max_startups: None,
            throttle_seed: None,
            threads: None,
            write_stall: Duration::from_secs(60),
            kex_deadline: Duration::from_secs(60),
            rekey: None,
            log: None,
        }
    }
}

/// Every cipher and MAC this build has, the crate's defaults first (the
/// legacy ones follow when the `legacy` feature is on, for clients such as
/// paramiko's that may prefer them), and every compression method.
pub fn server_preferences() -> Preferences {
    fn all<T: Copy + PartialEq>(defaults: &[T], every: &[T], usable: impl Fn(T) -> bool) -> Vec<T> {
        let mut list = defaults.to_vec();
        list.extend(
            every
                .iter()
                .copied()
                .filter(|a| usable(*a) && !defaults.contains(a)),
        );
        list
    }
    use ssh_packetizer::negotiate::{DEFAULT_CIPHERS, DEFAULT_MACS};
    Preferences {
        ciphers: all(DEFAULT_CIPHERS, CipherAlgorithm::ALL, |c| {
            c.is_available() && c != CipherAlgorithm::None
        }),
        macs: all(DEFAULT_MACS, MacAlgorithm::ALL, |m| {
            m.is_available() && m != MacAlgorithm::None
        }),
        compression: vec![
            CompressionAlgorithm::None,
            CompressionAlgorithm::ZlibOpenSsh,
            CompressionAlgorithm::Zlib,
        ],
        strict_kex: true,
        provider: ssh_packetizer::CryptoProvider::get_default(),
    }
}

/// What every connection's task shares.
#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    host_key: Arc<Identity>,
    log: Log,
    /// Connections open now.
    open: AtomicUsize,
    throttle: Arc<throttle::Throttle>,
}

/// A bound server.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Loads (or generates) the host key, opens the log and binds.
    pub fn bind(config: ServerConfig) -> Result<Server> {
        let host_key = Identity::load_or_generate(&config.host_key)?;
        let log = match &config.log {
            Some(path) => Log::to_file(path)?,
            None => Log::stderr(),
        };
        let listener =
            std::net::TcpListener::bind(&config.listen).map_err(|source| Error::Connect {
                addr: config.listen.clone(),
                source,
            })?;
        listener.set_nonblocking(true)?;
        let seed = match config.throttle_seed {
            Some(seed) => seed,
            None => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes)
                    .map_err(|e| Error::Protocol(format!("no randomness for the throttle: {e}")))?;
                u64::from_le_bytes(bytes)
            }
        };
        let throttle =
            throttle::Throttle::new(config.max_startups, config.per_source_max_startups, seed);
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                host_key: Arc::new(host_key),
                log,
                open: AtomicUsize::new(0),
                throttle,
            }),
        })
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The log the server writes.
    pub fn log(&self) -> &Log {
        &self.shared.log
    }

    /// Accepts connections for ever on a runtime of its own.
    pub fn run(self) -> Result<()> {
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.shared.config.threads {
            runtime.worker_threads(threads.max(1));
        }
        runtime.enable_all().build()?.block_on(self.serve())
    }

    /// Accepts connections for ever, each on a task of its own (on the
    /// caller's tokio runtime).
    pub async fn serve(self) -> Result<()> {
        let addr = self.local_addr()?;
        let listener = TcpListener::from_std(self.listener)?;
        self.shared.log.line(&format!(
            "listening on {addr}, host key {}",
            self.shared.host_key.public_line()
        ));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // A client that gave up before we took it, or a descriptor
                // limit reached: the listener itself is fine.
                Err(e) => {
                    self.shared.log.line(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            admit(&self.shared, stream, peer);
        }
    }
}

/// Starts a connection's task, or turns it away: over the cap, or by the
/// throttle.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let cap = shared.config.max_connections;
    if shared.open.fetch_add(1, Ordering::SeqCst) >= cap {
        shared.open.fetch_sub(1, Ordering::SeqCst);
        turn_away(stream, "Too many connections");
        shared.log.line(&format!(
            "{peer} refused: {cap} connections open, the most allowed"
        ));
        return;
    }
    let startup = match shared.throttle.admit(peer.ip()) {
        Ok(startup) => startup,
        Err(dropped) => {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            turn_away(stream, dropped.message());
            shared.log.line(&format!(
                "{peer} dropped: {} ({} unauthenticated open)",
                dropped.message(),
                shared.throttle.startups()
            ));
            return;
        }
    };
    let place = Place(shared.clone());
    tokio::spawn(async move {
        let record = conn::serve(stream, peer, place.0.clone(), startup).await;
        place.0.log.line(&record.to_string());
        drop(place);
    });
}

/// A connection's place under the cap, given back when its task ends,
/// however it ends.
struct Place(Arc<Shared>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells a client why it is turned away (RFC 4253 §4.2 lets a server send
/// lines before its identification), then hangs up; never waits long.
fn turn_away(mut stream: TcpStream, why: &'static str) {
    tokio::spawn(async move {
        let line = format!("{why}\r\n");
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes())).await;
        let _ = stream.shutdown().await;
    });
}
