//! minissh: a small SSH client and server built on ssh-packetizer, the
//! working example of a whole SSH on the packet layer, and what the
//! interop tests drive against OpenSSH, paramiko and asyncssh.
//!
//! Both roles share one sans-IO transport layer ([`transport`]:
//! negotiation, curve25519-sha256 with strict kex, NEWKEYS and rekeys
//! either way) on the packet layer's own rules (its hold during a key
//! exchange, its rekey requests, strict kex's order). On top of it the
//! client ([`Session`]) checks host keys and authenticates with an
//! ssh-ed25519 key, and the server ([`server`]) authenticates and runs
//! commands on session channels. It is not published and not part of the
//! library.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod channel;
pub mod error;
pub mod hostkey;
pub mod identity;
mod inbound;
pub mod known_hosts;
pub mod msg;
mod outbound;
pub mod scp;
pub mod server;
pub mod session;
pub mod transport;
pub mod window;
pub mod wire;

pub use channel::{Channel, ExitStatus};
pub use error::{Error, Result};
pub use hostkey::{HostKeyCheck, UnknownHost, Verdict};
pub use inbound::Info;
pub use session::{Config, Session};
pub use transport::algorithms::Preferences;
