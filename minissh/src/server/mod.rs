//! The server role: `minissh serve`. It listens on one address, runs each
//! connection on a thread of its own (key exchange as the server, ed25519
//! public-key authentication against an authorized_keys file, session
//! channels whose `exec` runs through `sh -c`), cuts off clients that do
//! not finish the handshake within the login grace time, sends keepalives
//! like sshd's ClientAliveInterval, caps the connections open at once, and
//! writes one line per connection to its log.
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

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// What every connection thread shares.
#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    host_key: Arc<Identity>,
    log: Log,
    /// Connections open now.
    open: AtomicUsize,
}

/// A bound server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
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
        let listener = TcpListener::bind(&config.listen).map_err(|source| Error::Connect {
            addr: config.listen.clone(),
            source,
        })?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                host_key: Arc::new(host_key),
                log,
                open: AtomicUsize::new(0),
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

    /// Accepts connections for ever, each on a thread of its own.
    pub fn run(self) -> Result<()> {
        let addr = self.local_addr()?;
        self.shared.log.line(&format!(
            "listening on {addr}, host key {}",
            self.shared.host_key.public_line()
        ));
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                // A client that gave up before we took it, or a descriptor
                // limit reached: the listener itself is fine.
                Err(e) => {
                    self.shared.log.line(&format!("accept failed: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            self.admit(stream, peer);
        }
    }

    /// Starts a connection's thread, or refuses it over the cap.
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let cap = self.shared.config.max_connections;
        if self.shared.open.fetch_add(1, Ordering::SeqCst) >= cap {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
            self.shared.log.line(&format!(
                "{peer} refused: {cap} connections open, the most allowed"
            ));
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("minissh-conn-{peer}"))
            .spawn(move || {
                let record = conn::serve(stream, peer, &shared);
                shared.open.fetch_sub(1, Ordering::SeqCst);
                shared.log.line(&record.to_string());
            });
        if let Err(e) = spawned {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
            self.shared
                .log
                .line(&format!("{peer} refused: no thread for it: {e}"));
        }
    }
}

/// Tells a client over the cap why it is turned away (RFC 4253 §4.2 lets a
/// server send lines before its identification), then hangs up.
fn refuse(mut stream: TcpStream) {
    use std::io::Write;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(b"Too many connections\r\n");
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
