//! What can go wrong in a session, worded for the person at the terminal.

use std::fmt;
use std::io;

/// A failed session, with enough detail to say what happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be made.
    Connect {
        /// `host:port` as given.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The packet layer failed (EOF, a bad MAC, a timeout, a broken pipe).
    Packet(ssh_packetizer::Error),
    /// Local I/O (a key file, stdin, stdout) failed.
    Io(io::Error),
    /// The peer broke the protocol.
    Protocol(String),
    /// No algorithm both sides accept.
    NoCommonAlgorithm {
        /// The KEXINIT list (`cipher client->server`, ...).
        what: &'static str,
        /// What we offered.
        ours: String,
        /// What the server offered.
        theirs: String,
    },
    /// The host key's signature over the exchange hash did not verify.
    BadHostSignature,
    /// The host key is not the one expected.
    HostKeyMismatch {
        /// The expected key's fingerprint.
        expected: String,
        /// The key the server presented.
        got: String,
    },
    /// The known_hosts file holds another key for this host.
    HostKeyChanged {
        /// The host as known_hosts names it.
        host: String,
        /// The known_hosts file.
        file: String,
        /// The line with the other key.
        line: usize,
        /// That key's fingerprint.
        expected: String,
        /// The key the server presented.
        got: String,
    },
    /// The known_hosts file marks the server's key as revoked.
    HostKeyRevoked {
        /// The host as known_hosts names it.
        host: String,
        /// The known_hosts file.
        file: String,
        /// The `@revoked` line.
        line: usize,
    },
    /// The known_hosts file does not vouch for this host.
    HostKeyUnknown {
        /// The host as known_hosts names it.
        host: String,
        /// The known_hosts file.
        file: String,
        /// Why that is a refusal.
        why: String,
    },
    /// The key file could not be used.
    Key(String),
    /// The server refused our key.
    AuthFailed {
        /// The methods the server would still accept.
        methods: String,
    },
    /// The server sent SSH_MSG_DISCONNECT.
    Disconnected {
        /// The reason code.
        code: u32,
        /// The server's description.
        description: String,
    },
    /// The connection closed where the protocol did not allow it.
    PeerClosed,
    /// The server refused a channel or a request on it.
    ChannelRefused(String),
    /// The remote scp reported an error, or a file could not be sent.
    Scp(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Packet(e) if e.io_kind() == Some(io::ErrorKind::ConnectionReset) => {
                write!(f, "the server reset the connection")
            }
            Error::Packet(e) => write!(f, "connection failed: {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::NoCommonAlgorithm { what, ours, theirs } => write!(
                f,
                "no common {what} algorithm: we offer {ours}, the server offers {theirs}"
            ),
            Error::BadHostSignature => {
                write!(f, "the server's host key signature does not verify")
            }
            Error::HostKeyMismatch { expected, got } => write!(
                f,
                "HOST KEY MISMATCH: expected {expected}, the server presented {got}; \
                 someone may be intercepting this connection"
            ),
            Error::HostKeyChanged {
                host,
                file,
                line,
                expected,
                got,
            } => write!(
                f,
                "HOST KEY FOR {host} HAS CHANGED: {file}:{line} holds {expected}, the server \
                 presented {got}; someone may be intercepting this connection, or the host \
                 key was replaced (if you know it was, remove line {line} and connect again)"
            ),
            Error::HostKeyRevoked { host, file, line } => write!(
                f,
                "the host key of {host} is REVOKED in {file}:{line}; refusing to connect"
            ),
            Error::HostKeyUnknown { host, file, why } => {
                write!(f, "no known host key for {host} in {file}: {why}")
            }
            Error::Key(what) => write!(f, "key: {what}"),
            Error::AuthFailed { methods } => write!(
                f,
                "authentication failed: the server refused the key (it accepts: {methods})"
            ),
            Error::Disconnected { code, description } => {
                write!(f, "the server disconnected (reason {code}): {description}")
            }
            Error::PeerClosed => write!(f, "the server closed the connection"),
            Error::ChannelRefused(what) => write!(f, "the server refused {what}"),
            Error::Scp(what) => write!(f, "scp: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } => Some(source),
            Error::Packet(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ssh_packetizer::Error> for Error {
    fn from(e: ssh_packetizer::Error) -> Error {
        // A later call's error carries the first one as its cause: report
        // what really happened, not "closed".
        match e.cause() {
            ssh_packetizer::Error::Closed => Error::PeerClosed,
            ssh_packetizer::Error::Disconnected {
                reason,
                description,
            } => Error::Disconnected {
                code: *reason,
                description: description.clone(),
            },
            ssh_packetizer::Error::NoCommonAlgorithm {
                kind,
                client,
                server,
            } => Error::NoCommonAlgorithm {
                what: kind,
                ours: client.clone(),
                theirs: server.clone(),
            },
            _ => Error::Packet(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
