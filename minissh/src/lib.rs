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

pub mod client;
pub mod error;
pub mod flow;
pub mod hostkey;
pub mod identity;
pub mod msg;
pub mod server;
pub mod transport;
pub mod wire;

pub use client::channel::{Channel, ExitStatus};
pub use client::host_check::{HostKeyCheck, UnknownHost, Verdict};
pub use client::reader::Info;
pub use client::{ClientConfig, Session};
pub use error::{Error, Result};
pub use transport::algorithms::Preferences;
