//! What a connection is told before its first byte: given once, at
//! construction, to the core and through it to every driver.

use crate::codec::DEFAULT_MAX_PACKET_LEN;
use crate::crypto::CryptoProvider;
use crate::error::Error;
use crate::rekey::RekeyLimits;

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The client: accepts up to 1023 lines before the server's
    /// identification line.
    Client,
    /// The server: the client's identification line must come first.
    Server,
}

/// The settings of a connection that are known before it starts: its role,
/// the largest packet, the rekey limits, the crypto provider, the hexdump
/// and whether errors are told to the peer. Everything negotiated or
/// changing mid-connection (strict kex, keys, delayed compression, a rekey
/// request, the handshake deadline, the keepalive) is a call on the
/// [`Connection`](crate::Connection) instead.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ssh_packetizer::{Config, Connection, RekeyLimits, Role};
///
/// let config = Config::server()
///     .max_packet_len(64 * 1024)?
///     .rekey_limits(RekeyLimits {
///         max_bytes: Some(1 << 30),
///         max_time: Some(Duration::from_secs(3600)),
///         ..RekeyLimits::default()
///     });
/// let core = Connection::new(config, Instant::now());
/// assert_eq!((core.role(), core.max_packet_len()), (Role::Server, 64 * 1024));
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) role: Role,
    pub(crate) max_packet_len: usize,
    pub(crate) rekey_limits: RekeyLimits,
    pub(crate) provider: &'static CryptoProvider,
    pub(crate) hexdump: bool,
    pub(crate) disconnect_on_error: bool,
}

impl Config {
    /// The defaults for `role`: 256 KiB packets, the rekey limits of RFC
    /// 4344 and no others, the process default crypto provider, no
    /// hexdump, a DISCONNECT to the peer on its faults.
    pub fn new(role: Role) -> Config {
        Config {
            role,
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            rekey_limits: RekeyLimits::default(),
            provider: CryptoProvider::get_default(),
            hexdump: false,
            disconnect_on_error: true,
        }
    }

    /// The defaults for a client.
    pub fn client() -> Config {
        Config::new(Role::Client)
    }

    /// The defaults for a server.
    pub fn server() -> Config {
        Config::new(Role::Server)
    }

    /// The largest `packet_length` sent and accepted (default 256 KiB,
    /// 35000 to 16 MiB: [`Error::InvalidMaxPacketLength`] outside).
    pub fn max_packet_len(mut self, len: usize) -> Result<Config, Error> {
        crate::codec::check_max_packet_len(len)?;
        self.max_packet_len = len;
        Ok(self)
    }

    /// Byte and time limits on each key and the grace allowance after a
    /// rekey was wanted.
    pub fn rekey_limits(mut self, limits: RekeyLimits) -> Config {
        self.rekey_limits = limits;
        self
    }

    /// Runs every key's engines on `provider`'s primitives (default:
    /// [`CryptoProvider::get_default`] when the config was made).
    pub fn crypto_provider(mut self, provider: &'static CryptoProvider) -> Config {
        self.provider = provider;
        self
    }

    /// Logs every message's plaintext (target `ssh_packetizer::hexdump`,
    /// at debug level), except the bodies of USERAUTH_REQUEST and
    /// USERAUTH_INFO_RESPONSE (passwords, answers), which are never shown.
    /// Off by default: plaintext is never logged otherwise.
    pub fn hexdump(mut self, on: bool) -> Config {
        self.hexdump = on;
        self
    }

    /// Whether a fatal error caused by the peer's bytes queues a
    /// DISCONNECT with the matching reason (on by default, as OpenSSH).
    pub fn disconnect_on_error(mut self, on: bool) -> Config {
        self.disconnect_on_error = on;
        self
    }
}
